"""`digitkit bundle`: one directory and tar.gz to copy to a device."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .common import DEFAULT_EXPORT_DIR, echo, friendly_errors


@friendly_errors
def bundle(
    export_dir: Path = typer.Argument(DEFAULT_EXPORT_DIR, help="An export directory (default: the last export)."),
    out: Path = typer.Option(Path("runs/bundle"), help="Bundle directory to write; a .tar.gz is written beside it."),
    files: Optional[List[str]] = typer.Option(None, "--artifact", help="Only these artifact files (repeatable)."),
    modes: Optional[List[str]] = typer.Option(None, "--mode", help="Only these modes, e.g. int8 (repeatable)."),
    wheel: bool = typer.Option(True, help="Include digitkit's own wheel (built from this checkout)."),
    data_dir: Optional[Path] = typer.Option(None, help="Directory with the MNIST test files [env: DIGITKIT_DATA]."),
) -> None:
    """Bundle artifacts, manifest, parity set and install notes for a Raspberry Pi or any device."""
    from digitkit.toolkit.bundling import build_bundle
    from digitkit.toolkit.table import human_size

    directory, archive = build_bundle(export_dir, out, files=files, modes=modes, data_dir=data_dir, include_wheel=wheel)
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            echo(f"  {path.relative_to(directory)}  {human_size(path.stat().st_size)}")
    echo(f"Bundle: {directory} ({archive.name}: {human_size(archive.stat().st_size)})")
    echo("On the device: see its README.md; then")
    echo("  digitkit verify --bundle DIR && digitkit bench --bundle DIR")
