"""Properties of the runtime's input path, over inputs hypothesis draws (derandomized: the same examples
in every run, so CI is reproducible): the fast writers' rounding tricks equal the textbook formula for
every float in [0, 1], and every accepted shape gives the same batch."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from digitkit.runtime.backends.base import Slot, TensorInfo
from digitkit.runtime.preprocess import as_batch, input_writer, quantize_input

CONTRACTS = {  # the two full-integer input contracts the fast writers special-case, and a general one
    "int8": TensorInfo("in", (None, 784), "int8", 1 / 255, -128),
    "uint8": TensorInfo("in", (None, 784), "uint8", 1 / 255, 0),
}
pixels_in_unit = st.one_of(
    st.floats(0.0, 1.0, width=32),
    # exactly halfway between two codes: where rounding half to even matters
    st.integers(0, 254).map(lambda k: float(np.float32((k + 0.5) / 255))),
)


def batches(elements=pixels_in_unit):
    return st.integers(1, 5).flatmap(
        lambda n: hnp.arrays(np.float32, (n, 784), elements=elements, fill=elements)
    )


def written(info: TensorInfo, batch: np.ndarray) -> np.ndarray:
    slot = Slot(
        len(batch),
        np.full((len(batch), 784), 99, info.dtype),
        np.zeros((len(batch), 10)),
        lambda: None,
        False,
    )
    input_writer(info)(batch, slot)
    return slot.input


@settings(max_examples=150, derandomize=True, deadline=None)
@given(batch=batches(), contract=st.sampled_from(sorted(CONTRACTS)))
def test_fast_float_writers_equal_the_textbook_quantization(batch, contract):
    """rint(x * 255) by float tricks (1.5 * 2^23 added, the low byte kept): the same code as numpy's
    rint for every float32 in [0, 1], ties (half to even) included."""
    info = CONTRACTS[contract]
    expected = np.clip(
        np.rint(np.multiply(batch, np.float32(255))) + info.zero_point,
        np.iinfo(info.dtype).min,
        np.iinfo(info.dtype).max,
    )
    fast = written(info, batch)
    assert np.array_equal(fast, expected.astype(info.dtype))
    # The general formula divides by float32(1/255), which is not 1/255: at an exact half it may round
    # the other way, by one code, and nowhere else.
    textbook = quantize_input(batch, info)
    differs = fast != textbook
    assert np.abs(fast.astype(int) - textbook.astype(int)).max(initial=0) <= 1
    halves = np.abs(np.multiply(batch, np.float32(255)) % 1 - 0.5) < 1e-4
    assert not np.any(differs & ~halves)


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    pixels=st.integers(1, 4).flatmap(lambda n: hnp.arrays(np.uint8, (n, 784))),
    contract=st.sampled_from(sorted(CONTRACTS)),
)
def test_uint8_pixels_quantize_to_the_formula(pixels, contract):
    info = CONTRACTS[contract]
    expected = pixels.astype(np.int16) + info.zero_point  # scale 1/255: one code per pixel level
    assert np.array_equal(written(info, pixels), expected.astype(info.dtype))


@settings(max_examples=100, derandomize=True, deadline=None)
@given(
    scale=st.floats(1e-4, 1.0),
    zero_point=st.integers(-128, 127),
    batch=batches(st.floats(0.0, 1.0, width=32)),
)
def test_any_int8_contract_stays_in_range_and_within_half_a_step(scale, zero_point, batch):
    info = TensorInfo("in", (None, 784), "int8", scale, zero_point)
    q = quantize_input(batch, info)
    assert q.dtype == np.int8
    unclipped = (q.astype(np.float64) > -128) & (q.astype(np.float64) < 127)
    back = (q.astype(np.float64) - zero_point) * np.float32(scale)
    assert np.all(np.abs(back - batch)[unclipped] <= np.float32(scale) * 0.5 * (1 + 1e-3))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(images=st.integers(1, 3).flatmap(lambda n: hnp.arrays(np.uint8, (n, 28, 28))))
def test_every_accepted_shape_gives_the_same_batch(images):
    flat = images.reshape(len(images), 784)
    for shaped in (images, flat, list(images)):
        assert np.array_equal(as_batch(shaped), flat)
    assert np.array_equal(as_batch(images[0]), flat[:1]) and np.array_equal(as_batch(flat[0]), flat[:1])
