"""`digitkit bench`: load time, batch-1 latency, throughput and peak memory on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import (
    JSON_HELP,
    check_threads,
    echo,
    emit_json,
    json_output,
    parse_sizes,
    print_table,
    progress_line,
    resolve_artifact,
    to_stdout,
)
from .predict import BACKEND_HELP


def bench(
    model: Annotated[
        Optional[List[Path]],
        typer.Option(
            "--model", help="Artifact file(s) or export directories (all their artifacts; repeatable)."
        ),
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
    json_path: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
) -> None:
    """Measure artifacts with the device runtime, on every installed backend that runs them; numbers
    are medians (and p99 for latency)."""
    import contextlib

    from digitkit.runtime.errors import InputError
    from digitkit.runtime.quiet import quiet_output
    from digitkit.runtime.validate import FORMAT_BY_SUFFIX
    from digitkit.toolkit.benchmark import bench_model
    from digitkit.toolkit.verification import backends_to_run, file_mode, without_unrunnable

    sizes = parse_sizes(batch_sizes, "--batch-sizes")
    check_threads(threads)
    if not seconds > 0:
        raise InputError(
            f"--seconds {seconds:g} leaves no time to measure", "Pass a positive time, e.g. --seconds 1"
        )
    json_target = json_output(json_path)
    with contextlib.ExitStack() as opened:  # an archive's temporary unpacking lasts while its models run
        paths = [p for given in model or [] for p in artifacts_of(given)]
        if bundle is not None:
            refuse_export_as_bundle(bundle)
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
                progress_line(f"measuring {path.name} on {name}")
                with quiet_output():
                    results.append(
                        bench_model(path, backend=name, threads=threads, batch_sizes=sizes, seconds=seconds)
                    )
    if not results:
        raise InputError(
            f"None of the backends {', '.join(backends or [])} runs these artifacts",
            "Drop --backend or pick one that matches the format",
        )
    if to_stdout(json_target):
        emit_json(json_target, [r.to_json() for r in results])
        return
    headers = [
        "artifact",
        "backend",
        "load ms",
        "batch-1 median µs",
        "p99 µs",
        *[f"batch {s} img/s" for s in sizes],
        "peak RSS MiB",
    ]
    rows = [
        [r.file, r.backend, f"{r.load_ms:.1f}", f"{r.batch1_median_us:.1f}", f"{r.batch1_p99_us:.1f}"]
        + [f"{r.throughput[str(s)]:,.0f}" for s in sizes]
        + [f"{r.peak_rss_mb:.0f}"]
        for r in results
    ]
    print_table(headers, rows)
    echo(f"Machine: {results[0].machine}; threads: {threads or 'backend default'}")
    emit_json(json_target, [r.to_json() for r in results])


def artifacts_of(given: Path) -> list[Path]:
    """--model: a file as it is; an export directory means every artifact it lists."""
    from digitkit.runtime.manifest import MANIFEST_NAME, read_manifest

    if given.is_dir() and (given / MANIFEST_NAME).is_file():
        manifest = read_manifest(given)
        return [manifest.path_of(e) for e in manifest.artifacts]
    return [resolve_artifact(given)]


def refuse_export_as_bundle(bundle: Path) -> None:
    from digitkit.runtime.errors import InputError
    from digitkit.runtime.manifest import MANIFEST_NAME, read_manifest

    if bundle.is_dir() and (bundle / MANIFEST_NAME).is_file() and read_manifest(bundle).bundle is None:
        raise InputError(
            f"--bundle {bundle} is an export directory, not a bundle",
            f"Measure it with `digitkit bench --model {bundle}` (every artifact it lists)",
        )
