"""`digitkit bundle`: one directory and tar.gz to copy to a device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .common import (
    DEFAULT_EXPORT_DIR,
    JSON_HELP,
    echo,
    emit_json,
    human_size,
    json_output,
    progress_line,
    to_stdout,
)


def bundle(
    export_dir: Annotated[
        Path, typer.Argument(help="An export directory (default: the last export).")
    ] = DEFAULT_EXPORT_DIR,
    out: Annotated[
        Path, typer.Option(help="Bundle directory to write; a .tar.gz is written beside it.")
    ] = Path("runs/bundle"),
    files: Annotated[
        Optional[List[str]], typer.Option("--artifact", help="Only these artifact files (repeatable).")
    ] = None,
    modes: Annotated[
        Optional[List[str]], typer.Option("--mode", help="Only these modes, e.g. int8 (repeatable).")
    ] = None,
    wheel: Annotated[
        bool, typer.Option(help="Include digitkit's own wheel (built from this checkout).")
    ] = True,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace --out even when it holds files that are not a previous bundle."
        ),
    ] = False,
    data_dir: Annotated[
        Optional[Path], typer.Option(help="Directory with the MNIST test files [env: DIGITKIT_DATA].")
    ] = None,
    json_path: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
) -> None:
    """Bundle artifacts, manifest, parity set and install notes for a Raspberry Pi or any device."""
    from digitkit.toolkit.bundle_readme import install_lines
    from digitkit.toolkit.bundling import build_bundle

    json_target = json_output(json_path)
    directory, archive = build_bundle(
        export_dir,
        out,
        files=files,
        modes=modes,
        data_dir=data_dir,
        include_wheel=wheel,
        force=force,
        on_step=progress_line,
    )
    files_written = [p for p in sorted(directory.rglob("*")) if p.is_file()]
    wheel_file = next(directory.glob("digitkit-*.whl"), None)
    summary = {
        "bundle": str(directory),
        "archive": str(archive),
        "archive_bytes": archive.stat().st_size,
        "files": [
            {"file": str(p.relative_to(directory)), "size_bytes": p.stat().st_size} for p in files_written
        ],
        "install": dict(install_lines(wheel_file)),
    }
    if to_stdout(json_target):
        emit_json(json_target, summary)
        return
    for path in files_written:
        echo(f"  {path.relative_to(directory)}  {human_size(path.stat().st_size)}")
    echo(f"Bundle: {directory} ({archive.name}: {human_size(archive.stat().st_size)})")
    echo("Install on the device (details in its README.md):")
    for platform, command in install_lines(next(directory.glob("digitkit-*.whl"), None)):
        echo(f"  {platform}: {command}")
    name = directory.name
    echo(
        f"Then, beside the unpacked {name}/: . ~/digitkit-env/bin/activate && "
        f"digitkit verify --bundle {name} && digitkit bench --bundle {name}"
    )
    emit_json(json_target, summary)
