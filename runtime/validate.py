"""Cheap structural checks on artifact bytes before a native runtime sees them.

Native loaders may abort or crash on malformed input; these checks turn the common cases (empty,
truncated, wrong kind of file) into a one-line error first.
"""

from __future__ import annotations

import struct
from pathlib import Path

from .errors import ArtifactError

FORMAT_BY_SUFFIX = {".tflite": "tflite", ".onnx": "onnx"}


def detect_format(path: Path, data: bytes) -> str:
    if len(data) >= 8 and data[4:8] == b"TFL3":
        return "tflite"
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise ArtifactError(
            f"{path} is neither a .tflite nor an .onnx model", "Pass an artifact written by `digitkit export`"
        )
    return fmt


def check_tflite(path: Path, data: bytes) -> None:
    """A TFLite flatbuffer: identifier TFL3, and a root table offset that lies inside the file."""
    if len(data) < 16 or data[4:8] != b"TFL3":
        raise ArtifactError(
            f"{path} is not a TFLite model (no TFL3 identifier)", "Re-export it with `digitkit export`"
        )
    (root,) = struct.unpack_from("<I", data, 0)
    if root < 8 or root + 4 > len(data):
        raise ArtifactError(
            f"{path} is a truncated or damaged TFLite model", "Re-export it with `digitkit export`"
        )
    (vtable_delta,) = struct.unpack_from("<i", data, root)
    vtable = root - vtable_delta
    if vtable < 0 or vtable + 4 > len(data):
        raise ArtifactError(
            f"{path} is a truncated or damaged TFLite model", "Re-export it with `digitkit export`"
        )


def check_onnx(path: Path, data: bytes) -> None:
    """An ONNX protobuf starts with a field tag; an empty or text file does not."""
    if len(data) < 16 or data[0] not in (0x08, 0x12, 0x1A, 0x22, 0x2A, 0x32, 0x3A, 0x42, 0x72, 0x7A):
        raise ArtifactError(f"{path} is not an ONNX model", "Re-export it with `digitkit export`")


CHECKS = {"tflite": check_tflite, "onnx": check_onnx}
