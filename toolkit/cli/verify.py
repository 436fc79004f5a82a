"""`digitkit verify`: accuracy parity of every artifact on every installed backend, as a gate."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import DEFAULT_EXPORT_DIR, echo, friendly_errors


@friendly_errors
def verify(
    artifact_dir: Path = typer.Argument(DEFAULT_EXPORT_DIR, help="Directory with manifest.json (default: the last export)."),
    bundle: Optional[Path] = typer.Option(None, "--bundle", help="A bundle from `digitkit bundle`: its artifacts and its own parity set (on a device)."),
    min_accuracy: float = typer.Option(0.95, help="Every artifact must reach this test accuracy."),
    max_drop: float = typer.Option(0.5, help="Most percentage points an artifact may lose against the Keras model."),
    min_agreement: float = typer.Option(0.99, help="Least fraction of test images with the Keras model's top-1."),
    backends: Optional[List[str]] = typer.Option(None, "--backend", help="Only these backends (repeatable; default: every installed one)."),
    files: Optional[List[str]] = typer.Option(None, "--artifact", help="Only these artifact files (repeatable)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the results as JSON here ('-' for stdout)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write an HTML report with plots to this directory."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory with the MNIST test files [env: DIGITKIT_DATA]."),
) -> None:
    """Run all 10,000 MNIST test images through each artifact and gate on parity with Keras.

    Exit 0: every artifact passes on every backend; 1: a gate failed; 2: bad input."""
    import json
    import sys

    from digitkit.export.atomic import write_json_atomic
    from digitkit.runtime.manifest import read_manifest
    from digitkit.toolkit.data import load_mnist_test
    from digitkit.toolkit.verification import Gates, summary_json, verify_manifest

    if bundle is not None:
        from digitkit.toolkit.bundling import open_bundle

        manifest, data_dir = open_bundle(bundle)
    else:
        manifest = read_manifest(artifact_dir)
    gates = Gates(min_accuracy=min_accuracy, max_drop_pp=max_drop, min_agreement=min_agreement)
    gates.check()
    x_test, y_test = load_mnist_test(data_dir)
    from digitkit.export.quiet import quiet_output

    with quiet_output():  # LiteRT's XNNPACK start-up notice
        results = verify_manifest(manifest, x_test, y_test, gates, backends=backends, files=files)
    summary = summary_json(manifest, results, gates)
    if json_path is not None and str(json_path) == "-":
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        echo(render_table(results, float(manifest.reference["test_accuracy"]), gates))
        if json_path is not None:
            write_json_atomic(json_path, summary)
            echo(f"JSON: {json_path}")
    if report is not None:
        from digitkit.toolkit.report import write_report

        page = write_report(report, manifest, results, x_test, y_test)
        if page is not None:
            echo(f"Report: {page}")
    if not summary["passed"]:
        raise typer.Exit(1)


def render_table(results, reference_accuracy: float, gates) -> str:
    from digitkit.toolkit.table import text_table

    rows = []
    for r in results:
        diff = "-" if r.max_abs_prob_diff is None else f"{r.max_abs_prob_diff:.4f}"
        rows.append([
            "✅" if r.passed else "❌", r.file, r.backend, f"{r.accuracy:.4f}", f"{-r.drop_pp + 0.0:+.2f}",
            f"{100 * r.agreement:.2f}%", diff, f"{r.ms_per_image * 1000:.1f}",
        ])
    lines = [text_table(["", "artifact", "backend", "accuracy", "vs keras pp", "agreement", "max |Δp|", "µs/image"], rows)]
    lines.append(
        f"Keras reference accuracy {reference_accuracy:.4f}. Gates: accuracy ≥ {gates.min_accuracy:.2f}, "
        f"drop ≤ {gates.max_drop_pp:.2f} pp, agreement ≥ {100 * gates.min_agreement:.1f}%."
    )
    for r in results:
        for failure in r.failures:
            lines.append(f"❌ {r.file} on {r.backend}: {failure.kind}: {failure.message}")
    passed = sum(r.passed for r in results)
    lines.append(f"{passed} of {len(results)} artifact/backend pairs pass." + ("" if passed == len(results) else " FAILED."))
    return "\n".join(lines)
