"""The runtime's hot-path (de)quantization, checked against the textbook formulas for every code."""

from __future__ import annotations

import numpy as np
import pytest

from digitkit.runtime.backends.base import Slot, TensorInfo
from digitkit.runtime.preprocess import as_batch, input_writer, output_reader


def converter(info: TensorInfo):
    """The model's input writer, run into a fresh slot of the batch's size: what the slot holds after."""
    write = input_writer(info)

    def convert(batch: np.ndarray) -> np.ndarray:
        slot = Slot(
            len(batch),
            np.full((len(batch), 784), 99, info.dtype),
            np.zeros((len(batch), 10), np.float32),
            lambda: None,
            zero_copy=False,
        )
        write(batch, slot)
        return slot.input

    return convert


@pytest.mark.parametrize(
    "dtype, zero_point, scale",
    [("int8", -128, 1 / 256), ("int8", 5, 0.02), ("uint8", 3, 0.1), ("uint8", 0, 1 / 255)],
)
def test_dequantization_equals_the_formula_for_every_code(dtype, zero_point, scale):
    info = TensorInfo("out", (None, 10), dtype, scale, zero_point)
    limits = np.iinfo(dtype)
    raw = np.arange(limits.min, limits.max + 1).astype(dtype).reshape(-1, 16)
    expected = (raw.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    assert np.array_equal(output_reader(info)(raw), expected)


@pytest.mark.parametrize(
    "dtype, zero_point, scale",
    [("int8", -128, 1 / 255), ("int8", 0, 1 / 127), ("uint8", 0, 1 / 255), ("uint8", 10, 0.005)],
)
def test_quantization_of_uint8_and_float_pixels_equals_the_formula(dtype, zero_point, scale):
    info = TensorInfo("in", (None, 784), dtype, np.float32(scale).item(), zero_point)
    pixels = (np.arange(784) % 256).astype(np.uint8).reshape(1, 784)
    limits = np.iinfo(dtype)
    expected = np.clip(
        np.rint(pixels.astype(np.float32) / np.float32(255) / np.float32(info.scale)) + zero_point,
        limits.min,
        limits.max,
    ).astype(dtype)
    convert = converter(info)
    assert np.array_equal(convert(as_batch(pixels)), expected)
    floats = as_batch(pixels.astype(np.float32) / np.float32(255))
    assert np.abs(convert(floats).astype(int) - expected.astype(int)).max() <= 1


def test_float_model_takes_uint8_as_pixels_over_255():
    info = TensorInfo("in", (None, 784), "float32")
    pixels = np.full((2, 28, 28), 51, np.uint8)
    assert np.allclose(converter(info)(as_batch(pixels)), 0.2)


def test_float_model_input_has_the_same_bits_for_small_and_large_batches():
    """Small batches convert in two in-place calls, large ones in one pass: the same float32 values."""
    info = TensorInfo("in", (None, 784), "float32")
    pixels = np.random.default_rng(0).integers(0, 256, (100, 784), dtype=np.uint8)
    expected = pixels.astype(np.float32) * np.float32(1 / 255)
    convert = converter(info)
    assert np.array_equal(convert(pixels), expected)
    assert np.array_equal(np.concatenate([convert(pixels[i : i + 1]) for i in range(100)]), expected)
