"""OpenCV's DNN module (cv2.dnn) for ONNX artifacts: a second ONNX client, and the one a 32-bit
Raspberry Pi gets from apt (Debian's python3-opencv) where no onnxruntime wheel exists.

A ``cv2.dnn.Net`` is not thread-safe, so one lock serialises its calls; ``forward`` returns a fresh
array, copied into the slot's output. The graph's inputs and outputs are read from the ONNX bytes
(protobuf wire format, digitkit.runtime.metadata), since OpenCV does not report their types.
"""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from ..errors import ArtifactError
from ..metadata import protobuf_fields
from .base import Session, Slot, TensorInfo

# TensorProto.DataType (onnx.proto) -> numpy dtype name, for the types a digit model's I/O may have
_ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 10: "float16"}
# Operators that OpenCV releases before 5.1 cannot load (ONNX Runtime's dynamic quantization)
_DYNAMIC_OPS = {"DynamicQuantizeLinear", "MatMulInteger"}
_FIX = "Re-export it with `digitkit export`"


def _version() -> tuple[int, int]:
    import cv2

    parts = str(cv2.__version__).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def skip_reason(mode: str) -> Optional[str]:
    """Why the installed OpenCV cannot run artifacts of ``mode`` (None: it can). verify skips those."""
    if mode == "dynamic" and _version() < (5, 1):
        import cv2

        return f"OpenCV {cv2.__version__} cannot load DynamicQuantizeLinear / MatMulInteger (5.1 can)"
    return None


def _value_info(message: bytes) -> TensorInfo:
    """A graph input or output (ValueInfoProto) as a TensorInfo."""
    name, dtype, shape = "", "", []
    for number, _, value in protobuf_fields(message):
        if number == 1 and isinstance(value, bytes):
            name = value.decode("utf-8", "replace")
        elif number == 2 and isinstance(value, bytes):  # TypeProto
            for tn, _, tensor in protobuf_fields(value):
                if tn != 1 or not isinstance(tensor, bytes):  # TypeProto.tensor_type
                    continue
                for fn, _, part in protobuf_fields(tensor):
                    if fn == 1 and isinstance(part, int):
                        dtype = _ELEM_TYPES.get(part, f"onnx type {part}")
                    elif fn == 2 and isinstance(part, bytes):  # TensorShapeProto
                        for dn, _, dim in protobuf_fields(part):
                            if dn == 1 and isinstance(dim, bytes):
                                sizes = [
                                    v for n, _, v in protobuf_fields(dim) if n == 1 and isinstance(v, int)
                                ]
                                shape.append(sizes[0] if sizes else None)
    return TensorInfo(name=name, shape=tuple(shape), dtype=dtype)


def graph_summary(model: bytes) -> tuple[list[TensorInfo], list[TensorInfo], set[str]]:
    """The graph's inputs (less initializers), outputs and operator types, from ModelProto.graph."""
    graphs = [v for n, w, v in protobuf_fields(model) if n == 7 and w == 2 and isinstance(v, bytes)]
    if not graphs:
        raise ArtifactError("The ONNX model has no graph", _FIX)
    inputs: list[TensorInfo] = []
    outputs: list[TensorInfo] = []
    initializers: set[str] = set()
    ops: set[str] = set()
    for number, _, value in protobuf_fields(graphs[0]):
        if not isinstance(value, bytes):
            continue
        if number == 1:  # NodeProto: op_type is field 4
            ops.update(v.decode() for n, _, v in protobuf_fields(value) if n == 4 and isinstance(v, bytes))
        elif number == 5:  # TensorProto initializer: name is field 8
            initializers.update(
                v.decode() for n, _, v in protobuf_fields(value) if n == 8 and isinstance(v, bytes)
            )
        elif number == 11:
            inputs.append(_value_info(value))
        elif number == 12:
            outputs.append(_value_info(value))
    return [t for t in inputs if t.name not in initializers], outputs, ops


class OpenCvSession(Session):
    backend_name = "opencv"

    def __init__(self, model: bytes, threads: Optional[int]) -> None:
        super().__init__()
        import cv2

        self.inputs, self.outputs, ops = graph_summary(model)
        if ops & _DYNAMIC_OPS and _version() < (5, 1):
            raise ArtifactError(
                f"OpenCV {cv2.__version__} cannot run dynamic-range ONNX models ({', '.join(sorted(ops & _DYNAMIC_OPS))})",
                "Use the onnxruntime backend, OpenCV 5.1 or later, or the int8 ONNX model",
            )
        if threads:
            cv2.setNumThreads(int(threads))  # process-wide in OpenCV
        self._net: Any = cv2.dnn.readNetFromONNX(np.frombuffer(model, np.uint8))
        self._lock = threading.Lock()

    def _open_slot(self, batch: int) -> Slot:
        x = np.zeros((batch, 784), self.inputs[0].dtype)
        y = np.zeros((batch, 10), np.float32)
        net, lock = self._net, self._lock

        def invoke() -> None:
            with lock:
                net.setInput(x)
                y[...] = net.forward().reshape(batch, 10)

        return Slot(batch, x, y, invoke, zero_copy=False)


def open_opencv(model: bytes, threads: Optional[int]) -> Session:
    return OpenCvSession(model, threads)
