"""ONNX Runtime. An InferenceSession's run() is thread-safe, so one session serves every thread."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .base import Session, TensorInfo

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
}


def _tensor_info(node) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return TensorInfo(name=node.name, shape=shape, dtype=_ORT_TYPES.get(node.type, node.type))


class OnnxRuntimeSession(Session):
    backend_name = "onnxruntime"

    def __init__(self, model: bytes, threads: Optional[int]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
        self.inputs = [_tensor_info(n) for n in self._session.get_inputs()]
        self.outputs = [_tensor_info(n) for n in self._session.get_outputs()]
        self._input_name = self.inputs[0].name
        self._output_names = [self.outputs[0].name]

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(self._output_names, {self._input_name: x})[0]


def open_onnxruntime(model: bytes, threads: Optional[int]) -> Session:
    return OnnxRuntimeSession(model, threads)
