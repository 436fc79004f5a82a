"""Artifact sizes from the manifest, the ratio to fp32 of the same format, and the source model.keras."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from common import Table, x

from digitkit.runtime import read_manifest


@dataclass
class SizeRow:
    file: str
    format: str
    mode: str
    size_bytes: int
    fp32_bytes: Optional[int]  # the fp32 artifact of the same format, if any


def run(ws, log) -> list:
    manifest = read_manifest(ws.export_dir)
    fp32 = {e.format: e.size_bytes for e in manifest.artifacts if e.mode == "fp32"}
    rows = [SizeRow(e.file, e.format, e.mode, e.size_bytes, fp32.get(e.format)) for e in manifest.artifacts]
    return [*rows, SizeRow(ws.keras.name, "keras", "source", ws.keras.stat().st_size, None)]


def tables(rows: list) -> list:
    ratio = lambda r: x(r.size_bytes / r.fp32_bytes) if r.fp32_bytes else ""
    body = [[r.file, r.format, r.mode, f"{r.size_bytes:,}", ratio(r)] for r in rows]
    return [Table("Artifact sizes", "artifact | format | mode | bytes | vs fp32 (same format)", body)]
