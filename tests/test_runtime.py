"""The device runtime: inputs in every accepted form, quantization done for the caller, errors,
backends, thread safety, and no heavy imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from digitkit.runtime import BACKENDS, load
from digitkit.runtime.errors import ArtifactError, BackendUnavailableError, HashMismatchError, InputError

pytestmark = pytest.mark.slow
HEAVY = ("tensorflow", "keras", "onnx", "tf2onnx")


def run_in_threads(work, count: int) -> list:
    """``work(worker)`` in ``count`` threads at once; the exceptions they raised."""
    errors = []

    def guarded(worker: int) -> None:
        try:
            work(worker)
        except Exception as exc:  # reported by the caller's assertion
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(w,)) for w in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_runtime_imports_nothing_heavy_in_a_fresh_interpreter(export_dir):
    code = f"""
import sys, numpy as np
from digitkit.runtime import load
for name in ("digit_mlp_int8.tflite", "digit_mlp_int8.onnx"):
    model = load({str(export_dir)!r} + "/" + name)
    model.predict(np.zeros((2, 28, 28), np.uint8))
print(sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "name",
    ["digit_mlp_int8.tflite", "digit_mlp_fp32.tflite", "digit_mlp_int8.onnx", "digit_mlp_dynamic.onnx"],
)
def test_every_input_form_gives_the_same_answer(export_dir, mnist_test, name):
    x_test, _ = mnist_test
    model = load(export_dir / name)
    images = x_test[:64]
    reference = model.predict_proba(images)
    assert reference.shape == (64, 10) and reference.dtype == np.float32
    np.testing.assert_allclose(model.predict_proba(images.reshape(64, 784)), reference)
    floats = images.astype(np.float32) / 255
    np.testing.assert_allclose(model.predict_proba(floats), reference, atol=1e-5)
    np.testing.assert_allclose(
        model.predict_proba(floats.astype(np.float64).reshape(64, 784)), reference, atol=1e-5
    )
    np.testing.assert_allclose(model.predict_proba(images[0]), reference[:1], atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(images[0].reshape(784)), reference[:1], atol=1e-6)
    assert (model.predict(images) == reference.argmax(axis=1)).all()
    for batch in (1, 7, 1000, 3):  # resizing back and forth
        assert model.predict(x_test[:batch]).shape == (batch,)


def test_int8_model_quantizes_with_its_own_parameters(export_dir, mnist_test):
    """The runtime's answer equals a bare interpreter fed by hand-quantized input."""
    from ai_edge_litert.interpreter import Interpreter

    x_test, _ = mnist_test
    path = export_dir / "digit_mlp_int8.tflite"
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    model = load(path)
    for image in x_test[:50]:
        q = np.clip(np.round(image.reshape(1, 784) / 255.0 / in_scale) + in_zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q)
        interpreter.invoke()
        expected = (interpreter.get_tensor(out["index"]).astype(np.float32) - out_zero) * out_scale
        np.testing.assert_allclose(model.predict_proba(image), expected, atol=1e-7)
        np.testing.assert_allclose(model.predict_proba(image.astype(np.float32) / 255), expected, atol=1e-7)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.full((1, 784), np.nan, np.float32), "NaN"),
        (np.zeros((2, 27, 27), np.uint8), "not 28x28"),
        (np.full((1, 784), 255.0, np.float32), "must lie in [0, 1]"),
        (np.zeros((0, 784), np.uint8), "empty"),
        (np.full((1, 784), -3, np.int64), "0 to 255"),
        (np.array(["a"] * 784), "not supported"),
    ],
)
def test_bad_arrays_raise_input_errors(export_dir, bad, fragment):
    model = load(export_dir / "digit_mlp_int8.tflite")
    with pytest.raises(InputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        model.predict(bad)


def test_backend_choice_and_errors(export_dir):
    assert load(export_dir / "digit_mlp_int8.tflite").backend == "litert"
    assert load(export_dir / "digit_mlp_int8.onnx").backend == "onnxruntime"
    assert load(export_dir / "digit_mlp_int8.tflite", backend="litert", threads=1).backend == "litert"
    with pytest.raises(InputError, match="Unknown backend"):
        load(export_dir / "digit_mlp_int8.tflite", backend="tensorrt")
    with pytest.raises(InputError, match="cannot run tflite"):
        load(export_dir / "digit_mlp_int8.tflite", backend="onnxruntime")
    if not __import__("importlib").util.find_spec("tflite_runtime"):
        with pytest.raises(BackendUnavailableError, match=r"digitkit\[tflite\]"):
            load(export_dir / "digit_mlp_int8.tflite", backend="tflite-runtime")
    assert set(BACKENDS) >= {"litert", "tflite-runtime", "onnxruntime"}


def test_changed_artifact_is_refused_before_any_runtime_sees_it(export_dir, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    path = copy / "digit_mlp_int8.tflite"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(HashMismatchError, match="changed since export"):
        load(path)
    (copy / "empty.tflite").write_bytes(b"")
    with pytest.raises(ArtifactError, match="not a TFLite model"):
        load(copy / "empty.tflite")


@pytest.mark.parametrize("name", ["digit_mlp_int8.tflite", "digit_mlp_fp32.tflite", "digit_mlp_int8.onnx"])
def test_one_model_shared_by_eight_threads_matches_a_sequential_run(export_dir, mnist_test, name):
    x_test, _ = mnist_test
    model = load(export_dir / name)
    per_thread = 2000
    expected = model.predict_proba(x_test[:per_thread])
    results = {}

    def work(worker: int) -> None:
        order = np.roll(np.arange(per_thread), worker * 250)  # each thread its own order
        out = np.empty((per_thread, 10), np.float32)
        for i in order:
            out[i] = model.predict_proba(x_test[i])[0]
        results[worker] = out

    errors = run_in_threads(work, 8)
    assert not errors, errors[0]
    for worker in range(8):
        np.testing.assert_allclose(results[worker], expected, atol=1e-6, err_msg=f"thread {worker}")


@pytest.mark.parametrize(
    "name", ["digit_mlp_int8.tflite", "digit_mlp_fp32.tflite", "digit_mlp_dynamic.tflite"]
)
def test_zero_copy_slots_answer_exactly_as_set_tensor_get_tensor(export_dir, mnist_test, name):
    """LiteRT runs in place in the interpreter's own tensors; the copying path must agree bit for bit."""
    x_test, _ = mnist_test
    fast = load(export_dir / name)
    careful = load(export_dir / name)
    careful.session.zero_copy = False
    for batch in (x_test[0], x_test[:5], x_test[:1000], x_test[7]):
        np.testing.assert_array_equal(fast.predict_proba(batch), careful.predict_proba(batch))
    assert fast.session.slot(1).zero_copy and not careful.session.slot(1).zero_copy


def test_onnx_slot_is_written_in_place_and_equals_a_plain_session_run(export_dir, mnist_test):
    import onnxruntime as ort

    x_test, _ = mnist_test
    path = export_dir / "digit_mlp_int8.onnx"
    model = load(path)
    plain = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    floats = x_test[:300].reshape(300, 784).astype(np.float32) / np.float32(255)
    expected = plain.run(None, {plain.get_inputs()[0].name: floats})[0]
    np.testing.assert_allclose(
        model.predict_proba(x_test[:300]), expected, atol=1e-6
    )  # a big batch: session.run
    np.testing.assert_allclose(
        model.predict_proba(x_test[:10]), expected[:10], atol=1e-6
    )  # a small one: the slot
    np.testing.assert_allclose(
        model.session.slot(10).output, expected[:10], atol=1e-6
    )  # ORT wrote into the bound buffer
    first = model.predict_proba(x_test[0])
    second = model.predict_proba(x_test[1])
    np.testing.assert_allclose(
        first, expected[:1], atol=1e-6
    )  # an answer is the caller's, not a view of the buffer
    np.testing.assert_allclose(second, expected[1:2], atol=1e-6)


@pytest.mark.parametrize("name", ["digit_mlp_int8.tflite", "digit_mlp_int8.onnx"])
def test_threads_switching_batch_sizes_get_their_own_answers(export_dir, mnist_test, name):
    """Every thread keeps its own buffers, so batch sizes changing under other threads change nothing."""
    x_test, _ = mnist_test
    model = load(export_dir / name)
    expected = model.predict_proba(x_test[:600])

    def work(worker: int) -> None:
        for round_ in range(30):
            size = (1, 3, 50, 1, 200)[(worker + round_) % 5]
            start = (worker * 37 + round_ * 11) % (600 - size)
            got = model.predict_proba(x_test[start : start + size])
            np.testing.assert_allclose(got, expected[start : start + size], atol=1e-6)

    errors = run_in_threads(work, 6)
    assert not errors, errors[0]


def test_a_kept_view_of_the_old_buffers_does_not_break_a_batch_change(export_dir, mnist_test):
    """The interpreter refuses to resize while its buffers are referenced; the session starts a fresh one."""
    x_test, _ = mnist_test
    model = load(export_dir / "digit_mlp_int8.tflite")
    expected = model.predict_proba(x_test[:5])
    kept = model.session.slot(1).output  # what a stored traceback's frame could hold
    np.testing.assert_array_equal(model.predict_proba(x_test[:5]), expected)
    assert kept.shape == (1, 10)
