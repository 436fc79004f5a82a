"""The table's columns, formatted once for both the page and the Markdown summary."""

from __future__ import annotations

import math
from typing import Optional

from ..verification import Gates, ParityResult

COLUMNS = (
    "artifact",
    "format/mode",
    "backend",
    "accuracy",
    "pp vs Keras",
    "agreement",
    "max |Δp|",
    "µs/image",
    "size",
)
FAILED_COLUMN = {"accuracy": "accuracy", "drop": "pp vs Keras", "agreement": "agreement"}  # check -> column


def _number(value: Optional[float], text: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else text


def size_text(size: Optional[int]) -> str:
    if size is None:
        return "–"
    if size < 1024:
        return f"{size} B"
    kilobytes = size / 1024
    return f"{kilobytes:.0f} KB" if kilobytes < 1024 else f"{kilobytes / 1024:.1f} MB"


def probability_difference(diff: Optional[float]) -> str:
    """Four decimals; below 0.0001 (float round-off) one significant digit, so it does not read as 0."""
    if diff is None:
        return ""
    return f"{diff:.0e}" if 0 < diff < 1e-4 else f"{diff:.4f}"


def row_cells(result: ParityResult, size: Optional[int]) -> dict[str, str]:
    diff = result.max_abs_prob_diff
    return {
        "artifact": result.file,
        "format/mode": f"{result.format} {result.mode}",
        "backend": result.backend,
        "accuracy": _number(result.accuracy, f"{100 * result.accuracy:.2f}%"),
        "pp vs Keras": _number(result.drop_pp, f"{-result.drop_pp + 0.0:+.2f}"),
        "agreement": _number(result.agreement, f"{100 * result.agreement:.2f}%"),
        "max |Δp|": _number(diff, probability_difference(diff)),
        "µs/image": _number(result.ms_per_image, f"{1000 * result.ms_per_image:.1f}"),
        "size": size_text(size),
    }


def failed_columns(result: ParityResult) -> set[str]:
    return {FAILED_COLUMN.get(f.kind, "artifact") for f in result.failures}


def gates_text(gates: Gates, reference_accuracy: float) -> list[str]:
    return [
        f"accuracy ≥ {100 * gates.min_accuracy:.2f}%",
        f"at most {gates.max_drop_pp:.2f} pp below the Keras model ({100 * reference_accuracy:.2f}%)",
        f"top-1 agreement with the Keras model ≥ {100 * gates.min_agreement:.2f}%",
    ]
