"""Shared helpers for the benchmark suite: timing, child-process measurement, machine info, tables.

Nothing here changes the environment: OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE and the like are recorded
as found and passed unchanged to every child process.
"""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable
LIBRARIES = (
    "digitkit", "numpy", "tensorflow-cpu", "tensorflow", "keras", "ai-edge-litert", "tflite-runtime",
    "onnxruntime", "onnx", "tf2onnx", "pillow", "typer", "protobuf",
)
ENV_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "TF_", "KERAS_", "PYTHON", "DIGITKIT_")


# ----------------------------------------------------------------------------- the digitkit CLI

def digitkit_command() -> List[str]:
    """How to run the `digitkit` console script of this interpreter's environment."""
    script = Path(PYTHON).with_name("digitkit")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("digitkit")
    if found:
        return [found]
    return [PYTHON, "-m", "digitkit.toolkit"]


# ----------------------------------------------------------------------------- child processes

# A small launcher (python -S: no site, ~8 MB) forks and execs the measured command and reaps it with
# wait4. Measuring from here instead of from the benchmark process matters: Linux folds the RSS of
# the image a child had before execve into its ru_maxrss, and a child forked (or vforked) by a big
# parent (TensorFlow loaded: 600+ MB) would report at least the parent's size.
_LAUNCHER = r"""
import json, os, sys, time
out = sys.argv[1]
argv = sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(out, "w") as handle:
    json.dump({"wall_s": wall, "maxrss_kb": usage.ru_maxrss, "user_s": usage.ru_utime,
               "sys_s": usage.ru_stime, "exit": os.waitstatus_to_exitcode(status)}, handle)
"""


class ChildRun(dict):
    """wall_s (fork to reaped), maxrss_mb (the child's peak RSS), user_s, sys_s, exit, stdout, stderr."""


def measure_child(argv: Sequence[str], cwd: Optional[Path] = None, env: Optional[dict] = None, timeout: float = 900) -> ChildRun:
    """Run ``argv`` in a fresh process; wall time from fork to exit and peak RSS of that process alone."""
    fd, result_path = tempfile.mkstemp(prefix="digitkit-bench-", suffix=".json")
    os.close(fd)
    try:
        done = subprocess.run(
            [PYTHON, "-S", "-c", _LAUNCHER, result_path, *map(str, argv)],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
        )
        try:
            data = json.loads(Path(result_path).read_text())
        except ValueError:
            raise RuntimeError(f"launcher failed for {argv}: {done.stderr[-2000:]}")
    finally:
        os.unlink(result_path)
    run = ChildRun(
        wall_s=data["wall_s"], maxrss_mb=data["maxrss_kb"] / 1024.0, user_s=data["user_s"], sys_s=data["sys_s"],
        exit=data["exit"], stdout=done.stdout, stderr=done.stderr,
    )
    if run["exit"] != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} exited with {run['exit']}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return run


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"no JSON line in output: {text[-500:]!r}")


# ----------------------------------------------------------------------------- in-process timing

def time_interleaved(variants: Dict[str, Tuple[Callable, object]], blocks: int, calls: int, warmup: int = 50, cpu_per_call: bool = False) -> Dict[str, np.ndarray]:
    """Per-call wall times (seconds) of each ``fn(arg)``, measured in alternating blocks.

    Block b runs every variant ``calls`` times, in the listed order for even b and reversed for odd
    b, so slow drift (frequency, other load, caches) hits all variants alike. Every call is timed on
    its own; the result is (blocks * calls) samples per variant under ``name``.

    The CPU time of the calling thread is recorded too, under ``name + ".cpu"``: per call with
    ``cpu_per_call`` (for calls of a millisecond or more: the clock is a system call), else per block
    (block CPU time / calls, ``blocks`` samples). It excludes time the thread spent preempted, so it
    is the steadier measure on a busy machine, valid when all work runs on the calling thread (LiteRT
    and onnxruntime with one thread do).
    """
    names = list(variants)
    for name in names:
        fn, arg = variants[name]
        for _ in range(warmup):
            fn(arg)
    samples = {name: np.empty(blocks * calls) for name in names}
    cpu = {name: np.empty(blocks * calls if cpu_per_call else blocks) for name in names}
    clock = time.perf_counter
    cpu_clock = time.thread_time
    for b in range(blocks):
        order = names if b % 2 == 0 else names[::-1]
        for name in order:
            fn, arg = variants[name]
            out = samples[name]
            out_cpu = cpu[name]
            base = b * calls
            if cpu_per_call:
                for i in range(calls):
                    cpu_started = cpu_clock()
                    started = clock()
                    fn(arg)
                    out[base + i] = clock() - started
                    out_cpu[base + i] = cpu_clock() - cpu_started
            else:
                cpu_started = cpu_clock()
                for i in range(calls):
                    started = clock()
                    fn(arg)
                    out[base + i] = clock() - started
                out_cpu[b] = (cpu_clock() - cpu_started) / calls
    for name in names:
        samples[name + ".cpu"] = cpu[name]
    return samples


def summarize(samples: np.ndarray) -> dict:
    return {
        "median": float(np.median(samples)),
        "p10": float(np.percentile(samples, 10)),
        "p90": float(np.percentile(samples, 90)),
        "n": int(samples.size),
    }


def summarize_all(samples: Dict[str, np.ndarray]) -> Dict[str, dict]:
    """summarize() of every variant of a time_interleaved() result, with its CPU-time median folded in."""
    out = {}
    for name, values in samples.items():
        if name.endswith(".cpu"):
            continue
        out[name] = summarize(values)
        if name + ".cpu" in samples:
            out[name]["cpu_median"] = float(np.median(samples[name + ".cpu"]))
    return out


def median(values: Iterable[float]) -> float:
    return float(np.median(np.asarray(list(values), dtype=float)))


def goal(value: float, limit: float) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return "met" if value <= limit else "MISSED"


# ----------------------------------------------------------------------------- machine info

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def loadavg() -> Optional[list]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict:
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "memory_gb": mem_total,
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "python_executable": PYTHON,
        "versions": library_versions(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(ENV_PREFIXES) and k != "PYTHONPATH"},
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loadavg_at_start": loadavg(),
    }


# ----------------------------------------------------------------------------- workspace

def train_model(out_dir: Path, epochs: int) -> ChildRun:
    return measure_child([*digitkit_command(), "train", "--out", str(out_dir), "--epochs", str(epochs)])


def export_model(keras_path: Path, out_dir: Path) -> ChildRun:
    return measure_child([*digitkit_command(), "export", "--model", str(keras_path), "--out", str(out_dir), "--int8", "--dynamic", "--float16"])


def make_workspace(work: Path, epochs: int = 1, log=print) -> Tuple[Path, Path]:
    """Train (digitkit train) and export every mode into ``work``; return (export dir, model.keras)."""
    train_dir, export_dir = work / "train", work / "export"
    log(f"[workspace] digitkit train --epochs {epochs} --out {train_dir}")
    train_model(train_dir, epochs)
    log(f"[workspace] digitkit export --int8 --dynamic --float16 --out {export_dir}")
    export_model(train_dir / "model.keras", export_dir)
    return export_dir, train_dir / "model.keras"


def read_manifest(export_dir: Path) -> dict:
    return json.loads((Path(export_dir) / "manifest.json").read_text())


# ----------------------------------------------------------------------------- tables

class Table:
    def __init__(self, title: str, headers: Sequence[str], rows: List[Sequence], notes: Sequence[str] = ()) -> None:
        self.title, self.headers, self.rows, self.notes = title, list(headers), [list(map(str, r)) for r in rows], list(notes)

    def markdown(self) -> str:
        lines = [f"### {self.title}", "", "| " + " | ".join(self.headers) + " |", "|" + "|".join(" --- " for _ in self.headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"{n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def text(self) -> str:
        widths = [max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h) for i, h in enumerate(self.headers)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
        out = [self.title, "=" * len(self.title), line(self.headers), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        out += self.notes
        return "\n".join(out) + "\n"


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def fmt_rate(per_second: float) -> str:
    return f"{per_second / 1000:.1f}k/s"


def fmt_ratio(value: float) -> str:
    return f"{value:.3f}x"


def print_tables(tables: Iterable[Table]) -> None:
    for table in tables:
        print(table.text())


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))
