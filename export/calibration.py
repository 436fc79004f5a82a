"""Calibration data: a reproducible sample of MNIST *training* images, never test images.

One small interface serves both converters: ``CalibrationSet`` yields float32 (1, 784) batches for
TFLite's representative dataset and feeds ONNX Runtime as a ``CalibrationDataReader``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from digitkit.runtime.errors import InputError
from digitkit.runtime.manifest import Calibration


@dataclass
class CalibrationSet:
    images: np.ndarray  # float32 (N, 784) in [0, 1]
    indices: np.ndarray  # positions in the training set
    seed: int

    @classmethod
    def from_training_set(cls, x_train: np.ndarray, size: int = 500, seed: int = 0) -> CalibrationSet:
        if not 1 <= size <= len(x_train):
            raise InputError(
                f"--calibration-size must be between 1 and {len(x_train)}, got {size}",
                "Pass a few hundred, e.g. 500",
            )
        indices = np.sort(np.random.default_rng(seed).choice(len(x_train), size=size, replace=False))
        images = x_train[indices].reshape(size, 784).astype(np.float32) / np.float32(255.0)
        return cls(images=images, indices=indices, seed=seed)

    def representative_dataset(self):
        """For TFLiteConverter.representative_dataset: one sample per step."""
        for row in self.images:
            yield [row[None, :]]

    def onnx_reader(self, input_name: str):
        """A CalibrationDataReader for onnxruntime.quantization.quantize_static."""
        from onnxruntime.quantization import CalibrationDataReader

        images = self.images

        class Reader(CalibrationDataReader):
            def __init__(self):
                self._batches = iter(np.array_split(images, max(1, len(images) // 100)))

            def get_next(self):
                batch = next(self._batches, None)
                return None if batch is None else {input_name: batch}

        return Reader()

    def describe(self) -> Calibration:
        digest = hashlib.sha256(self.indices.astype("<i8").tobytes()).hexdigest()
        return Calibration("MNIST training set", len(self.indices), int(self.seed), digest)
