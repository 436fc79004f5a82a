"""Artifact sizes from the export's manifest: bytes, and the ratio to the fp32 model of the same format.

    python benchmarks/bench_sizes.py --export-dir DIR [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import benchlib
from benchlib import Table, fmt_ratio


def run(export_dir: Path) -> dict:
    export_dir = Path(export_dir)
    manifest = benchlib.read_manifest(export_dir)
    artifacts = manifest["artifacts"]
    fp32 = {a["format"]: a["size_bytes"] for a in artifacts if a["mode"] == "fp32"}
    rows = []
    for a in artifacts:
        on_disk = (export_dir / a["file"]).stat().st_size if (export_dir / a["file"]).is_file() else None
        base = fp32.get(a["format"])
        rows.append({
            "file": a["file"], "format": a["format"], "mode": a["mode"], "size_bytes": a["size_bytes"],
            "size_on_disk_matches": on_disk == a["size_bytes"],
            "ratio_to_fp32_same_format": a["size_bytes"] / base if base else None,
            "quantization": a.get("quantization", ""),
        })
    keras_entry = manifest.get("source_model", {})
    keras_file = export_dir.parent / "train" / keras_entry.get("file", "model.keras")
    return {
        "artifacts": rows,
        "keras_model_bytes": keras_file.stat().st_size if keras_file.is_file() else None,
        "source_test_accuracy": keras_entry.get("test_accuracy"),
    }


def tables(result: dict) -> list:
    rows = [[r["file"], r["format"], r["mode"], f"{r['size_bytes']:,}", f"{r['size_bytes'] / 1024:.0f} KiB",
             fmt_ratio(r["ratio_to_fp32_same_format"]) if r["ratio_to_fp32_same_format"] else "n/a"] for r in result["artifacts"]]
    notes = ["Sizes as recorded in manifest.json (checked against the files on disk)."]
    if result.get("keras_model_bytes"):
        notes.append(f"The Keras model.keras they came from: {result['keras_model_bytes']:,} bytes.")
    if not all(r["size_on_disk_matches"] for r in result["artifacts"]):
        notes.append("WARNING: some files on disk differ in size from the manifest.")
    return [Table("Artifact sizes", ["artifact", "format", "mode", "bytes", "size", "vs fp32 (same format)"], rows, notes)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = run(args.export_dir)
    benchlib.print_tables(tables(result))
    if args.json:
        benchlib.write_json(args.json, result)


if __name__ == "__main__":
    main(sys.argv[1:])
