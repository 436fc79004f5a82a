"""What an artifact is: format, mode, tensors, quantization, size, hash, and its manifest's verdict."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Optional

from digitkit.runtime.errors import BackendUnavailableError, HashMismatchError
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.manifest import check_file_hash
from digitkit.runtime.model import read_artifact


def tflite_tensor_types(session) -> Optional[Counter]:
    """dtype counts over every tensor of a TFLite interpreter (weights included)."""
    details = getattr(session, "tensor_details", None)
    if details is None:
        return None
    from numpy import dtype

    return Counter(dtype(d["dtype"]).name for d in details())


def onnx_op_types(data: bytes) -> Optional[Counter]:
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load_model_from_string(data)
    return Counter(node.op_type for node in model.graph.node)


def describe(path: Path, backend: str = "auto") -> dict:
    path, data, fmt, manifest = read_artifact(path, verify_hash=False)
    info = {"file": str(path), "format": fmt, "size_bytes": len(data), "sha256": sha256_file(path)}
    entry = manifest.entry_for(path.name) if manifest else None
    if entry is None:
        info["manifest"] = "no manifest lists this file"
    else:
        try:
            check_file_hash(path, entry["sha256"])
            info["manifest"] = f"matches {manifest.path}"
        except HashMismatchError as exc:
            info["manifest"] = f"MISMATCH: {exc.problem}"
        info["mode"] = entry["mode"]
        info["quantization"] = entry.get("quantization")
        info["inputs"], info["outputs"] = entry.get("inputs"), entry.get("outputs")
        for key in ("converter", "quantizer", "opset"):
            if key in entry:
                info[key] = entry[key]
    try:
        from digitkit.export.quiet import quiet_output
        from digitkit.runtime.backends import open_session

        with quiet_output():
            session = open_session(data, fmt, backend)
        info["backend"] = session.backend_name
        info["inputs"] = [t.to_json() for t in session.inputs]
        info["outputs"] = [t.to_json() for t in session.outputs]
        if fmt == "tflite":
            info["tensor_types"] = dict(tflite_tensor_types(session) or {})
    except BackendUnavailableError as exc:
        info["backend"] = f"none installed ({exc.one_line()})"
    if fmt == "onnx":
        ops = onnx_op_types(data)
        if ops is not None:
            info["op_types"] = dict(ops)
    info.setdefault("mode", "int8" if any(t.get("dtype") in ("int8", "uint8") for t in info.get("inputs") or []) else "unknown")
    return info
