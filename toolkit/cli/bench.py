"""`digitkit bench`: load time, batch-1 latency, throughput and peak memory on this machine."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import echo, fail, friendly_errors


@friendly_errors
def bench(
    model: Optional[List[Path]] = typer.Option(None, "--model", help="Artifact(s) to measure (repeatable)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="Measure every artifact of a bundle (on a device)."),
    backend: str = typer.Option("auto", help="auto, litert, tflite-runtime or onnxruntime."),
    batch_sizes: str = typer.Option("1,32,1000", help="Comma-separated batch sizes for throughput."),
    threads: Optional[int] = typer.Option(None, help="Threads the backend may use (default: the backend's)."),
    seconds: float = typer.Option(1.0, help="Rough time spent per measurement."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Measure artifacts with the device runtime; numbers are medians (and p99 for latency)."""
    import json

    from digitkit.export.quiet import quiet_output
    from digitkit.runtime.errors import InputError
    from digitkit.toolkit.benchmark import bench_model
    from digitkit.toolkit.table import text_table

    try:
        sizes = [int(s) for s in batch_sizes.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise InputError(f"--batch-sizes {batch_sizes!r} is not a list of positive integers", "Pass e.g. --batch-sizes 1,32,1000")
    paths = list(model or [])
    if bundle is not None:
        from digitkit.toolkit.bundling import open_bundle

        manifest, _ = open_bundle(bundle)
        paths += [manifest.directory / e["file"] for e in manifest.artifacts]
    if not paths:
        raise fail("Nothing to measure. Pass --model PATH or --bundle DIR")
    results = []
    for path in paths:
        with quiet_output():
            results.append(bench_model(path, backend=backend, threads=threads, batch_sizes=sizes, seconds=seconds))
    if as_json:
        echo(json.dumps([r.to_json() for r in results], indent=2))
        return
    headers = ["artifact", "backend", "load ms", "batch-1 median µs", "p99 µs"] + [f"batch {s} img/s" for s in sizes] + ["peak RSS MB"]
    rows = [
        [r.file, r.backend, f"{r.load_ms:.1f}", f"{r.batch1_median_us:.1f}", f"{r.batch1_p99_us:.1f}"]
        + [f"{r.throughput[str(s)]:,.0f}" for s in sizes] + [f"{r.peak_rss_mb:.0f}"]
        for r in results
    ]
    echo(text_table(headers, rows))
    echo(f"Machine: {results[0].machine}; threads: {threads or 'backend default'}")
