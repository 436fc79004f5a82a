"""TFLite interpreters: LiteRT (ai_edge_litert), tflite-runtime, or TensorFlow's own.

They share one API. An interpreter is not thread-safe, so each thread gets its own, built
lazily from the same model bytes: one loaded model can serve many threads at once.
"""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np

from .base import Session, TensorInfo


def _tensor_info(detail: dict) -> TensorInfo:
    signature = detail.get("shape_signature")
    if signature is None or len(signature) == 0:
        signature = detail["shape"]
    shape = tuple(None if int(d) < 0 else int(d) for d in signature)
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return TensorInfo(
        name=detail["name"],
        shape=shape,
        dtype=np.dtype(detail["dtype"]).name,
        scale=float(scale),
        zero_point=int(zero_point),
    )


class _ThreadInterpreter:
    """One interpreter and the batch size its tensors are allocated for."""

    __slots__ = ("interpreter", "batch", "input_index", "output_index")

    def __init__(self, interpreter, input_index: int, output_index: int) -> None:
        self.interpreter = interpreter
        self.batch = -1
        self.input_index = input_index
        self.output_index = output_index


class TFLiteSession(Session):
    def __init__(self, interpreter_class, model: bytes, threads: Optional[int], backend_name: str) -> None:
        self.backend_name = backend_name
        self._interpreter_class = interpreter_class
        self._model = model
        self._threads = threads
        self._local = threading.local()
        first = self._new_interpreter()
        details_in = first.interpreter.get_input_details()
        details_out = first.interpreter.get_output_details()
        self.inputs = [_tensor_info(d) for d in details_in]
        self.outputs = [_tensor_info(d) for d in details_out]
        self._local.state = first

    def _new_interpreter(self) -> _ThreadInterpreter:
        kwargs = {"model_content": self._model}
        if self._threads:
            kwargs["num_threads"] = int(self._threads)
        interpreter = self._interpreter_class(**kwargs)
        interpreter.allocate_tensors()
        return _ThreadInterpreter(
            interpreter,
            interpreter.get_input_details()[0]["index"],
            interpreter.get_output_details()[0]["index"],
        )

    def run(self, x: np.ndarray) -> np.ndarray:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = self._new_interpreter()
        interpreter = state.interpreter
        if x.shape[0] != state.batch:
            interpreter.resize_tensor_input(state.input_index, list(x.shape), strict=False)
            interpreter.allocate_tensors()
            state.batch = x.shape[0]
        interpreter.set_tensor(state.input_index, x)
        interpreter.invoke()
        return interpreter.get_tensor(state.output_index)


def open_litert(model: bytes, threads: Optional[int]) -> Session:
    from ai_edge_litert.interpreter import Interpreter

    return TFLiteSession(Interpreter, model, threads, "litert")


def open_tflite_runtime(model: bytes, threads: Optional[int]) -> Session:
    from tflite_runtime.interpreter import Interpreter

    return TFLiteSession(Interpreter, model, threads, "tflite-runtime")
