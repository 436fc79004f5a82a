"""Writing digitkit's metadata into each artifact, so a lone or renamed file still says what it is
(the runtime reads it back: digitkit.runtime.metadata).

ONNX: ``metadata_props`` through onnx. TFLite: a metadata entry named ``digitkit`` whose buffer holds
the JSON. The TFLite model is not repacked (the flatbuffers object API would drop the converter's
16-byte alignment of weight buffers): a new root table, buffer and metadata vectors and the entry are
written in front of the converter's bytes, which stay as they were, shifted by a multiple of 16.
Flatbuffer offsets are relative and point forward, so every old offset still holds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from digitkit.runtime.backends.base import TensorInfo
from digitkit.runtime.backends.numpy_flatbuffer import Reader
from digitkit.runtime.errors import ExportError
from digitkit.runtime.manifest import PREPROCESSING
from digitkit.runtime.metadata import LABELS, METADATA_NAME, ArtifactMetadata
from digitkit.runtime.version import __version__

from .formats import ExportTarget

_MODEL_FIELDS = 8  # Model in schema.fbs: version, operator_codes, subgraphs, description, buffers,
_BUFFERS, _METADATA = 4, 6  # metadata_buffer, metadata, signature_defs; all but version are offsets


def artifact_metadata(
    target: ExportTarget,
    inputs: Sequence[TensorInfo],
    source_sha256: str,
    training: Optional[Mapping[str, Any]],
) -> ArtifactMetadata:
    contract: dict[str, Any] = inputs[0].to_json() if inputs else {}
    contract["preprocessing"] = dict(PREPROCESSING)
    recipe = dict(training.get("config", {})) if training else {}
    return ArtifactMetadata(__version__, target.format, target.mode, source_sha256, contract, LABELS, recipe)


def embed(path: Path, metadata: ArtifactMetadata) -> None:
    """Write ``metadata`` into the artifact at ``path`` (a staged file), in place."""
    if metadata.format == "onnx":
        embed_onnx(path, metadata)
    elif metadata.format == "tflite":
        path.write_bytes(with_tflite_metadata(path.read_bytes(), METADATA_NAME, _json_bytes(metadata)))


def embed_onnx(path: Path, metadata: ArtifactMetadata) -> None:
    import onnx

    model = onnx.load_model(str(path))
    onnx.helper.set_model_props(model, metadata.to_props())
    onnx.save_model(model, str(path))


def _json_bytes(metadata: ArtifactMetadata) -> bytes:
    return json.dumps(metadata.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8")


class _Prefix:
    """The bytes written in front of the old model, with positions counted from the new file's start."""

    def __init__(self) -> None:
        self.data = bytearray()

    def align(self, n: int) -> None:
        self.data.extend(b"\0" * (-len(self.data) % n))

    def reserve(self, size: int) -> int:
        pos = len(self.data)
        self.data.extend(b"\0" * size)
        return pos

    def put(self, fmt: str, pos: int, *values: int) -> None:
        struct.pack_into("<" + fmt, self.data, pos, *values)

    def vtable(self, offsets: Sequence[int], table_size: int) -> int:
        self.align(2)
        pos = self.reserve(4 + 2 * len(offsets))
        self.put("HH" + "H" * len(offsets), pos, 4 + 2 * len(offsets), table_size, *offsets)
        return pos


def with_tflite_metadata(model: bytes, name: str, payload: bytes) -> bytes:
    """``model`` with a metadata entry ``name`` holding ``payload`` (replacing one of that name)."""
    reader = Reader(model)
    if reader.size < 8 or model[4:8] != b"TFL3":
        raise ExportError("The converter's output is not a TFLite model", "Re-run `digitkit export`")
    root = reader.table(int(reader.scalar("I", 0, "root offset")), "model")
    if root.vsize > 4 + 2 * _MODEL_FIELDS:
        raise ExportError(
            "The TFLite model has fields this digitkit does not know", "Upgrade digitkit, then export again"
        )
    old_targets = {i: root._target(i) for i in range(1, _MODEL_FIELDS)}  # old positions, or None
    version = int(root.scalar(0, "I"))

    def old_offsets(index: int) -> list[int]:
        """The old positions a vector of tables at field ``index`` points to."""
        target = old_targets[index]
        if target is None:
            return []
        start, count = reader.vector(target, 4, "vector")
        return [start + 4 * i + int(reader.scalar("I", start + 4 * i, "vector")) for i in range(count)]

    buffers = old_offsets(_BUFFERS)
    for i, pos in enumerate(buffers):
        if int(reader.table(pos, f"buffer {i}").scalar(1, "Q")) > 1:
            raise ExportError(
                "The TFLite model keeps buffers outside its flatbuffer", "Export a model under 2 GB"
            )
    kept = [pos for pos in old_offsets(_METADATA) if reader.table(pos, "metadata").string(0, "name") != name]

    out = _Prefix()
    out.reserve(8)  # root offset and file identifier, filled in last
    fields = [i for i in range(1, _MODEL_FIELDS) if old_targets[i] is not None or i in (_BUFFERS, _METADATA)]
    offsets = {index: 8 + 4 * k for k, index in enumerate(fields)}  # within the new root table
    root_vtable = out.vtable(
        [4] + [offsets.get(i, 0) for i in range(1, max(fields) + 1)], 8 + 4 * len(fields)
    )
    out.align(4)
    root_pos = out.reserve(8 + 4 * len(fields))
    out.put("iI", root_pos, root_pos - root_vtable, version)
    field_pos = {index: root_pos + offset for index, offset in offsets.items()}

    buffers_vector = out.reserve(4 + 4 * (len(buffers) + 1))
    metadata_vector = out.reserve(4 + 4 * (len(kept) + 1))
    entry_vtable = out.vtable([4, 8], 12)
    out.align(4)
    entry = out.reserve(12)
    buffer_vtable = out.vtable([4], 8)
    out.align(4)
    buffer = out.reserve(8)
    name_pos = out.reserve(4 + len(name.encode()) + 1)
    out.put("I", name_pos, len(name.encode()))
    out.data[name_pos + 4 : name_pos + 4 + len(name.encode())] = name.encode()
    out.align(16)
    payload_pos = out.reserve(4 + len(payload))
    out.put("I", payload_pos, len(payload))
    out.data[payload_pos + 4 : payload_pos + 4 + len(payload)] = payload
    out.align(16)
    shift = len(out.data)  # the old model starts here; a multiple of 16 keeps its alignment

    def point(at: int, target: int) -> None:
        out.put("I", at, target - at)

    for index in fields:
        if index == _BUFFERS:
            point(field_pos[index], buffers_vector)
        elif index == _METADATA:
            point(field_pos[index], metadata_vector)
        else:
            point(field_pos[index], old_targets[index] + shift)  # type: ignore[operator]
    out.put("I", buffers_vector, len(buffers) + 1)
    for i, pos in enumerate(buffers):
        point(buffers_vector + 4 + 4 * i, pos + shift)
    point(buffers_vector + 4 + 4 * len(buffers), buffer)
    out.put("I", metadata_vector, len(kept) + 1)
    for i, pos in enumerate(kept):
        point(metadata_vector + 4 + 4 * i, pos + shift)
    point(metadata_vector + 4 + 4 * len(kept), entry)
    out.put("i", entry, entry - entry_vtable)
    point(entry + 4, name_pos)
    out.put("I", entry + 8, len(buffers))  # the new buffer's index
    out.put("i", buffer, buffer - buffer_vtable)
    point(buffer + 4, payload_pos)
    out.put("I", 0, root_pos)
    out.data[4:8] = b"TFL3"
    return bytes(out.data) + model
