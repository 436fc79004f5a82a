"""What an artifact says about itself, read from the file alone: no manifest, no tensorflow or onnx.

Export writes the same fields into every artifact (docs/manifest.md, "Metadata inside artifacts"):
in a TFLite model as the JSON of a metadata entry named ``digitkit`` (the schema's ``Model.metadata``,
a name and a buffer index), in an ONNX model as ``metadata_props`` (string keys and values; objects
and lists JSON-encoded). TFLite is read with the numpy backend's checked flatbuffer reader; ONNX
with the few lines of protobuf wire format below, which walk only the top level of ``ModelProto``.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .errors import ArtifactError

METADATA_NAME = "digitkit"  # the TFLite metadata entry
LABELS = tuple(str(digit) for digit in range(10))
_ONNX_METADATA_FIELD = 14  # ModelProto.metadata_props (onnx.proto)
_STRUCTURED = ("recipe", "input", "labels")


@dataclass(frozen=True)
class ArtifactMetadata:
    """digitkit's fields in an artifact. ``recipe`` is the training config (empty when the model was
    not trained by ``digitkit train``); ``input`` the input contract: tensor name, shape, dtype,
    quantization and the preprocessing the pixels need."""

    digitkit_version: str
    format: str
    mode: str
    source_model_sha256: str
    input: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = LABELS
    recipe: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "digitkit_version": self.digitkit_version,
            "format": self.format,
            "mode": self.mode,
            "source_model_sha256": self.source_model_sha256,
            "input": dict(self.input),
            "labels": list(self.labels),
            "recipe": dict(self.recipe),
        }

    def to_props(self) -> dict[str, str]:
        """As ONNX ``metadata_props``: strings, with objects and lists as JSON."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.to_json().items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> ArtifactMetadata:
        def text(key: str) -> str:
            value = data.get(key)
            if not isinstance(value, str):
                raise ArtifactError(f"{source}: metadata {key!r} is missing or not text", _FIX)
            return value

        structured: dict[str, Any] = {}
        for key in _STRUCTURED:
            value = data.get(key)
            if isinstance(value, str):  # ONNX: JSON inside a string
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    raise ArtifactError(f"{source}: metadata {key!r} is not JSON", _FIX) from exc
            structured[key] = value
        labels = structured["labels"]
        if labels is None:
            labels = list(LABELS)
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise ArtifactError(f"{source}: metadata 'labels' is not a list of names", _FIX)
        recipe, contract = structured["recipe"] or {}, structured["input"] or {}
        if not isinstance(recipe, dict) or not isinstance(contract, dict):
            raise ArtifactError(f"{source}: metadata 'recipe' and 'input' must be objects", _FIX)
        return cls(
            text("digitkit_version"),
            text("format"),
            text("mode"),
            text("source_model_sha256"),
            contract,
            tuple(labels),
            recipe,
        )


_FIX = "Re-export it with `digitkit export`"


def read_metadata(data: bytes, fmt: str) -> Optional[ArtifactMetadata]:
    """digitkit's metadata in an artifact's bytes; None when it has none (an older export, or a
    model from elsewhere). Damaged metadata is an ``ArtifactError``."""
    if fmt == "tflite":
        raw = tflite_metadata(data).get(METADATA_NAME)
        if raw is None:
            return None
        try:
            parsed = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ArtifactError("The TFLite model's digitkit metadata is not JSON", _FIX) from exc
        if not isinstance(parsed, dict):
            raise ArtifactError("The TFLite model's digitkit metadata is not an object", _FIX)
        return ArtifactMetadata.from_json(parsed, "TFLite model")
    if fmt == "onnx":
        props = onnx_metadata_props(data)
        if "digitkit_version" not in props:
            return None
        return ArtifactMetadata.from_json(props, "ONNX model")
    return None


def tflite_metadata(data: bytes) -> dict[str, bytes]:
    """Every entry of a TFLite model's ``metadata`` (name to the bytes of its buffer)."""
    from .backends.numpy_flatbuffer import Reader

    reader = Reader(data)
    if reader.size < 8 or data[4:8] != b"TFL3":
        raise ArtifactError("The file is not a TFLite model (no TFL3 identifier)", _FIX)
    model = reader.table(int(reader.scalar("I", 0, "root offset")), "model")
    buffers = model.tables(4, "buffer", 1 << 16)
    entries: dict[str, bytes] = {}
    for i, entry in enumerate(model.tables(6, "metadata entry", 1024)):
        index = int(entry.scalar(1, "I"))
        if index >= len(buffers):
            raise ArtifactError(f"TFLite metadata entry {i} names buffer {index} of {len(buffers)}", _FIX)
        entries[entry.string(0, f"metadata name {i}")] = bytes(buffers[index].array(0, "u1", "buffer"))
    return entries


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ArtifactError("The ONNX model is truncated or damaged (a bad varint)", _FIX)
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def protobuf_fields(data: bytes) -> list[tuple[int, int, bytes | int]]:
    """(field number, wire type, value) of one protobuf message, length-delimited values as bytes."""
    fields, pos = [], 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: bytes | int
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise ArtifactError("The ONNX model is truncated", _FIX)
            value = struct.unpack_from("<Q" if wire == 1 else "<I", data, pos)[0]
            pos += size
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ArtifactError("The ONNX model is truncated", _FIX)
            value = data[pos : pos + length]
            pos += length
        else:
            raise ArtifactError(f"The ONNX model is damaged (protobuf wire type {wire})", _FIX)
        fields.append((number, wire, value))
    return fields


def onnx_metadata_props(data: bytes) -> dict[str, str]:
    """``ModelProto.metadata_props`` as a dict, read from the wire format (the graph is skipped over)."""
    props: dict[str, str] = {}
    for number, wire, value in protobuf_fields(data):
        if number != _ONNX_METADATA_FIELD or wire != 2 or not isinstance(value, bytes):
            continue
        entry = {n: v for n, w, v in protobuf_fields(value) if w == 2 and isinstance(v, bytes)}
        try:
            props[entry.get(1, b"").decode("utf-8")] = entry.get(2, b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArtifactError("The ONNX model's metadata_props are not UTF-8", _FIX) from exc
    return props
