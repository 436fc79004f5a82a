"""The numpy backend against the real runtimes on all 10,000 MNIST test images.

- numpy (XNNPACK rounding): int8 and int8-pixels bit-identical to LiteRT's default x86 path.
- numpy-micro (TFLite Micro rounding): bit-identical to the `tflite-micro` package, batch 1 each.
- fp32, fp16 within 1e-5 of LiteRT with the same top-1; dynamic-range top-1 equal on >= 99.9%.
- float32 and int64 accumulation give identical outputs.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import numpy as np
import pytest

from digitkit.runtime import load
from digitkit.runtime.backends import numpy_backend, numpy_kernels

pytestmark = pytest.mark.slow


def artifact(export_dir: Path, mode: str) -> Path:
    return export_dir / f"digit_mlp_{mode}.tflite"


def raw_outputs(model, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    """The model's own output tensor (int8 codes or floats) for every image."""
    return np.concatenate(
        [model._run_batch(images[i : i + batch]).copy() for i in range(0, len(images), batch)]
    )


@pytest.fixture(scope="module")
def images(mnist_test) -> np.ndarray:
    return np.ascontiguousarray(mnist_test[0].reshape(-1, 784))


@pytest.fixture(scope="module")
def litert_outputs(export_dir, images) -> dict[str, np.ndarray]:
    pytest.importorskip("ai_edge_litert")
    return {
        mode: raw_outputs(load(artifact(export_dir, mode), backend="litert"), images)
        for mode in ("int8", "int8_pixels", "fp32", "fp16", "dynamic")
    }


@pytest.mark.parametrize("mode", ["int8", "int8_pixels"])
def test_int8_is_bit_identical_to_litert(export_dir, images, litert_outputs, mode):
    ours = raw_outputs(load(artifact(export_dir, mode), backend="numpy"), images)
    assert ours.dtype == litert_outputs[mode].dtype
    assert np.array_equal(ours, litert_outputs[mode]), (
        f"{int((ours != litert_outputs[mode]).any(axis=1).sum())} images differ"
    )


@pytest.mark.parametrize("mode", ["fp32", "fp16"])
def test_float_models_match_litert(export_dir, images, litert_outputs, mode):
    ours = raw_outputs(load(artifact(export_dir, mode), backend="numpy"), images)
    assert np.abs(ours - litert_outputs[mode]).max() <= 1e-5
    assert np.array_equal(ours.argmax(axis=1), litert_outputs[mode].argmax(axis=1))


def test_dynamic_range_model_agrees_on_top1(export_dir, images, litert_outputs, figures):
    ours = raw_outputs(load(artifact(export_dir, "dynamic"), backend="numpy"), images)
    agreement = float((ours.argmax(axis=1) == litert_outputs["dynamic"].argmax(axis=1)).mean())
    figures.append(f"numpy backend, dynamic-range TFLite: top-1 agreement with LiteRT {agreement:.4%}")
    assert agreement >= 0.999


@pytest.mark.parametrize("mode", ["int8", "int8_pixels"])
def test_micro_mode_is_bit_identical_to_tflite_micro(export_dir, images, litert_outputs, mode, figures):
    runtime = pytest.importorskip("tflite_micro").runtime
    data = artifact(export_dir, mode).read_bytes()
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=40_000)  # minimum ~14.5 KB: keep a margin
    feed = images if mode == "int8_pixels" else (images ^ 0x80).view(np.int8)
    reference = []
    for i in range(len(images)):  # batch 1 only: ~350 us an image here, all 10,000 in a few seconds
        interpreter.set_input(feed[i : i + 1], 0)
        interpreter.invoke()
        reference.append(np.array(interpreter.get_output(0)))
    expected = np.concatenate(reference)
    micro = load(artifact(export_dir, mode), backend="numpy-micro")
    assert micro.backend == "numpy-micro"
    ours = raw_outputs(micro, images)
    assert np.array_equal(ours, expected), f"{int((ours != expected).any(axis=1).sum())} images differ"
    differ = np.flatnonzero((ours != litert_outputs[mode]).any(axis=1))
    figures.append(
        f"numpy-micro vs numpy (XNNPACK) on {mode}: {differ.size} of 10,000 images differ ({differ.tolist()[:10]})"
    )


@pytest.mark.parametrize("backend", ["numpy", "numpy-micro"])
def test_int64_accumulation_gives_identical_outputs(export_dir, images, monkeypatch, backend):
    path = artifact(export_dir, "int8")
    fast = load(path, backend=backend)
    monkeypatch.setattr(numpy_kernels, "FLOAT32_EXACT_LIMIT", 0)
    slow = load(path, backend=backend)
    assert fast.session.accumulation == ("float32",) * 3 and slow.session.accumulation == ("int64",) * 3
    subset = images if backend == "numpy" else images[:2000]
    assert np.array_equal(raw_outputs(fast, subset), raw_outputs(slow, subset))


def test_exp_table_equals_the_c_library_expf():
    """The softmax table takes expf as exp in double rounded to float32; glibc's expf agrees on it
    (numpy's own float32 exp does not, in the last bit, on some entries)."""
    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("no C math library to compare with")
    expf = ctypes.CDLL(name).expf
    expf.restype, expf.argtypes = ctypes.c_float, [ctypes.c_float]
    for in_scale in (0.20897265, 0.1, 0.0625, 0.3):
        table = numpy_kernels.exp_table(in_scale, 1.0)
        scale = np.float32(-np.float32(in_scale))
        expected = np.array([expf(float(scale * np.float32(v))) for v in range(256)], np.float32)[::-1]
        np.testing.assert_array_equal(table, expected)


@pytest.mark.parametrize("mode", ["int8", "int8_pixels"])
def test_skipping_zero_inputs_at_batch_1_changes_nothing(
    export_dir, images, litert_outputs, monkeypatch, mode
):
    """At batch 1 the fused int8 layers multiply only the weight rows of nonzero inputs: always (fraction
    1), never (0) and by the default threshold give LiteRT's bits on every image, one image at a time."""
    path = artifact(export_dir, mode)
    outputs = {}
    for fraction in (0.0, 1.0, numpy_kernels.SPARSE_FRACTION):
        monkeypatch.setattr(numpy_kernels, "SPARSE_FRACTION", fraction)
        model = load(path, backend="numpy")
        assert any(isinstance(k, numpy_kernels.Int8Chain) for k in model.session._kernels)
        outputs[fraction] = raw_outputs(model, images, batch=1)
    for fraction, ours in outputs.items():
        assert np.array_equal(ours, litert_outputs[mode]), (
            f"fraction {fraction}: {int((ours != litert_outputs[mode]).any(axis=1).sum())} images differ"
        )


def test_fused_layers_equal_the_layer_by_layer_path(export_dir, images, monkeypatch):
    """Int8Chain (float32 values between layers) against the int8 kernels one by one, at batch 1000 and 7."""
    path = artifact(export_dir, "int8")
    fused = load(path, backend="numpy")
    monkeypatch.setattr(numpy_backend, "_fuse", lambda kernels: kernels)
    session = fused.session
    plain = load(path, backend="numpy")
    assert isinstance(session._kernels[0], numpy_kernels.Int8Chain)
    assert not any(isinstance(k, numpy_kernels.Int8Chain) for k in plain.session._kernels)
    for batch in (1000, 7):
        assert np.array_equal(raw_outputs(fused, images, batch), raw_outputs(plain, images, batch))
