"""`digitkit doctor`: this machine, what of digitkit's runs here, known-bad combinations, what to install.

A device command: no TensorFlow, no digitkit.export, and no backend imported (metadata only)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import JSON_HELP, echo, emit_json, json_output, print_table, to_stdout


def doctor(
    json_path: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
) -> None:
    """Python, OS and CPU (NEON, dotprod, AVX2, AVX-512 VNNI), numpy and each backend with versions,
    the artifact modes each can run here, known-bad combinations, and the artifact to use.

    Exit 0 when nothing is wrong, 1 when an installed backend is known not to work here."""
    from digitkit.runtime.errors import GateError
    from digitkit.toolkit.doctor import diagnose

    json_target = json_output(json_path)
    report = diagnose()
    if not to_stdout(json_target):
        features = ", ".join(f"{name} {'yes' if on else 'no'}" for name, on in report.cpu_features.items())
        echo(f"Python:     {report.python} ({report.implementation}) {report.executable}")
        echo(f"OS:         {report.os}, {report.machine}")
        echo(f"CPU:        {report.cpu}")
        echo(f"CPU features: {features}")
        echo(f"numpy:      {report.numpy or 'not installed'}")
        rows = [
            [
                b.name,
                b.version or "-",
                "problem" if b.problem else ("yes" if b.installed else "no"),
                ", ".join(b.modes) if b.modes else "-",
            ]
            for b in report.backends
        ]
        print_table(["backend", "version", "installed", "runs here"], rows)
        for problem in report.problems:
            echo(f"PROBLEM: {problem}")
        echo(f"Recommended: {report.recommended_artifact} on {report.recommended_backend}")
        echo(f"Install:     {report.install}")
    emit_json(json_target, report.to_json())
    if report.problems:
        raise GateError(f"{len(report.problems)} installed backend(s) will not work here", report.problems[0])
