"""`digitkit bench`: load time, batch-1 latency, throughput and peak memory on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import echo, parse_sizes, print_table
from .predict import BACKEND_HELP


def bench(
    model: Annotated[
        Optional[List[Path]], typer.Option("--model", help="Artifact(s) to measure (repeatable).")
    ] = None,
    bundle: Annotated[
        Optional[Path], typer.Option("--bundle", help="Measure every artifact of a bundle (on a device).")
    ] = None,
    backends: Annotated[
        Optional[List[str]],
        typer.Option(
            "--backend",
            help="Only these backends (repeatable; default: every installed one). " + BACKEND_HELP,
        ),
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="Comma-separated batch sizes for throughput.")
    ] = "1,32,1000",
    threads: Annotated[
        Optional[int], typer.Option(help="Threads the backend may use (default: the backend's).")
    ] = None,
    seconds: Annotated[float, typer.Option(help="Rough time spent per measurement.")] = 1.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Measure artifacts with the device runtime, on every installed backend that runs them; numbers
    are medians (and p99 for latency)."""
    import contextlib
    import json

    from digitkit.runtime.errors import InputError
    from digitkit.runtime.quiet import quiet_output
    from digitkit.runtime.validate import FORMAT_BY_SUFFIX
    from digitkit.toolkit.benchmark import bench_model
    from digitkit.toolkit.verification import backends_to_run, file_mode, without_unrunnable

    sizes = parse_sizes(batch_sizes, "--batch-sizes")
    with contextlib.ExitStack() as opened:  # an archive's temporary unpacking lasts while its models run
        paths = list(model or [])
        if bundle is not None:
            from digitkit.toolkit.bundling import open_bundle

            manifest, _ = opened.enter_context(open_bundle(bundle))
            paths += [manifest.path_of(e) for e in manifest.artifacts]
        if not paths:
            raise InputError("Nothing to measure", "Pass --model PATH or --bundle DIR")
        results = []
        for path in paths:
            fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower(), "tflite")  # .c is the C export's
            names = backends_to_run(fmt, backends) if backends != ["auto"] else ["auto"]
            names = without_unrunnable(names, path.name, fmt, file_mode(path, fmt))
            for name in names:
                with quiet_output():
                    results.append(
                        bench_model(path, backend=name, threads=threads, batch_sizes=sizes, seconds=seconds)
                    )
    if not results:
        raise InputError(
            f"None of the backends {', '.join(backends or [])} runs these artifacts",
            "Drop --backend or pick one that matches the format",
        )
    if as_json:
        echo(json.dumps([r.to_json() for r in results], indent=2))
        return
    headers = [
        "artifact",
        "backend",
        "load ms",
        "batch-1 median µs",
        "p99 µs",
        *[f"batch {s} img/s" for s in sizes],
        "peak RSS MB",
    ]
    rows = [
        [r.file, r.backend, f"{r.load_ms:.1f}", f"{r.batch1_median_us:.1f}", f"{r.batch1_p99_us:.1f}"]
        + [f"{r.throughput[str(s)]:,.0f}" for s in sizes]
        + [f"{r.peak_rss_mb:.0f}"]
        for r in results
    ]
    print_table(headers, rows)
    echo(f"Machine: {results[0].machine}; threads: {threads or 'backend default'}")
