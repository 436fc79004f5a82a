"""Keras layers digitkit's recipes use beyond Keras's own, registered for saving and loading.

Keras 3's Reshape and Flatten take the batch size from the input's shape at run time; TFLiteConverter
turns that into SHAPE, STRIDED_SLICE and PACK ops and a dynamic tensor after the reshape, which keeps
every later op out of the XNNPACK delegate and its output unallocated until the first invoke.
``BatchReshape`` reshapes with -1 for the batch instead: one RESHAPE with a constant shape (and one
ONNX Reshape), so the graph stays static.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def custom_objects() -> dict[str, Any]:
    """For keras.saving.load_model: the classes by their registered names."""
    import keras

    @keras.saving.register_keras_serializable(package="digitkit")
    class BatchReshape(keras.layers.Layer):
        """(N, ...) -> (N, *target_shape), the batch left to the reshape (-1)."""

        def __init__(self, target_shape, **kwargs):
            super().__init__(**kwargs)
            self.target_shape = tuple(int(d) for d in target_shape)

        def call(self, inputs):
            return keras.ops.reshape(inputs, (-1,) + self.target_shape)

        def compute_output_shape(self, input_shape):
            return (input_shape[0],) + self.target_shape

        def get_config(self):
            return {**super().get_config(), "target_shape": list(self.target_shape)}

    return {"digitkit>BatchReshape": BatchReshape}


def batch_reshape(target_shape: tuple[int, ...], name: str) -> Any:
    return custom_objects()["digitkit>BatchReshape"](target_shape, name=name)
