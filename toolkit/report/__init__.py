"""`verify --report`: a page a reviewer reads (verdict first, then the table, then the test images on
which each artifact disagrees with the Keras model) and a Markdown summary beside it.

It uses what verify already computed (each pair's predictions and probabilities) and needs nothing
beyond numpy, so a device can write it too. The library never prints: progress goes to a callback.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from digitkit.runtime.manifest import Manifest

from ..verification import Gates, ParityData, ParityResult
from .content import Report, build_report, confusion_matrix
from .page import render_page
from .publish import PAGE, SUMMARY, check_report_dir, publish_directory
from .summary import render_summary

Progress = Callable[[int, int, str], None]  # (steps done, steps in all, what comes next)

__all__ = [
    "PAGE",
    "SUMMARY",
    "Progress",
    "Report",
    "build_report",
    "check_report_dir",
    "confusion_matrix",
    "write_report",
]


def write_report(
    directory: Path,
    manifest: Manifest,
    results: list[ParityResult],
    images: np.ndarray,
    labels: np.ndarray,
    gates: Gates,
    progress: Optional[Progress] = None,
    now: Optional[datetime.datetime] = None,
) -> Path:
    """Write ``directory`` (index.html and summary.md) whole, replacing an earlier report; returns the page."""
    target = check_report_dir(Path(directory))
    tell = progress or (lambda done, total, what: None)
    files = list(dict.fromkeys(r.file for r in results))
    total, done = len(files) + 4, 0

    def step(what: str) -> None:
        nonlocal done
        tell(done, total, what)
        done += 1

    step("reference")
    data = ParityData.of(manifest, images, labels)
    report = build_report(manifest, results, data, gates, now, step)
    step("page")
    page = render_page(report, images, SUMMARY)
    summary = render_summary(report, PAGE)
    step("writing")
    contents = {PAGE: page.encode("utf-8"), SUMMARY: summary.encode("utf-8")}
    publish_directory(contents, target, staged=lambda: step("renaming into place"))
    tell(total, total, "done")
    return target / PAGE
