"""`digitkit export`: TFLite and ONNX artifacts, float and int8, C99 for microcontrollers, with their manifest.

The mode flags and their help come from the format table (digitkit.export.formats)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, List, Optional

import typer

from digitkit.export.formats import FORMATS, MODES, flag_help, modes_of_flag

from .common import (
    DEFAULT_EXPORT_DIR,
    DEFAULT_TRAIN_DIR,
    JSON_HELP,
    echo,
    emit_json,
    human_size,
    json_output,
    note,
    plural,
    print_table,
    progress_line,
    to_stdout,
)


def export(
    model: Annotated[
        Path,
        typer.Option(
            help="The trained model.keras, or its training directory (default: the last `digitkit train` output)."
        ),
    ] = DEFAULT_TRAIN_DIR / "model.keras",
    out: Annotated[
        Path, typer.Option(help="Directory for the artifacts and manifest.json.")
    ] = DEFAULT_EXPORT_DIR,
    int8: Annotated[bool, typer.Option(MODES["int8"].flag, help=flag_help("--int8"))] = False,
    float16: Annotated[bool, typer.Option(MODES["fp16"].flag, help=flag_help("--float16"))] = False,
    dynamic: Annotated[bool, typer.Option(MODES["dynamic"].flag, help=flag_help("--dynamic"))] = False,
    c: Annotated[bool, typer.Option(MODES["int8-c"].flag, help=flag_help("--c"))] = False,
    c_rounding: Annotated[
        str,
        typer.Option(
            help="The C's rounding: litert (equals LiteRT's default x86 path) or tflite-micro (equals TFLite Micro)."
        ),
    ] = "litert",
    formats: Annotated[
        Optional[List[str]],
        typer.Option("--format", help=f"Restrict to a format: {' or '.join(FORMATS)} (repeatable)."),
    ] = None,
    calibration_size: Annotated[
        int, typer.Option(help="Training images used to calibrate int8 models.")
    ] = 500,
    calibration_seed: Annotated[int, typer.Option(help="Seed choosing the calibration images.")] = 0,
    opset: Annotated[int, typer.Option(help="ONNX opset (13 to 18).")] = 17,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Directory with the four MNIST .gz files [env: DIGITKIT_DATA].")
    ] = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
) -> None:
    """Convert model.keras to TFLite and ONNX; --int8 adds the quantized models."""
    from digitkit.export.calibration import CalibrationSet
    from digitkit.export.formats import select_targets
    from digitkit.export.pipeline import ExportRequest, require_model_file, run_export
    from digitkit.export.tf_env import require_tensorflow
    from digitkit.runtime.errors import InputError
    from digitkit.runtime.files import ensure_writable_dir
    from digitkit.toolkit.data import data_checksums, load_mnist
    from digitkit.toolkit.training import read_record

    flags = {"--float16": float16, "--dynamic": dynamic, "--int8": int8, "--c": c}
    modes = [mode for flag, on in flags.items() if on for mode in modes_of_flag(flag)]
    targets = select_targets([f.lower() for f in formats] if formats else None, modes)
    if not 13 <= opset <= 18:
        raise InputError(
            f"--opset {opset} is outside 13 to 18", "tf2onnx 1.17 writes opsets 13 to 18; use 17"
        )
    if c_rounding not in ("litert", "tflite-micro"):
        raise InputError(f"--c-rounding {c_rounding!r} is unknown", "Use litert or tflite-micro")
    json_target = json_output(json_path)
    if model.is_dir() and (model / "model.keras").is_file():  # a training directory: its model
        model = model / "model.keras"
    require_model_file(model)
    training = read_record(model)  # refused before the work when it is another model's
    require_tensorflow()
    ensure_writable_dir(out, "export", "--out")
    progress_line("loading MNIST and TensorFlow")
    (x_train, _), (x_test, y_test) = load_mnist(data_dir)
    calibration = CalibrationSet.from_training_set(x_train, size=calibration_size, seed=calibration_seed)
    request = ExportRequest(
        model,
        out,
        targets,
        calibration,
        x_test,
        y_test,
        data_checksums(),
        training,
        opset,
        c_rounding,
        on_target=lambda target: progress_line(
            f"exporting {target.filename} ({target.format} {target.mode})"
        ),
    )
    result = run_export(request)

    fp32_size = {a.target.format: a.size_bytes for a in result.artifacts if a.target.mode == "fp32"}
    records: list[dict[str, Any]] = [
        {
            "format": a.target.format,
            "mode": a.target.mode,
            "file": a.path.name,
            "size_bytes": a.size_bytes,
            "size_vs_fp32": a.size_bytes / fp32_size[a.target.format]
            if a.target.format in fp32_size
            else None,
            "accuracy": a.accuracy if a.accuracy == a.accuracy else None,
            "vs_keras_pp": 100 * (a.accuracy - result.source_accuracy) if a.accuracy == a.accuracy else None,
            "backend": a.backend,
            "export_seconds": round(a.seconds, 3),
        }
        for a in result.artifacts
    ]
    summary = {
        "out": str(out),
        "manifest": str(result.manifest_path),
        "keras_accuracy": result.source_accuracy,
        "artifacts": records,
        "stale_removed": list(result.stale_removed),
        "stale_kept": list(result.stale_kept),
    }
    if result.stale_removed:
        note(
            f"Removed {plural(len(result.stale_removed), 'file')} of the previous export in {out} that this one "
            f"does not include: {', '.join(result.stale_removed)}"
        )
    if result.stale_kept:
        note(
            f"Kept {', '.join(result.stale_kept)} in {out}: listed by the previous export, changed since, "
            "and not in the new manifest (verify skips them; move them away if unwanted)"
        )
    if to_stdout(json_target):
        emit_json(json_target, summary)
        return
    rows = [
        [
            r["format"],
            r["mode"],
            r["file"],
            human_size(r["size_bytes"]),
            "n/a" if r["size_vs_fp32"] is None else f"{r['size_vs_fp32']:.2f}x",
            "n/a" if r["accuracy"] is None else f"{r['accuracy']:.4f}",
            "n/a" if r["vs_keras_pp"] is None else f"{r['vs_keras_pp']:+.2f}",
            r["backend"],
            f"{r['export_seconds']:.1f}",
        ]
        for r in records
    ]
    print_table(
        ["format", "mode", "file", "size", "vs fp32", "accuracy", "vs keras pp", "backend", "export s"], rows
    )
    echo(f"Keras model: accuracy {result.source_accuracy:.4f}. Manifest: {result.manifest_path}")
    emit_json(json_target, summary)
    echo("Next:")
    echo(f"  digitkit verify {out}")
    echo(f"  digitkit info {out}")
    echo(f"  digitkit predict IMAGE.png --model {out}")
