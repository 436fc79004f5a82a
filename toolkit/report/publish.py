"""The report directory appears whole or not at all: written in a hidden directory beside it, then
put into place by ``replace_dir`` (the bundle's swap), so an interrupted run leaves the earlier report
as it was."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Mapping

from digitkit.runtime.errors import InputError
from digitkit.runtime.files import ensure_writable_dir, new_staging_dir, replace_dir

PAGE, SUMMARY = "index.html", "summary.md"


def _ours(path: Path) -> bool:
    """A file a report writes (or an earlier digitkit's report wrote: its plots were PNGs)."""
    return path.is_file() and (path.name in (PAGE, SUMMARY) or path.suffix == ".png")


def check_report_dir(target: Path, option: str = "--report") -> Path:
    """Before any work: ``target`` is new, empty or an earlier report, and its parent is writable.
    A directory holding anything else is refused, since replacing it would remove what we did not write."""
    target = Path(target)
    if target.exists():
        if not target.is_dir():
            raise InputError(f"{option} {target} is a file", f"Pass a directory to {option}")
        foreign = sorted(p.name for p in target.iterdir() if not _ours(p))
        if foreign:
            raise InputError(
                f"{option} {target} holds files a report does not write ({', '.join(foreign[:3])})",
                f"Pass a new directory to {option}, or an earlier report's",
            )
    ensure_writable_dir(target.parent if str(target.parent) else Path("."), "report", option)
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_directory(
    contents: Mapping[str, bytes], target: Path, staged: Callable[[], None] = lambda: None
) -> None:
    """Write ``contents`` (file name -> bytes) as the directory ``target``, replacing an earlier one.
    ``staged`` is called when every file is written and before the rename (progress; tests interrupt there)."""
    target = Path(target)
    staging = new_staging_dir(target.parent)
    try:
        page = staging / "report"
        page.mkdir()
        for name, data in contents.items():
            with open(page / name, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(page, 0o777 & ~_umask())
        staged()
        replace_dir(page, target, "report")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
