"""Run the benchmark suite, write results/latest.json and latest.md, and print the tables (README.md).

python benchmarks/run_all.py [--quick] [--out DIR] [--work DIR]
python benchmarks/run_all.py --export-dir DIR [--keras model.keras] [--only runtime,sizes]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import bench_coldstart
import bench_runtime
import bench_serve
import bench_sizes
import bench_tensorflow
import bench_training
from common import BENCH_DIR, DIGITKIT, Machine, Table, Workspace, render, run_child

from digitkit.runtime.files import write_bytes_atomic, write_json_atomic

log = partial(print, flush=True)
# In this order: training gives the workspace model, and TensorFlow is imported in this process last.
MODULES = (bench_training, bench_sizes, bench_coldstart, bench_runtime, bench_serve, bench_tensorflow)
PHASES = {module.__name__.removeprefix("bench_"): module for module in MODULES}


@dataclass
class Report:
    quick: bool
    machine: Machine
    workspace: Workspace
    seconds: dict = field(default_factory=dict)  # per phase
    errors: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # phase -> its result; "export" -> the export's Child

    def phase(self, name: str, fn) -> None:  # a failure is recorded and reported; the others still run
        started = time.perf_counter()
        try:
            self.results[name] = fn()
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"[:2000]
            traceback.print_exc()
        self.seconds[name] = round(time.perf_counter() - started, 1)


def main(argv: list) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke run (about a minute): rough numbers.")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="For latest.json and .md")
    parser.add_argument("--work", type=Path, help="Workspace to keep the models in (default: a temp dir).")
    parser.add_argument("--export-dir", type=Path, help="Use this export instead of training one.")
    parser.add_argument("--keras", type=Path, help="Its model.keras (default: EXPORT_DIR/../train/).")
    parser.add_argument("--only", default=",".join(PHASES), help="Comma-separated phases (default: all).")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="digitkit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    export_dir = args.export_dir or work / "export"
    trained = export_dir.parent / "train" if args.export_dir else work / "training" / "digitkit-1"
    ws = Workspace(export_dir, args.keras or trained / "model.keras", work, args.quick)
    report = Report(args.quick, Machine.now(), ws)
    print(f"digitkit benchmarks{' --quick' * args.quick} in {work}, load {report.machine.load_at_start}")
    try:
        for name, module in PHASES.items():
            if name in args.only.split(","):
                report.phase(name, lambda module=module: module.run(ws, log))
            if name == "training" and not args.export_dir:
                report.phase("export", lambda: export(ws))
    finally:
        report.machine.finish()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out / "latest.json", json.loads(json.dumps(asdict(report), default=str)))
    tables = report_tables(report)
    title = f"# digitkit benchmark results\n\n`python benchmarks/run_all.py{' --quick' * args.quick}`\n\n"
    write_bytes_atomic(args.out / "latest.md", (title + render(tables, markdown=True)).encode())
    print(render(tables, markdown=False), f"Wrote {args.out}/latest.json and latest.md.", sep="\n")
    return 1 if report.errors else 0


def export(ws: Workspace):
    if not ws.keras.is_file():  # the training phase was skipped or failed: train one model
        bench_training.train_digitkit(ws.keras.parent, 1 if ws.quick else 4)
    log("[export] digitkit export --int8 --dynamic --float16")
    argv = [DIGITKIT, "export", "--int8", "--dynamic", "--float16", "--model", ws.keras]
    return run_child([*argv, "--out", ws.export_dir])


def report_tables(r: Report) -> list:
    m = asdict(r.machine)
    m["versions"] = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    m["env"] = ", ".join(f"{k}={v}" for k, v in m["env"].items())
    m["mode, seconds"] = f"{'quick' if r.quick else 'full'}: {r.seconds}"
    busy = max(r.machine.load_at_start[0], r.machine.load_at_end[0]) > 0.5
    note = "NOTE: other work was running (load above 0.5): absolute numbers are noisier, ratios less so."
    tables = [Table("Machine", "item | value", [[k, v] for k, v in m.items()], note if busy else "")]
    for name, result in r.results.items():
        tables += PHASES[name].tables(result) if name in PHASES else []
    tables.insert(1, goal_summary(tables))
    if r.errors:
        tables.append(Table("FAILED phases", "phase | error", [[k, v[:300]] for k, v in r.errors.items()]))
    return tables


def goal_summary(tables: list) -> Table:
    """Every "goal" column of the other tables, counted: goals are reported, never asserted."""
    rows = []
    for t in tables:
        for i, header in enumerate(t.headers.split(" | ")):
            if header.startswith("goal"):
                cells = [(row[0], row[i - 1], row[i]) for row in t.rows if row[i]]
                missed = ", ".join(f"{name} {value}" for name, value, status in cells if status == "MISSED")
                status = f"MISSED: {missed}" if missed else f"{len(cells)}/{len(cells)} met"
                rows.append([t.title, header[5:], status])
    return Table("Goals (reported, not asserted)", "table | goal | status", rows)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
