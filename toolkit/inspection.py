"""What an artifact is: format, mode, tensors, quantization, size, hash, and its manifest's verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from digitkit.runtime.backends import open_session
from digitkit.runtime.backends.base import Session, TensorInfo
from digitkit.runtime.errors import BackendUnavailableError, HashMismatchError
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.manifest import Tool, check_file_hash
from digitkit.runtime.metadata import read_metadata
from digitkit.runtime.model import read_artifact


@dataclass
class ArtifactDescription:
    file: str
    format: str
    size_bytes: int
    sha256: str
    manifest: str  # "matches PATH", "MISMATCH: ...", or "no manifest lists this file"
    mode: str = "unknown"
    quantization: str = ""
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    backend: str = ""
    tensor_types: dict[str, int] = field(default_factory=dict)  # TFLite: dtype -> tensors
    op_types: dict[str, int] = field(default_factory=dict)  # ONNX: op -> nodes
    converter: Optional[Tool] = None
    quantizer: Optional[Tool] = None
    opset: Optional[int] = None
    training: str = ""  # the recipe, augmentation and accuracies, when the manifest has them
    metadata: Optional[dict[str, Any]] = None  # what the file says about itself (digitkit.runtime.metadata)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = [t.to_json() for t in self.inputs]
        data["outputs"] = [t.to_json() for t in self.outputs]
        return data


def tflite_tensor_types(session: Session) -> Counter[str]:
    """dtype counts over every tensor of a TFLite model (weights included), where the backend lists them."""
    details = getattr(session, "tensor_details", None)
    if details is None:
        return Counter()
    import numpy as np

    return Counter(np.dtype(d["dtype"]).name for d in details())


def onnx_op_types(data: bytes) -> Counter[str]:
    try:
        import onnx
    except ImportError:
        return Counter()
    model = onnx.load_model_from_string(data)
    return Counter(node.op_type for node in model.graph.node)


def describe(path: Path, backend: str = "auto") -> ArtifactDescription:
    path, data, fmt, manifest = read_artifact(path, verify_hash=False)
    described = ArtifactDescription(
        str(path), fmt, len(data), sha256_file(path), "no manifest lists this file"
    )
    entry = manifest.entry_for(path.name) if manifest else None
    metadata = read_metadata(data, fmt)
    if metadata is not None:
        described.metadata = metadata.to_json()
        described.mode = metadata.mode
    if manifest is not None and entry is not None:
        try:
            check_file_hash(path, entry.sha256)
            described.manifest = f"matches {manifest.name}"
        except HashMismatchError as exc:
            described.manifest = f"MISMATCH: {exc.problem}"
        described.mode, described.quantization = entry.mode, entry.quantization
        if manifest.source_model.training is not None:
            described.training = manifest.source_model.training.describe()
        described.inputs, described.outputs = entry.inputs, entry.outputs
        described.converter, described.quantizer, described.opset = (
            entry.converter,
            entry.quantizer,
            entry.opset,
        )
    try:
        session = open_session(data, fmt, backend)
        described.backend = session.backend_name
        described.inputs, described.outputs = tuple(session.inputs), tuple(session.outputs)
        if fmt == "tflite":
            described.tensor_types = dict(tflite_tensor_types(session))
    except BackendUnavailableError as exc:
        described.backend = f"none installed ({exc.one_line()})"
    if fmt == "onnx":
        described.op_types = dict(onnx_op_types(data))
    if entry is None and metadata is None and any(t.quantized for t in described.inputs):
        described.mode = "int8"
    return described
