"""TFLite interpreters: LiteRT (ai_edge_litert), tflite-runtime, or TensorFlow's own.

They share one API. An interpreter is not thread-safe, so each thread gets its own, built lazily
from the same model bytes: one loaded model can serve many threads at once.

Each thread's slot is zero-copy when the interpreter allows it: the slot's buffers are numpy views
of the interpreter's own input and output tensors, and ``invoke`` is the native Invoke. The public
``Interpreter.invoke()`` refuses to run while such views exist (its guard against buffers that move
on reallocation), so the slot calls the native method directly, and only after checking that the
buffers stay put across an invoke at this batch size. Interpreters without that native method, or
models whose buffers move, get a copying slot through set_tensor / invoke / get_tensor.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..errors import ArtifactError
from .base import Session, Slot, TensorInfo


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
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


def _address(array: np.ndarray) -> int:
    return int(array.__array_interface__["data"][0])


class TFLiteSession(Session):
    zero_copy = True  # tests switch it off to prove the copying slot gives the same answers

    def __init__(
        self, interpreter_class: Any, model: bytes, threads: Optional[int], backend_name: str
    ) -> None:
        super().__init__()
        self.backend_name = backend_name
        self._interpreter_class = interpreter_class
        self._model = model
        self._threads = threads
        interpreter = self._interpreter()
        details_in = interpreter.get_input_details()
        details_out = interpreter.get_output_details()
        self.inputs = [_tensor_info(d) for d in details_in]
        self.outputs = [_tensor_info(d) for d in details_out]
        self._input_index = details_in[0]["index"]
        self._output_index = details_out[0]["index"]

    def _interpreter(self) -> Any:
        """This thread's interpreter."""
        interpreter = getattr(self._local, "interpreter", None)
        if interpreter is None:
            kwargs: dict[str, Any] = {"model_content": self._model}
            if self._threads:
                kwargs["num_threads"] = int(self._threads)
            from ..quiet import without_notices

            with without_notices():  # LiteRT announces its XNNPACK delegate on fd 2
                interpreter = self._local.interpreter = self._interpreter_class(**kwargs)
                interpreter.allocate_tensors()
        return interpreter

    def tensor_details(self) -> list[dict[str, Any]]:
        """Every tensor of the model, weights included, as the interpreter reports them."""
        details: list[dict[str, Any]] = self._interpreter().get_tensor_details()
        return details

    def _open_slot(self, batch: int) -> Slot:
        interpreter = self._interpreter()
        if tuple(interpreter.get_input_details()[0]["shape"]) != (batch, 784):
            try:
                self._resize(interpreter, batch)
            except RuntimeError:  # something still holds views of its old buffers (a kept traceback, say)
                self._local.interpreter = None
                interpreter = self._interpreter()
                self._resize(interpreter, batch)
        native = getattr(getattr(interpreter, "_interpreter", None), "Invoke", None)
        if self.zero_copy and native is not None:
            slot = self._zero_copy_slot(interpreter, native, batch)
            if slot is not None:
                return slot
        return self._copying_slot(interpreter, batch)

    def _resize(self, interpreter: Any, batch: int) -> None:
        interpreter.resize_tensor_input(self._input_index, [batch, 784], strict=False)
        interpreter.allocate_tensors()

    def _zero_copy_slot(
        self, interpreter: Any, native_invoke: Callable[[], object], batch: int
    ) -> Optional[Slot]:
        view_in = interpreter.tensor(self._input_index)
        view_out = interpreter.tensor(self._output_index)
        x, y = view_in(), view_out()
        x[...] = 0
        try:
            native_invoke()
        except RuntimeError as exc:  # a model that loads but cannot run ("Input tensor 6 lacks data")
            detail = str(exc).strip().splitlines()
            raise ArtifactError(
                f"{self.backend_name} cannot run the model ({(detail[-1] if detail else 'invoke failed')[:200]})",
                "Re-export the artifact with `digitkit export`",
            ) from exc
        if _address(view_in()) != _address(x) or _address(view_out()) != _address(y):
            return None  # buffers moved during invoke: views would dangle
        return Slot(batch, x, y, native_invoke, zero_copy=True)

    def _copying_slot(self, interpreter: Any, batch: int) -> Slot:
        x = np.zeros((batch, 784), self.inputs[0].dtype)
        y = np.zeros((batch, 10), self.outputs[0].dtype)
        set_tensor, invoke, get_tensor = interpreter.set_tensor, interpreter.invoke, interpreter.get_tensor
        index_in, index_out = self._input_index, self._output_index

        def copy_invoke() -> None:
            set_tensor(index_in, x)
            invoke()
            np.copyto(y, get_tensor(index_out))

        return Slot(batch, x, y, copy_invoke, zero_copy=False)


def open_litert(model: bytes, threads: Optional[int]) -> Session:
    from ai_edge_litert.interpreter import Interpreter

    return TFLiteSession(Interpreter, model, threads, "litert")


def open_tflite_runtime(model: bytes, threads: Optional[int]) -> Session:
    from tflite_runtime.interpreter import Interpreter

    return TFLiteSession(Interpreter, model, threads, "tflite-runtime")
