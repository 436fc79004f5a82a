"""Confusion matrices as HTML tables: the reference's counts shaded, and per artifact only its
differences from the reference, coloured by whether they are more or fewer mistakes."""

from __future__ import annotations

import math

import numpy as np

HEADER = (
    "<tr><th class='corner'>true \\ predicted</th>" + "".join(f"<th>{d}</th>" for d in range(10)) + "</tr>"
)


def reference_table(matrix: np.ndarray) -> str:
    """Counts, shaded by log count so the few mistakes stay visible beside a diagonal of ~1000."""
    top = math.log1p(int(matrix.max()) or 1)
    rows = []
    for true in range(10):
        cells = []
        for predicted in range(10):
            count = int(matrix[true, predicted])
            shade = math.log1p(count) / top
            ink = " class='ink'" if shade > 0.55 else ""
            style = f" style='background:rgba(37,99,235,{shade:.2f})'" if count else ""
            cells.append(f"<td{ink}{style}>{count if count else ''}</td>")
        rows.append(f"<tr><th>{true}</th>{''.join(cells)}</tr>")
    return f"<div class='scroll'><table class='cm'>{HEADER}{''.join(rows)}</table></div>"


def difference_table(delta: np.ndarray) -> str:
    """Artifact minus reference. Off the diagonal a positive count is more mistakes of that kind (red);
    on it, a positive count is more correct answers (green)."""
    rows = []
    for true in range(10):
        cells = []
        for predicted in range(10):
            change = int(delta[true, predicted])
            if not change:
                cells.append("<td></td>")
                continue
            better = change > 0 if true == predicted else change < 0
            cells.append(f"<td class='{'better' if better else 'worse'}'>{change:+d}</td>")
        rows.append(f"<tr><th>{true}</th>{''.join(cells)}</tr>")
    return f"<div class='scroll'><table class='cm delta'>{HEADER}{''.join(rows)}</table></div>"
