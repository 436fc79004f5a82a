"""Training: `digitkit train` (the CLI, a fresh process) against the plain Keras script of the seed recipe.

Runs are interleaved (digitkit, plain, digitkit, plain, ...) so drift in machine load hits both alike;
every figure is the median over runs. Wall time is measured outside the child, from fork to exit, so
it includes interpreter start-up, imports, data loading, training, evaluation and (for digitkit)
saving model.keras and training.json.

    python benchmarks/bench_training.py [--runs 3] [--epochs 4] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

import benchlib
from benchlib import Table, fmt_ratio, median

PLAIN_SCRIPT = benchlib.BENCH_DIR / "plain_keras_mnist.py"


def run_digitkit(out_dir: Path, epochs: int) -> dict:
    child = benchlib.train_model(out_dir, epochs)
    record = json.loads((out_dir / "training.json").read_text())
    return {
        "wall_s": child["wall_s"], "maxrss_mb": child["maxrss_mb"], "cpu_s": child["user_s"] + child["sys_s"],
        "fit_s": record["train_seconds"], "test_accuracy": record["test_accuracy"],
    }


def run_plain(epochs: int) -> dict:
    child = benchlib.measure_child([benchlib.PYTHON, str(PLAIN_SCRIPT), "--epochs", str(epochs)])
    record = benchlib.last_json_line(child["stdout"])
    return {
        "wall_s": child["wall_s"], "maxrss_mb": child["maxrss_mb"], "cpu_s": child["user_s"] + child["sys_s"],
        "fit_s": record["fit_seconds"], "test_accuracy": record["test_accuracy"],
    }


def run(runs: int = 3, epochs: int = 4, work: Optional[Path] = None, log: Callable[[str], None] = print) -> dict:
    """Interleaved runs; ``work``/digitkit-1 keeps the first digitkit model (run_all exports it)."""
    owned = work is None
    work = Path(work or tempfile.mkdtemp(prefix="digitkit-bench-train-"))
    digitkit_runs, plain_runs = [], []
    for i in range(runs):
        out = work / f"digitkit-{i + 1}"
        log(f"[training] run {i + 1}/{runs}: digitkit train --epochs {epochs}")
        digitkit_runs.append(run_digitkit(out, epochs))
        log(f"[training]   {digitkit_runs[-1]['wall_s']:.1f} s, accuracy {digitkit_runs[-1]['test_accuracy']:.4f}")
        log(f"[training] run {i + 1}/{runs}: plain_keras_mnist.py --epochs {epochs}")
        plain_runs.append(run_plain(epochs))
        log(f"[training]   {plain_runs[-1]['wall_s']:.1f} s, accuracy {plain_runs[-1]['test_accuracy']:.4f}")
    result = {"epochs": epochs, "runs": runs, "order": "interleaved: digitkit, plain, digitkit, plain, ...",
              "digitkit": {"runs": digitkit_runs}, "plain": {"runs": plain_runs},
              "first_model": str(work / "digitkit-1" / "model.keras")}
    for side in ("digitkit", "plain"):
        for key in ("wall_s", "fit_s", "cpu_s", "maxrss_mb", "test_accuracy"):
            result[side][f"median_{key}"] = median(r[key] for r in result[side]["runs"])
    result["ratio_wall_digitkit_over_plain"] = result["digitkit"]["median_wall_s"] / result["plain"]["median_wall_s"]
    result["ratio_fit_digitkit_over_plain"] = result["digitkit"]["median_fit_s"] / result["plain"]["median_fit_s"]
    result["accuracy_difference"] = result["digitkit"]["median_test_accuracy"] - result["plain"]["median_test_accuracy"]
    if owned:
        result["work_dir"] = str(work)
    return result


def tables(result: dict) -> list:
    rows = []
    for side, label in (("digitkit", "`digitkit train` (CLI)"), ("plain", "plain Keras script")):
        r = result[side]
        rows.append([
            label, f"{r['median_wall_s']:.2f} s", f"{r['median_fit_s']:.2f} s", f"{r['median_cpu_s']:.1f} s",
            f"{r['median_maxrss_mb']:.0f} MB", f"{r['median_test_accuracy']:.4f}",
            ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"]),
        ])
    rows.append([
        "ratio digitkit / plain", fmt_ratio(result["ratio_wall_digitkit_over_plain"]),
        fmt_ratio(result["ratio_fit_digitkit_over_plain"]), "", "",
        f"{result['accuracy_difference']:+.4f}", "",
    ])
    return [Table(
        f"Training: seed recipe, {result['epochs']} epochs, {result['runs']} interleaved runs each (medians)",
        ["trainer", "wall (start to exit)", "model.fit", "CPU time", "peak RSS", "test accuracy", "wall per run (s)"],
        rows,
        ["wall: fork to exit of the child process. model.fit: inside the process (digitkit: training.json "
         "train_seconds; plain: its fit_seconds). digitkit also evaluates, saves model.keras and hashes it."],
    )]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None, help="Where the digitkit runs write (default: a temp dir).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the result here.")
    args = parser.parse_args(argv)
    result = run(args.runs, args.epochs, args.work)
    benchlib.print_tables(tables(result))
    if args.json:
        benchlib.write_json(args.json, result)


if __name__ == "__main__":
    main(sys.argv[1:])
