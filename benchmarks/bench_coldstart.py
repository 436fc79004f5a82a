"""Cold start: one prediction in a fresh process, `digitkit predict` against full TensorFlow.

Variants, each a new process run on one MNIST test digit written as a PNG:
  * digitkit:   ``digitkit predict one.png --model digit_mlp_int8.tflite`` (the console script)
  * tensorflow: ``python keras_predict.py one.png model.keras`` (imports TensorFlow, loads the Keras
    model, reads the PNG with Pillow, ``model.predict``)
  * litert-floor: ``python litert_predict.py one.png digit_mlp_int8.tflite`` (numpy + Pillow + LiteRT,
    no digitkit: the least a cold prediction on this stack can cost)

Runs are interleaved (digitkit, tensorflow, litert-floor, digitkit, ...); medians. Wall time is fork
to exit; peak RSS is the child's ru_maxrss from wait4, taken by a small launcher process (see
benchlib.measure_child for why not from this process). Goals: digitkit <= 0.5 s and <= 80 MB.

    python benchmarks/bench_coldstart.py [--export-dir DIR] [--keras model.keras] [--runs 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

import benchlib
from benchlib import Table, fmt_ratio, goal, median

GOAL_SECONDS = 0.5
GOAL_RSS_MB = 80.0


def write_digit_png(path: Path, index: int = 0) -> int:
    """MNIST test image ``index`` as a 28x28 grayscale PNG; returns its label."""
    from PIL import Image

    from digitkit.toolkit.data import load_mnist_test

    x_test, y_test = load_mnist_test()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x_test[index], mode="L").save(path)
    return int(y_test[index])


def _digit_from(name: str, stdout: str) -> Optional[int]:
    if name == "digitkit":
        match = re.search(r"\bdigit (\d)\b", stdout)
        return int(match.group(1)) if match else None
    return benchlib.last_json_line(stdout)["digit"]


def run(export_dir: Path, keras_path: Path, runs: int = 5, work: Optional[Path] = None, log: Callable[[str], None] = print) -> dict:
    export_dir = Path(export_dir)
    work = Path(work or tempfile.mkdtemp(prefix="digitkit-bench-cold-"))
    png = work / "one.png"
    label = write_digit_png(png)
    int8 = export_dir / "digit_mlp_int8.tflite"
    commands = {
        "digitkit": [*benchlib.digitkit_command(), "predict", str(png), "--model", str(int8)],
        "tensorflow": [benchlib.PYTHON, str(benchlib.BENCH_DIR / "keras_predict.py"), str(png), str(keras_path)],
        "litert_floor": [benchlib.PYTHON, str(benchlib.BENCH_DIR / "litert_predict.py"), str(png), str(int8)],
    }
    samples = {name: [] for name in commands}
    # One untimed run each first: the page cache then holds every file, as on any second launch.
    for name, argv in commands.items():
        benchlib.measure_child(argv)
    for i in range(runs):
        log(f"[coldstart] round {i + 1}/{runs}")
        for name, argv in (commands.items() if i % 2 == 0 else reversed(list(commands.items()))):
            child = benchlib.measure_child(argv)
            samples[name].append({"wall_s": child["wall_s"], "maxrss_mb": child["maxrss_mb"], "cpu_s": child["user_s"] + child["sys_s"], "digit": _digit_from(name, child["stdout"])})
    result = {"image": str(png), "label": label, "runs": runs, "commands": {k: " ".join(v) for k, v in commands.items()}, "variants": {}}
    for name, rows in samples.items():
        result["variants"][name] = {
            "median_wall_s": median(r["wall_s"] for r in rows),
            "median_maxrss_mb": median(r["maxrss_mb"] for r in rows),
            "median_cpu_s": median(r["cpu_s"] for r in rows),
            "digits": sorted({r["digit"] for r in rows}, key=str),
            "runs": rows,
        }
    v = result["variants"]
    result["ratio_wall_tensorflow_over_digitkit"] = v["tensorflow"]["median_wall_s"] / v["digitkit"]["median_wall_s"]
    result["ratio_rss_tensorflow_over_digitkit"] = v["tensorflow"]["median_maxrss_mb"] / v["digitkit"]["median_maxrss_mb"]
    result["ratio_wall_digitkit_over_litert_floor"] = v["digitkit"]["median_wall_s"] / v["litert_floor"]["median_wall_s"]
    result["ratio_rss_digitkit_over_litert_floor"] = v["digitkit"]["median_maxrss_mb"] / v["litert_floor"]["median_maxrss_mb"]
    result["goal_seconds"] = goal(v["digitkit"]["median_wall_s"], GOAL_SECONDS)
    result["goal_rss"] = goal(v["digitkit"]["median_maxrss_mb"], GOAL_RSS_MB)
    return result


def tables(result: dict) -> list:
    v = result["variants"]
    labels = {
        "digitkit": "`digitkit predict` (int8 .tflite)",
        "tensorflow": "TensorFlow + Keras script (model.keras)",
        "litert_floor": "numpy + Pillow + LiteRT script (int8 .tflite)",
    }
    rows = []
    for name, label in labels.items():
        r = v[name]
        wall_goal = result["goal_seconds"] if name == "digitkit" else ""
        rss_goal = result["goal_rss"] if name == "digitkit" else ""
        rows.append([
            label, f"{r['median_wall_s']:.3f} s", wall_goal, f"{r['median_maxrss_mb']:.0f} MB", rss_goal,
            f"{r['median_cpu_s']:.2f} s", ",".join(map(str, r["digits"])),
        ])
    return [Table(
        f"Cold start: one PNG digit (label {result['label']}) in a fresh process, {result['runs']} interleaved runs each (medians)",
        ["process", "wall", f"goal <= {GOAL_SECONDS} s", "peak RSS", f"goal <= {GOAL_RSS_MB:.0f} MB", "CPU time", "digit"],
        rows,
        [
            f"TensorFlow / digitkit: {fmt_ratio(result['ratio_wall_tensorflow_over_digitkit'])} wall time, "
            f"{fmt_ratio(result['ratio_rss_tensorflow_over_digitkit'])} peak RSS. "
            f"digitkit / LiteRT floor: {fmt_ratio(result['ratio_wall_digitkit_over_litert_floor'])} wall time, "
            f"{fmt_ratio(result['ratio_rss_digitkit_over_litert_floor'])} peak RSS.",
        ],
    )]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, default=None, help="A `digitkit export --int8` directory (default: train and export a 1-epoch model into a temp dir).")
    parser.add_argument("--keras", type=Path, default=None, help="The model.keras (default: EXPORT_DIR/../train/model.keras).")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    export_dir, keras_path = args.export_dir, args.keras
    if export_dir is None:
        export_dir, keras_path = benchlib.make_workspace(Path(tempfile.mkdtemp(prefix="digitkit-bench-")), epochs=1)
    keras_path = keras_path or Path(export_dir).parent / "train" / "model.keras"
    result = run(export_dir, keras_path, args.runs)
    benchlib.print_tables(tables(result))
    if args.json:
        benchlib.write_json(args.json, result)


if __name__ == "__main__":
    main(sys.argv[1:])
