"""Latency, throughput, load time and peak memory of one artifact on one backend, on this machine."""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from digitkit.runtime import load


@dataclass
class BenchResult:
    file: str
    backend: str
    threads: Optional[int]
    load_ms: float
    batch1_median_us: float
    batch1_p99_us: float
    throughput: dict = field(default_factory=dict)  # batch size -> images per second (median)
    peak_rss_mb: float = 0.0
    machine: str = field(default_factory=platform.machine)

    def to_json(self) -> dict:
        return asdict(self)


def peak_rss_mb() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage / (1024 * 1024) if platform.system() == "Darwin" else usage / 1024


def sample_images(count: int, seed: int = 0) -> np.ndarray:
    """Real MNIST test digits when present (uint8), else reproducible random pixels."""
    try:
        from .data import load_mnist_test

        x_test, _ = load_mnist_test(download=False)
        return x_test[np.arange(count) % len(x_test)]
    except Exception:
        return np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def time_calls(function, repeats: int, warmup: int = 20) -> np.ndarray:
    for _ in range(warmup):
        function()
    timings = np.empty(repeats)
    clock = time.perf_counter
    for i in range(repeats):
        started = clock()
        function()
        timings[i] = clock() - started
    return timings


def bench_model(
    path: Path,
    backend: str = "auto",
    threads: Optional[int] = None,
    batch_sizes=(1, 32, 1000),
    seconds: float = 1.0,
) -> BenchResult:
    started = time.perf_counter()
    model = load(path, backend=backend, threads=threads)
    model.predict_proba(sample_images(1))
    load_ms = 1000 * (time.perf_counter() - started)
    one = sample_images(1)
    probe = time_calls(lambda: model.predict_proba(one), 50)
    repeats = int(min(20000, max(200, seconds / max(np.median(probe), 1e-6))))
    latency = time_calls(lambda: model.predict_proba(one), repeats)
    throughput = {}
    for size in batch_sizes:
        batch = sample_images(size)
        per_call = np.median(time_calls(lambda batch=batch: model.predict_proba(batch), 5, warmup=2))
        reps = int(min(2000, max(5, seconds / max(per_call, 1e-6))))
        throughput[str(size)] = float(
            size / np.median(time_calls(lambda batch=batch: model.predict_proba(batch), reps, warmup=2))
        )
    return BenchResult(
        file=Path(path).name,
        backend=model.backend,
        threads=threads,
        load_ms=load_ms,
        batch1_median_us=float(np.median(latency) * 1e6),
        batch1_p99_us=float(np.percentile(latency, 99) * 1e6),
        throughput=throughput,
        peak_rss_mb=peak_rss_mb(),
    )
