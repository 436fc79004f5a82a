"""Training curves as inline SVG: crisp at any width, no plotting library, drawn in microseconds.

Epochs are integers on the x axis (ticks every 1, 2, 5, 10... so that at most about eight show); the
y axis is fitted to the values with round ticks. One epoch is no curve: the caller shows a table.
"""

from __future__ import annotations

import html
import math
from typing import Mapping, Sequence

WIDTH, HEIGHT = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 34, 38
SERIES = (("train", "#2563eb", ""), ("test", "#c2410c", "5 3"))  # label, colour, dash


def epoch_ticks(epochs: int) -> list[int]:
    """Integer ticks for epochs 1..n: every epoch up to 8, then every 2, 5, 10, 20 or 50."""
    step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500) if epochs / s <= 8 or s == 500)
    ticks = list(range(step, epochs + 1, step))
    return [1, *ticks] if step >= 5 or not ticks else ticks


def value_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round ticks covering [low, high]: steps of 1, 2 or 5 times a power of ten."""
    span = high - low
    if span <= 0:
        span = abs(high) * 0.02 or 1.0
        low, high = low - span / 2, high + span / 2
    raw = span / (count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [k * step for k in range(first, last + 1)]


def _decimals(ticks: Sequence[float]) -> int:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    return max(0, -math.floor(math.log10(step) + 1e-9))


def line_chart(title: str, series: Sequence[tuple[str, Sequence[float]]], unit: str = "") -> str:
    """An SVG of one quantity per epoch, one line per (label, values); at least two epochs."""
    epochs = max(len(values) for _, values in series)
    every = [v for _, values in series for v in values]
    ticks = value_ticks(min(every), max(every))
    low, high = ticks[0], ticks[-1]
    width, height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x = lambda epoch: LEFT + (epoch - 1) / max(epochs - 1, 1) * width
    y = lambda value: TOP + (high - value) / (high - low) * height
    decimals = _decimals(ticks)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{LEFT}" y="16" class="chart-title">{html.escape(title)}</text>',
    ]
    for value in ticks:
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + width}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.{decimals}f}{unit}</text>'
        )
    for epoch in epoch_ticks(epochs):
        parts.append(
            f'<line x1="{x(epoch):.1f}" x2="{x(epoch):.1f}" y1="{TOP + height}" y2="{TOP + height + 4}" class="axis"/>'
            f'<text x="{x(epoch):.1f}" y="{TOP + height + 17}" text-anchor="middle">{epoch}</text>'
        )
    parts.append(
        f'<text x="{LEFT + width / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle" class="axis-label">epoch</text>'
    )
    for (label, values), (_, colour, dash) in zip(series, SERIES):
        points = " ".join(f"{x(i + 1):.1f},{y(v):.1f}" for i, v in enumerate(values))
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{dashes}/>')
        if epochs <= 20:  # markers while they stay apart
            parts.extend(
                f'<circle cx="{x(i + 1):.1f}" cy="{y(v):.1f}" r="2.8" fill="{colour}">'
                f"<title>{html.escape(label)}, epoch {i + 1}: {v:.4f}{unit}</title></circle>"
                for i, v in enumerate(values)
            )
    for n, (label, _) in enumerate(series):
        colour, dash = SERIES[n][1], SERIES[n][2]
        left = LEFT + width - 130 + 70 * n
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{left}" x2="{left + 20}" y1="12" y2="12" stroke="{colour}" stroke-width="2"{dashes}/>'
            f'<text x="{left + 25}" y="16">{html.escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def training_charts(epochs: Sequence[Mapping[str, float]]) -> str:
    """Loss and accuracy curves (train and test) for two or more epochs."""
    charts = []
    for title, key, scale, unit in (("loss", "loss", 1.0, ""), ("accuracy", "accuracy", 100.0, "%")):
        series = [
            (label, [scale * float(e[name]) for e in epochs])
            for label, name in (("train", key), ("test", f"val_{key}"))
            if all(name in e for e in epochs)
        ]
        if series:
            charts.append(line_chart(title, series, unit))
    return "".join(charts)
