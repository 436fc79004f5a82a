"""The ``tflm`` backend: TensorFlow Lite Micro through the ``tflite-micro`` package (x86_64 wheels only).

TFLite Micro runs one image an invoke (~0.5 ms here), with its own fixed-point rounding: it measures
what a microcontroller running TFLite Micro answers, so the differences from LiteRT are counted, not
guessed. Full-integer models only. One interpreter per thread and batch size (a slot loops over the batch).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..errors import ArtifactError
from .base import Session, Slot, TensorInfo

ARENA_BYTES = 256 * 1024  # far above the int8 MLP's ~14.3 KB minimum (TFLite Micro crashes just below it)


def _info(details: dict[str, Any], name: str) -> TensorInfo:
    q = details["quantization_parameters"]
    scales, zero_points = q["scales"], q["zero_points"]
    scale = float(scales[0]) if len(scales) == 1 else 0.0
    zero_point = int(zero_points[0]) if len(zero_points) == 1 else 0
    shape = tuple(int(d) for d in details["shape"])
    return TensorInfo(name, (None, *shape[1:]), np.dtype(details["dtype"]).name, scale, zero_point)


class TflmSession(Session):
    def __init__(self, model: bytes) -> None:
        super().__init__()
        from tflite_micro import runtime

        self.backend_name = "tflm"
        self._runtime, self._model = runtime, bytes(model)
        probe = self._interpreter()
        self.inputs = [_info(probe.get_input_details(0), "input")]
        self.outputs = [_info(probe.get_output_details(0), "output")]
        for t in (*self.inputs, *self.outputs):
            if t.dtype not in ("int8", "uint8", "float32"):
                raise ArtifactError(
                    f"tflm runs int8, uint8 or float32 tensors, not {t.dtype}", "Use the litert backend"
                )

    def _interpreter(self) -> Any:
        try:
            return self._runtime.Interpreter.from_bytes(self._model, arena_size=ARENA_BYTES)
        except Exception as exc:  # the package raises RuntimeError for ops or types it does not run
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
            raise ArtifactError(
                f"TFLite Micro cannot load the model ({line[:200]})", "Use the litert backend"
            ) from exc

    def _open_slot(self, batch: int) -> Slot:
        interpreter = self._interpreter()
        x = np.zeros((batch, *(int(d or 1) for d in self.inputs[0].shape[1:])), self.inputs[0].dtype)
        y = np.zeros((batch, *(int(d or 1) for d in self.outputs[0].shape[1:])), self.outputs[0].dtype)

        def invoke() -> None:
            for i in range(batch):
                interpreter.set_input(x[i : i + 1], 0)
                interpreter.invoke()
                y[i] = interpreter.get_output(0)[0]

        return Slot(batch, x, y, invoke, zero_copy=False)


def open_tflm(model: bytes, threads: Optional[int]) -> Session:
    return TflmSession(model)
