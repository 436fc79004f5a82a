"""`digitkit verify`: accuracy parity of every artifact on every installed backend, as a gate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, List, Optional

import typer

from .common import (
    DEFAULT_EXPORT_DIR,
    JSON_HELP,
    echo,
    emit_json,
    json_output,
    note,
    plural,
    print_table,
    to_stdout,
)

if TYPE_CHECKING:
    from digitkit.toolkit.verification import Gates, ParityResult


def verify(
    artifact_dir: Annotated[
        Path, typer.Argument(help="Directory with manifest.json (default: the last export).")
    ] = DEFAULT_EXPORT_DIR,
    bundle: Annotated[
        Optional[Path],
        typer.Option(
            "--bundle",
            help="A bundle from `digitkit bundle`: its artifacts and its own parity set (on a device).",
        ),
    ] = None,
    min_accuracy: Annotated[float, typer.Option(help="Every artifact must reach this test accuracy.")] = 0.95,
    max_drop: Annotated[
        float, typer.Option(help="Most percentage points an artifact may lose against the Keras model.")
    ] = 0.5,
    min_agreement: Annotated[
        float, typer.Option(help="Least fraction of test images with the Keras model's top-1.")
    ] = 0.99,
    backends: Annotated[
        Optional[List[str]],
        typer.Option("--backend", help="Only these backends (repeatable; default: every installed one)."),
    ] = None,
    files: Annotated[
        Optional[List[str]], typer.Option("--artifact", help="Only these artifact files (repeatable).")
    ] = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
    report: Annotated[
        Optional[Path],
        typer.Option("--report", help="Write an HTML report (index.html) and summary.md to this directory."),
    ] = None,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Directory with the MNIST test files [env: DIGITKIT_DATA].")
    ] = None,
) -> None:
    """Run all 10,000 MNIST test images through each artifact and gate on parity with Keras.

    Exit 0: every artifact passes on every backend; 1: a gate failed; 2: bad input."""
    import contextlib

    from digitkit.runtime.errors import GateError
    from digitkit.runtime.manifest import read_manifest
    from digitkit.runtime.quiet import quiet_output
    from digitkit.toolkit.data import load_mnist_test
    from digitkit.toolkit.verification import Gates, summary_json, verify_manifest

    gates = Gates(min_accuracy=min_accuracy, max_drop_pp=max_drop, min_agreement=min_agreement)
    gates.check()
    json_target = json_output(json_path)
    if report is not None:
        from digitkit.toolkit.report import check_report_dir

        check_report_dir(report)
    with contextlib.ExitStack() as opened:  # an archive's temporary unpacking lasts while its models run
        if bundle is not None:
            from digitkit.toolkit.bundling import open_bundle

            manifest, data_dir = opened.enter_context(open_bundle(bundle))
        else:
            manifest = read_manifest(artifact_dir)
            warn_unlisted(manifest)
        warn_missing_reference(manifest)
        x_test, y_test = load_mnist_test(data_dir)
        with quiet_output():  # LiteRT's XNNPACK start-up notice
            results = verify_manifest(
                manifest, x_test, y_test, gates, backends=backends, files=files, on_result=announce
            )
        if report is not None:  # inside: a bundle's reference probabilities are read from its unpacking
            from digitkit.toolkit.report import write_report

            from .progress import StepLine

            with StepLine("report") as line:
                page = write_report(report, manifest, results, x_test, y_test, gates, progress=line.update)
    summary = summary_json(manifest, results, gates)
    if not to_stdout(json_target):
        render(results, manifest.source_model.test_accuracy, gates)
    emit_json(json_target, summary)
    if report is not None and not to_stdout(json_target):
        echo(f"Report: {page}")
    if not summary["passed"]:
        failed = [r for r in results if not r.passed]
        raise GateError(
            f"{len(failed)} of {len(results)} artifact/backend pairs failed a parity gate ({failed[0].file} on {failed[0].backend}: {failed[0].failures[0].kind})",
            "See the table above; the artifact does not keep the Keras model's accuracy",
        )


def announce(result: ParityResult) -> None:
    """Progress on stderr (fd 2 is silenced while backends run, so straight to the terminal's copy)."""
    import os

    line = f"digitkit: verified {result.file} on {result.backend}: {'pass' if result.passed else 'FAIL'}\n"
    if _STDERR_COPY < 0:
        return
    try:
        os.write(_STDERR_COPY, line.encode("utf-8", "replace"))
    except OSError:
        pass


def _stderr_copy() -> int:
    import os
    import sys

    try:
        return os.dup(sys.stderr.fileno()) if sys.stderr.isatty() else -1  # at a terminal only
    except (OSError, ValueError):  # no real stderr (tests capturing it): progress has nowhere to go
        return -1


_STDERR_COPY = _stderr_copy()


def warn_unlisted(manifest) -> None:
    """Model files beside the manifest that it does not list are not verified: say so."""
    from digitkit.runtime.validate import FORMAT_BY_SUFFIX

    listed = {e.file for e in manifest.artifacts}
    for entry in manifest.artifacts:
        listed.update(ref.file for ref in entry.companion_files())
    unlisted = sorted(
        p.name
        for p in manifest.directory.iterdir()
        if p.is_file() and p.suffix.lower() in FORMAT_BY_SUFFIX and p.name not in listed
    )
    if unlisted:
        note(
            f"{plural(len(unlisted), 'model file')} in {manifest.directory} not listed in its manifest "
            f"and not verified: {', '.join(unlisted)} (left by an earlier export? re-export or move them)"
        )


def warn_missing_reference(manifest) -> None:
    info = manifest.source_model.test_probabilities
    if info is not None and not (manifest.directory / info.file).is_file():
        note(
            f"{info.file} is missing from {manifest.directory}: the max |Δp| check against the Keras "
            "probabilities is skipped (accuracy, drop and agreement are still checked). "
            "Copy it with the artifacts or re-export"
        )


def render(results: list[ParityResult], reference_accuracy: float, gates: Gates) -> None:
    from rich.text import Text

    rows = []
    for r in sorted(results, key=lambda r: r.passed):  # failures first
        verdict = Text("PASS", style="green") if r.passed else Text("FAIL", style="bold red")
        diff = "skipped" if r.max_abs_prob_diff is None else f"{r.max_abs_prob_diff:.4f}"
        rows.append(
            [
                verdict,
                r.file,
                r.backend,
                f"{r.accuracy:.4f}",
                f"{r.ood_accuracy:.4f}",
                f"{-r.drop_pp + 0.0:+.2f}",
                f"{100 * r.agreement:.2f}%",
                diff,
                f"{r.ms_per_image * 1000:.1f}",
            ]
        )
    print_table(
        [
            "",
            "artifact",
            "backend",
            "accuracy",
            "ood acc",
            "vs keras pp",
            "agreement",
            "max |Δp|",
            "µs/image (batch 1000)",
        ],
        rows,
    )
    echo(
        "ood acc: the out-of-distribution set (MNIST test digits rotated, resized, off-centre, "
        "thick, thin, warped, through a camera), reported, not gated."
    )
    echo(
        f"Keras reference accuracy {reference_accuracy:.4f}. Gates: accuracy ≥ {gates.min_accuracy:.2f}, "
        f"drop ≤ {gates.max_drop_pp:.2f} pp, agreement ≥ {100 * gates.min_agreement:.1f}%."
    )
    for r in results:
        for failure in r.failures:
            echo(f"FAIL {r.file} on {r.backend}: {failure.message}")
    passed = sum(r.passed for r in results)
    echo(
        f"{'PASS' if passed == len(results) else 'FAIL'}: {passed} of {plural(len(results), 'artifact/backend pair')} "
        f"{'passes' if passed == 1 else 'pass'}."
    )
