"""What every exporter needs, built once per export run: the Keras model, TensorFlow, calibration data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .calibration import CalibrationSet


@dataclass
class ExportContext:
    model: Any  # keras.Model
    tf: Any  # the tensorflow module
    calibration: CalibrationSet
    staging: Path
    onnx_opset: int = 17
    c_rounding: str = "litert"  # the C target's rounding: "litert" or "tflite-micro"
    cache: dict = field(default_factory=dict)  # shared intermediates, e.g. the fp32 ONNX model

    def staged(self, filename: str) -> Path:
        return self.staging / filename
