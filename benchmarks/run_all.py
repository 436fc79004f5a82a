"""Run the whole benchmark suite on a fresh workspace and write results/latest.json and latest.md.

    python benchmarks/run_all.py [--out benchmarks/results] [--quick] [--work DIR] [--keep]

Steps (the full run takes about 5-6 minutes on a 2-core x86_64 machine; --quick about 1.5):
  1. training   digitkit train vs the plain Keras script, interleaved (3 runs each at 4 epochs;
                --quick: 1 run each at 1 epoch). The first digitkit model is the workspace model.
  2. export     digitkit export --int8 --dynamic --float16 of that model (timed).
  3. sizes      artifact sizes from the manifest, ratio to fp32 of the same format.
  4. coldstart  digitkit predict one.png in a fresh process vs TensorFlow + Keras (and a bare LiteRT floor).
  5. runtime    digitkit runtime vs bare LiteRT / onnxruntime per artifact, then tf.lite.Interpreter and
                Keras (TensorFlow is imported only for this last part).
The environment is used as found (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE, ... are recorded, not changed).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import benchlib
import bench_coldstart
import bench_runtime
import bench_sizes
import bench_training
from benchlib import Table, fmt_ratio


def log(message: str) -> None:
    print(message, flush=True)


def summary_table(results: dict) -> Table:
    rows = []
    runtime = results.get("runtime")
    if runtime:
        for key, limit, label in (
            ("batch1_ratio_uint8", bench_runtime.GOAL_BATCH1, "runtime/bare, batch 1, uint8 input"),
            ("batch1_ratio_float32", bench_runtime.GOAL_BATCH1, "runtime/bare, batch 1, float32 input"),
            ("big_ratio_uint8", bench_runtime.GOAL_BATCH1000, "runtime/bare, batch 1000, uint8 input (CPU time)"),
            ("big_ratio_float32", bench_runtime.GOAL_BATCH1000, "runtime/bare, batch 1000, float32 input (CPU time)"),
        ):
            arts = runtime["artifacts"]
            met = sum(1 for a in arts if a[key] <= limit)
            int8 = next((a for a in arts if a["file"].endswith("int8.tflite")), None)
            worst = max(arts, key=lambda a: a[key])
            rows.append([
                label, f"<= {limit:.2f}x",
                f"int8.tflite {fmt_ratio(int8[key])}" if int8 else "",
                f"{worst['file']} {fmt_ratio(worst[key])}",
                f"{met}/{len(arts)} met" if met == len(arts) else f"MISSED on {len(arts) - met}/{len(arts)}",
            ])
    cold = results.get("coldstart")
    if cold:
        d = cold["variants"]["digitkit"]
        rows.append(["digitkit predict, cold process, wall", f"<= {bench_coldstart.GOAL_SECONDS} s", f"{d['median_wall_s']:.3f} s", "", cold["goal_seconds"]])
        rows.append(["digitkit predict, cold process, peak RSS", f"<= {bench_coldstart.GOAL_RSS_MB:.0f} MB", f"{d['median_maxrss_mb']:.0f} MB", "", cold["goal_rss"]])
    training = results.get("training")
    notes = []
    if training:
        notes.append(
            f"Training: digitkit train / plain Keras wall time {fmt_ratio(training['ratio_wall_digitkit_over_plain'])} "
            f"(model.fit {fmt_ratio(training['ratio_fit_digitkit_over_plain'])}); accuracy "
            f"{training['digitkit']['median_test_accuracy']:.4f} vs {training['plain']['median_test_accuracy']:.4f}."
        )
    return Table("Goals (reported, not asserted)", ["goal", "limit", "measured", "worst artifact", "status"], rows, notes)


def machine_table(info: dict, timings: dict, quick: bool) -> Table:
    v = info["versions"]
    rows = [
        ["CPU", f"{info['cpu_model']} ({info['cores']} cores, {info['cores_usable']} usable), {info['machine']}, {info['memory_gb']} GB"],
        ["system", info["system"]],
        ["python", f"{info['python']} ({info['python_executable']})"],
        ["libraries", ", ".join(f"{k} {val}" for k, val in v.items() if k != "python")],
        ["environment", ", ".join(f"{k}={val}" for k, val in info["env"].items()) or "(no OPENBLAS_/OMP_/TF_ variables set)"],
        ["date (UTC)", info["date"]],
        ["load average", f"start {info['loadavg_at_start']}, end {info.get('loadavg_at_end')}"],
        ["mode", "quick (smoke test: few runs, numbers are rough)" if quick else "full"],
        ["phase times", ", ".join(f"{k} {val:.0f} s" for k, val in timings.items())],
    ]
    notes = []
    start = info.get("loadavg_at_start") or [0]
    if start[0] > 0.5 or (info.get("loadavg_at_end") or [0])[0] > 0.5:
        notes.append("NOTE: other processes were running (load average above 0.5): absolute numbers are noisier; "
                     "ratios still come from interleaved, side-by-side measurements.")
    return Table("Machine", ["item", "value"], rows, notes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=benchlib.BENCH_DIR / "results", help="Where latest.json and latest.md go.")
    parser.add_argument("--quick", action="store_true", help="A smoke test: 1 epoch, 1 training run each, short timing loops.")
    parser.add_argument("--work", type=Path, default=None, help="Workspace for the trained and exported models (default: a new temp dir).")
    parser.add_argument("--keep", action="store_true", help="Keep the workspace (always kept when --work is given).")
    parser.add_argument("--render", action="store_true", help="Only rewrite latest.md (and print the tables) from OUT/latest.json.")
    args = parser.parse_args(argv)
    if args.render:
        write_report(json.loads((args.out / "latest.json").read_text()), args.out)
        return 0

    started = time.perf_counter()
    info = benchlib.machine_info()
    work = args.work or Path(tempfile.mkdtemp(prefix="digitkit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    log(f"digitkit benchmark suite ({'quick' if args.quick else 'full'}), workspace {work}")
    log(f"machine: {info['cpu_model']}, {info['cores']} cores, python {info['python']}, load {info['loadavg_at_start']}")
    timings: dict = {}
    results: dict = {}

    def phase(name):
        timings[name] = time.perf_counter() - phase.started
        phase.started = time.perf_counter()
    phase.started = time.perf_counter()

    errors: dict = {}

    def attempt(name, fn):
        """Run one phase; a failure is recorded and reported, and the other phases still run."""
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - a benchmark run should report, not vanish
            import traceback

            errors[name] = f"{type(exc).__name__}: {exc}"
            log(f"[{name}] FAILED: {errors[name]}")
            traceback.print_exc()
        phase(name)

    try:
        # 1. training (the first digitkit run is also the workspace model)
        runs, epochs = (1, 1) if args.quick else (3, 4)
        attempt("training", lambda: bench_training.run(runs, epochs, work=work / "training", log=log))
        keras_path = work / "training" / "digitkit-1" / "model.keras"
        if not keras_path.is_file():  # training benchmark failed: still build a workspace model
            log("[workspace] training benchmark gave no model; training one for the other benchmarks")
            benchlib.train_model(keras_path.parent, epochs)

        # 2. export
        export_dir = work / "export"

        def export():
            log("[export] digitkit export --int8 --dynamic --float16")
            child = benchlib.export_model(keras_path, export_dir)
            log(f"[export]   {child['wall_s']:.1f} s")
            return {"wall_s": child["wall_s"], "maxrss_mb": child["maxrss_mb"], "export_dir": str(export_dir), "model": str(keras_path)}
        attempt("export", export)

        # 3. sizes
        def sizes():
            out = bench_sizes.run(export_dir)
            out["keras_model_bytes"] = keras_path.stat().st_size
            return out
        attempt("sizes", sizes)

        # 4. cold start (before TensorFlow is ever imported here)
        attempt("coldstart", lambda: bench_coldstart.run(export_dir, keras_path, runs=2 if args.quick else 5, work=work, log=log))

        # 5. runtime (TensorFlow imported only in its last part)
        attempt("runtime", lambda: bench_runtime.run(export_dir, keras_path, quick=args.quick, log=log))
    finally:
        if not args.work and not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    total = time.perf_counter() - started
    timings["total"] = total
    info["loadavg_at_end"] = benchlib.loadavg()
    document = {
        "suite": "digitkit benchmarks", "quick": args.quick, "machine": info, "phase_seconds": timings,
        "workspace": str(work) if (args.work or args.keep) else "(deleted)", "errors": errors, **results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    benchlib.write_json(args.out / "latest.json", document)
    write_report(document, args.out)
    return 1 if errors else 0


def report_tables(document: dict) -> list:
    """Every table, from a latest.json document (so a report can be re-rendered without re-running)."""
    tables = [machine_table(document["machine"], document["phase_seconds"], document["quick"]), summary_table(document)]
    for name, module in (("training", bench_training), ("runtime", bench_runtime), ("coldstart", bench_coldstart), ("sizes", bench_sizes)):
        if name in document:
            tables += module.tables(document[name])
    if "export" in document:
        export = document["export"]
        tables.append(Table("Export", ["step", "wall", "peak RSS"], [["digitkit export --int8 --dynamic --float16", f"{export['wall_s']:.1f} s", f"{export['maxrss_mb']:.0f} MB"]]))
    if document.get("errors"):
        tables.append(Table("FAILED phases", ["phase", "error"], [[k, v[:300]] for k, v in document["errors"].items()]))
    return tables


def write_report(document: dict, out: Path) -> None:
    """Write latest.md and print the tables."""
    tables = report_tables(document)
    total = document["phase_seconds"]["total"]
    md = ["# digitkit benchmark results", "", f"`python benchmarks/run_all.py{' --quick' if document['quick'] else ''}`, "
          f"{document['machine']['date']}, total {total:.0f} s.", ""]
    md += [t.markdown() for t in tables]
    (out / "latest.md").write_text("\n".join(md))
    print()
    benchlib.print_tables(tables)
    log(f"Wrote {out / 'latest.json'} and {out / 'latest.md'}. Total {total:.0f} s ({total / 60:.1f} min).")

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
