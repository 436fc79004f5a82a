"""What every benchmark shares: interleaved timing, measured child processes, the machine, tables.
The environment is used as found (OPENBLAS_*, ... are recorded, not changed) and passed to children."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from digitkit.toolkit.benchmark import time_calls
from digitkit.toolkit.training import library_versions

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
DIGITKIT = str(Path(PYTHON).with_name("digitkit"))
LIBRARIES = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "tensorflow-cpu", "pillow")
ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "TF_", "KERAS_", "PYTHON", "DIGITKIT_")
us = lambda seconds: f"{seconds * 1e6:.1f} µs"
rate = lambda batch, seconds: f"{batch / seconds / 1000:.1f}k/s"
x = lambda ratio: f"{ratio:.2f}x"
goal = lambda value, limit: "met" if value <= limit else "MISSED"
median = lambda values: float(np.median(list(values)))


@dataclass
class Workspace:  # what the phases work on
    export_dir: Path
    keras: Path
    work: Path
    quick: bool


@dataclass
class Timing:  # seconds per call: median wall time, median CPU time of the calling thread; calls timed
    median: float
    cpu: float
    n: int


def interleave(variants: dict[str, Callable[[], object]], blocks: int, calls: int, warmup: int) -> dict:
    """name -> Timing, from alternating blocks (reversed order on odd blocks: drift hits all alike);
    every call timed alone (digitkit.toolkit.benchmark.time_calls), CPU time taken per block."""
    for fn in variants.values():
        time_calls(fn, 0, warmup)
    wall: dict = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for b in range(blocks):
        for name in list(variants)[:: 1 if b % 2 == 0 else -1]:
            started = time.thread_time()
            wall[name].append(time_calls(variants[name], calls, warmup=0))
            cpu[name].append((time.thread_time() - started) / calls)
    return {n: Timing(median(np.concatenate(wall[n])), median(cpu[n]), blocks * calls) for n in wall}


# A small launcher (python -S, about 8 MB) forks, execs and reaps the measured command with wait4:
# Linux folds the RSS a child had before execve into its ru_maxrss, so a child forked straight from
# a big benchmark process (TensorFlow loaded: 600+ MB) would report at least the parent's size.
_LAUNCHER = r"""
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, use = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    json.dump([time.perf_counter() - start, use.ru_maxrss / 1024, use.ru_utime + use.ru_stime,
               os.waitstatus_to_exitcode(status)], out)
"""


@dataclass
class Child:
    wall_s: float  # fork to exit
    rss_mb: float  # the child's own peak RSS
    cpu_s: float
    stdout: str = field(repr=False)


def run_child(argv: list, env: Optional[dict] = None) -> Child:
    """Run ``argv`` in a fresh process, measured by the launcher; raise with its output if it fails."""
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        launch = [PYTHON, "-S", "-c", _LAUNCHER, result.name, *map(str, argv)]
        done = subprocess.run(launch, env=env, capture_output=True, text=True)
        measured = Path(result.name).read_text()
    if done.returncode or not measured or json.loads(measured)[3]:
        command = " ".join(map(str, argv))
        raise RuntimeError(f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return Child(*json.loads(measured)[:3], done.stdout)


def last_json(text: str) -> dict:
    return json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))


@dataclass
class Machine:
    system: str  # CPU, cores, memory, kernel
    python: str
    env: dict  # OPENBLAS_*, OMP_*, TF_*, ... as found
    date: str
    load_at_start: list
    load_at_end: list = field(default_factory=list)
    versions: dict = field(default_factory=dict)

    @classmethod
    def now(cls) -> Machine:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next((ln.split(":")[1].strip() for ln in info if ln.startswith("model name")), "?")
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        system = f"{cpu}, {os.cpu_count()} cores, {memory:.1f} GB, {platform.system()} {platform.release()}"
        env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES)}
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(system, PYTHON, env, date, [round(v, 2) for v in os.getloadavg()])

    def finish(self) -> None:
        """Load and versions at the end: TensorFlow and Keras show in library_versions once imported."""
        self.load_at_end, self.versions = [round(v, 2) for v in os.getloadavg()], library_versions()
        for name in LIBRARIES:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                self.versions[name] = importlib.metadata.version(name)


@dataclass
class Table:
    title: str
    headers: str  # "a | b | c"
    rows: list
    note: str = ""


def render(tables: list, markdown: bool) -> str:
    """The tables as Markdown (for latest.md), or as text for the terminal (rich when installed)."""
    try:
        import rich.console
        import rich.table
    except ImportError:
        markdown = True
    if markdown:
        parts = []
        for t in tables:
            lines = [f"### {t.title}", "", f"| {t.headers} |", "|" + " --- |" * len(t.headers.split("|"))]
            lines += ["| " + " | ".join(map(str, row)) + " |" for row in t.rows]
            parts.append("\n".join(lines) + (f"\n\n{t.note}" if t.note else "") + "\n")
        return "\n".join(parts)
    console = rich.console.Console(width=240)
    with console.capture() as captured:
        for t in tables:
            table = rich.table.Table(*t.headers.split(" | "), title=t.title, caption=t.note)
            table.title_justify = table.caption_justify = "left"
            for row in t.rows:
                table.add_row(*map(str, row))
            console.print(table, "")
    return captured.get()
