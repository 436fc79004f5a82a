"""Arrays in, model inputs out: shape and range checks, and int8/uint8 (de)quantization.

The quantized path is the hot one on a device, so it avoids copies: uint8 pixels go to an int8
input with scale 1/255 and zero point -128 by flipping the top bit.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from .backends.base import Slot, TensorInfo
from .errors import InputError

PIXELS = 784
Writer = Callable[[np.ndarray, Slot], None]


_UINT8 = np.dtype(np.uint8)
_FLOAT32 = np.dtype(np.float32)
_UINT32 = np.dtype(np.uint32)
_ONE_BITS = 0x3F800000  # float32 1.0 read as uint32
_INV255 = np.float32(1.0 / 255.0)


def as_batch(x: ArrayLike) -> np.ndarray:
    """(N, 784) float32 in [0, 1] or uint8, from one image or a batch, flat or 28x28.

    The common cases (a uint8 or float32 ndarray of a known shape) take a path of a few attribute
    reads; a float range check is one reduction over the bits. Anything else, or anything that fails
    the quick check, goes through the precise checks and their messages."""
    if type(x) is np.ndarray and (
        x.dtype is _UINT8 or x.dtype is _FLOAT32 or x.dtype == _UINT8 or x.dtype == _FLOAT32
    ):
        shape = x.shape
        if shape == (28, 28) or shape == (PIXELS,):
            array = x.reshape(1, PIXELS)
        elif len(shape) == 2 and shape[1] == PIXELS and shape[0]:
            array = x
        elif len(shape) == 3 and shape[1:] == (28, 28) and shape[0]:
            array = x.reshape(shape[0], PIXELS)
        else:
            return _checked_batch(x)
        if array.dtype == _FLOAT32:
            # Read as uint32, every float32 in [+0, 1] is at most 1.0's bits; NaN, negatives and -0.0
            # are above them. argmax and one item cost a third of a max() reduction.
            bits = array.view(_UINT32)
            if not array.flags.c_contiguous or bits.item(bits.argmax()) > _ONE_BITS:
                return _checked_batch(array)  # out of range, NaN, -0.0 or strided: the precise path
        return array
    return _checked_batch(x)


def _checked_batch(x: ArrayLike) -> np.ndarray:
    if type(x).__module__.startswith("PIL."):  # a PIL image: a picture of a digit, made MNIST-like
        from .images import image_to_mnist

        x = image_to_mnist(x)
    array = np.asarray(x)
    if array.dtype == np.bool_:
        raise InputError(
            "Boolean images are not supported (True would read as pixel value 1 of 255)",
            "Pass uint8 pixels (e.g. mask.astype(np.uint8) * 255) or floats in [0, 1]",
        )
    if array.ndim in (3, 4) and array.shape[-1] == 1 and array.shape[-3:-1] == (28, 28):
        array = array[..., 0]  # Keras' channels-last (N, 28, 28, 1) and (28, 28, 1)
    if array.dtype == np.uint8:
        pass
    elif array.dtype.kind == "f":
        if array.dtype != np.float32:
            array = array.astype(np.float32)
    elif array.dtype.kind in "iu":
        if array.size and (array.min() < 0 or array.max() > 255):
            raise InputError(
                "Integer images must hold pixel values 0 to 255", "Pass uint8 pixels or floats in [0, 1]"
            )
        array = array.astype(np.uint8)
    else:
        raise InputError(
            f"Images of dtype {array.dtype} are not supported", "Pass uint8 pixels or floats in [0, 1]"
        )
    shape = array.shape
    if shape == (28, 28) or shape == (PIXELS,):
        array = array.reshape(1, PIXELS)
    elif array.ndim == 3 and shape[1:] == (28, 28):
        array = array.reshape(shape[0], PIXELS)
    elif array.ndim == 2 and shape[1] == PIXELS:
        pass
    else:
        raise InputError(
            f"Images of shape {shape} are not 28x28 digits",
            "Pass (N, 28, 28), (N, 28, 28, 1), (N, 784), (28, 28) or (784,); use digitkit.runtime.images for image files",
        )
    if array.shape[0] == 0:
        raise InputError("The batch is empty", "Pass at least one image")
    if array.dtype == np.float32:
        low, high = array.min(), array.max()
        if not (low >= 0.0 and high <= 1.0):  # also false for NaN
            if np.isnan(low) or np.isnan(high):
                raise InputError("The images contain NaN", "Replace NaN pixels before predicting")
            raise InputError(
                f"Float images must lie in [0, 1], these span [{low:.3g}, {high:.3g}]",
                "Divide 0-255 pixels by 255, or pass them as uint8",
            )
    return array


def quantize_input(batch: np.ndarray, info: TensorInfo) -> np.ndarray:
    """The textbook formula: q = clip(round(x / scale) + zero_point), for any int8/uint8 input."""
    values = np.multiply(batch, _INV255, dtype=np.float32) if batch.dtype == _UINT8 else batch
    limits = np.iinfo(info.dtype)
    q = np.rint(values / np.float32(info.scale)) + info.zero_point
    quantized: np.ndarray = np.clip(q, limits.min, limits.max).astype(info.dtype)
    return quantized


_TOP_BIT = np.uint8(0x80)
_255 = np.float32(255.0)
_128 = np.float32(128.0)


def input_writer(info: TensorInfo) -> Writer:
    """A function writing a checked batch into a slot's input buffer, chosen once per model.

    Each writes straight into the slot (the backend's own input tensor where it allows that): uint8
    pixels take one or two numpy passes and no temporary."""
    # Added to a float32 in [0, 255], 1.5 * 2^23 rounds it to a whole number r (ties to even, as rint)
    # and leaves r in the low byte of the sum's bits; 1.5 * 2^23 - 128 leaves r - 128, an int8's byte.
    round_uint8, round_int8 = np.float32(1.5 * 2**23), np.float32(1.5 * 2**23 - 128)
    if not info.quantized:

        def write_float(batch: np.ndarray, slot: Slot) -> None:
            x = slot.input
            x[...] = batch  # uint8 values are exact in float32
            if batch.dtype == _UINT8:
                # Two plain passes beat one mixed-type multiply (buffered casting) by about a quarter,
                # at batch 1 and at batch 1000 alike; the bits are the same.
                x *= _INV255

        return write_float
    if info.dtype == "int8" and info.zero_point == -128 and abs(info.scale * 255.0 - 1.0) < 1e-6:

        def write_int8(batch: np.ndarray, slot: Slot) -> None:  # the full-integer TFLite contract
            if batch.dtype == _UINT8:
                np.bitwise_xor(batch, _TOP_BIT, out=slot.input_bytes)  # v - 128 as int8, in one op
                return
            # rint(x * 255) - 128 in three passes and no float-to-int conversion: x * 255 is in [0, 255]
            # (as_batch checked the range), so adding 1.5 * 2^23 - 128 rounds it to a whole number, half
            # to even as rint does, and the low byte of the sum's bits is rint(x * 255) - 128 as int8.
            q = np.multiply(batch, _255)
            np.add(q, round_int8, out=q)
            target = slot.input_bytes
            assert target is not None  # an int8 input: one byte a value
            np.copyto(target, q.view(np.uint32), casting="unsafe")  # uint32 -> uint8: the low byte

        return write_int8
    if info.dtype == "uint8" and info.zero_point == 0 and abs(info.scale * 255.0 - 1.0) < 1e-6:

        def write_pixels(batch: np.ndarray, slot: Slot) -> None:  # pixels as they are
            if batch.dtype == _UINT8:
                slot.input[...] = batch
                return
            q = np.multiply(batch, _255)  # in [0, 255]: as_batch checked the range
            np.add(q, round_uint8, out=q)  # rounds to a whole number, half to even, as rint does
            np.copyto(slot.input, q.view(np.uint32), casting="unsafe")  # the low byte: rint(x * 255)

        return write_pixels

    def write_quantized(batch: np.ndarray, slot: Slot) -> None:
        np.copyto(slot.input, quantize_input(batch, info))

    return write_quantized


def output_reader(info: TensorInfo) -> Callable[[np.ndarray], np.ndarray]:
    """A function from the output buffer to float32 probabilities the caller owns, chosen once per model."""
    if not info.quantized:
        if info.dtype == "float32":
            return np.ndarray.copy
        return lambda raw: raw.astype(np.float32)
    return dequantization_table(info).take  # int8 codes index from the end: -1 is entry 255


def dequantization_table(info: TensorInfo) -> np.ndarray:
    """float32 value of each of the 256 byte patterns of an int8/uint8 output: one lookup per call.

    Entry i holds the code whose byte is i, so the table is indexed by the raw int8 value
    (negative indices count from the end) or by the raw uint8 value alike."""
    codes = np.arange(256, dtype=np.uint8).view(np.dtype(info.dtype)).astype(np.float32)
    table: np.ndarray = (codes - np.float32(info.zero_point)) * np.float32(info.scale)
    return table
