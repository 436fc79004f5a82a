"""The numpy backend's reader, session and error paths, on the real exported artifacts.

The parser is cross-checked against the pure-Python `tflite` package; damaged graphs (cyclic,
disconnected, an unsupported op, absurd shapes) must give one-line ArtifactErrors.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from digitkit.runtime import load
from digitkit.runtime.backends import numpy_kernels
from digitkit.runtime.backends.numpy_backend import NumpySession
from digitkit.runtime.backends.numpy_flatbuffer import parse
from digitkit.runtime.errors import ArtifactError

TFLITE = ("fp32", "fp16", "dynamic", "int8", "int8_pixels")


def artifact(export_dir: Path, mode: str) -> Path:
    return export_dir / f"digit_mlp_{mode}.tflite"


def standalone(tmp_path: Path, data: bytes, name: str = "model.tflite") -> Path:
    """A copy without a manifest beside it, so a changed file is not refused by its hash first."""
    path = tmp_path / name
    path.write_bytes(data)
    return path


def one_line_error(path: Path) -> str:
    with pytest.raises(ArtifactError) as info:
        load(path, backend="numpy")
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("mode", TFLITE)
def test_parser_agrees_with_the_tflite_package(export_dir, mode):
    tflite = pytest.importorskip("tflite")
    from tflite.BuiltinOperator import BuiltinOperator

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    data = artifact(export_dir, mode).read_bytes()
    graph = parse(data)
    model = tflite.Model.GetRootAsModel(data, 0)
    sub = model.Subgraphs(0)
    assert sub.TensorsLength() == len(graph.tensors)
    for ours in graph.tensors:
        theirs = sub.Tensors(ours.index)
        assert ours.name == theirs.Name().decode()
        assert ours.shape == tuple(theirs.ShapeAsNumpy())
        signature = theirs.ShapeSignatureAsNumpy() if theirs.ShapeSignatureLength() else theirs.ShapeAsNumpy()
        assert ours.signature == tuple(signature)
        assert (
            ours.dtype.itemsize
            and {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 9: "int8"}[theirs.Type()]
            == ours.dtype.name
        )
        q = theirs.Quantization()
        scales = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else np.zeros(0, np.float32)
        zero_points = q.ZeroPointAsNumpy() if q is not None and q.ZeroPointLength() else np.zeros(0, np.int64)
        np.testing.assert_array_equal(ours.quant.scale, scales)
        np.testing.assert_array_equal(ours.quant.zero_point, zero_points)
        buffer = model.Buffers(theirs.Buffer())
        raw = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
        assert (ours.data.tobytes() if ours.data is not None else b"") == raw
    ops = [sub.Operators(i) for i in range(sub.OperatorsLength())]
    theirs_ops = [
        (
            names[
                max(
                    model.OperatorCodes(op.OpcodeIndex()).BuiltinCode(),
                    model.OperatorCodes(op.OpcodeIndex()).DeprecatedBuiltinCode(),
                )
            ],
            tuple(op.InputsAsNumpy()),
            tuple(op.OutputsAsNumpy()),
        )
        for op in ops
    ]
    ours_ops = [(op.name, op.inputs, op.outputs) for op in sorted(graph.operators, key=lambda o: o.index)]
    assert ours_ops == theirs_ops
    assert (graph.input, graph.output) == (sub.Inputs(0), sub.Outputs(0))


@pytest.mark.parametrize("mode", TFLITE)
def test_session_describes_the_model_as_litert_does(export_dir, mode):
    pytest.importorskip("ai_edge_litert")
    ours = load(artifact(export_dir, mode), backend="numpy")
    theirs = load(artifact(export_dir, mode), backend="litert")
    assert ours.backend == "numpy"
    assert ours.input_info == theirs.input_info and ours.output_info == theirs.output_info
    assert ours.input_info.shape == (None, 784)
    details = ours.session.tensor_details()
    native = theirs.session.tensor_details()
    by_name = {d["name"]: d for d in native}
    for d in details:  # LiteRT may list a few tensors of its own (scratch): ours are all in its list
        assert d["dtype"] == np.dtype(by_name[d["name"]]["dtype"])
        assert tuple(d["shape"]) == tuple(by_name[d["name"]]["shape"])


def test_every_integer_layer_is_proved_exact_in_float32(export_dir):
    for mode in ("int8", "int8_pixels", "dynamic"):
        session = load(artifact(export_dir, mode), backend="numpy").session
        assert isinstance(session, NumpySession)
        assert session.accumulation == ("float32",) * 3


def test_a_lower_limit_forces_int64_accumulation(export_dir, monkeypatch):
    monkeypatch.setattr(numpy_kernels, "FLOAT32_EXACT_LIMIT", 0)
    session = load(artifact(export_dir, "int8"), backend="numpy").session
    assert isinstance(session, NumpySession) and session.accumulation == ("int64",) * 3


def _hammer(model, x: np.ndarray, sizes: tuple[int, ...], expected: dict, errors: list, offset: int) -> None:
    for round_ in range(25):
        n = sizes[(offset + round_) % len(sizes)]
        if not np.array_equal(model.predict_proba(x[:n]), expected[n]):
            errors.append(f"batch {n} differs")


def test_threads_with_mixed_batch_sizes_match_sequential_runs(export_dir, mnist_test):
    x = mnist_test[0][:600].reshape(-1, 784)
    sizes = (1, 7, 64, 1, 200, 3)
    for mode in ("int8", "fp32"):
        model = load(artifact(export_dir, mode), backend="numpy")
        expected = {n: model.predict_proba(x[:n]) for n in sizes}
        errors: list[str] = []
        threads = [
            threading.Thread(target=_hammer, args=(model, x, sizes, expected, errors, i)) for i in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]


def test_batch_one_equals_big_batches(export_dir, mnist_test):
    x = mnist_test[0][:200].reshape(-1, 784)
    for mode in ("int8", "int8_pixels"):
        for backend in ("numpy", "numpy-micro"):
            model = load(artifact(export_dir, mode), backend=backend)
            whole = model.predict_proba(x)
            single = np.concatenate([model.predict_proba(x[i]) for i in range(len(x))])
            np.testing.assert_array_equal(single, whole)


def _fields(data: bytes):
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    return model, model.Subgraphs(0)


def _vector_start(table, field: int) -> int:
    return table._tab.Vector(table._tab.Offset(4 + 2 * field))


def test_an_unsupported_op_is_named_in_one_line(export_dir, tmp_path):
    pytest.importorskip("tflite")
    data = bytearray(artifact(export_dir, "int8").read_bytes())
    model, _ = _fields(bytes(data))
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        if code.BuiltinCode() == 9:  # FULLY_CONNECTED -> CONV_2D
            tab = code._tab
            struct.pack_into("<b", data, tab.Pos + tab.Offset(4), 3)
            struct.pack_into("<i", data, tab.Pos + tab.Offset(10), 3)
    message = one_line_error(standalone(tmp_path, bytes(data)))
    assert "CONV_2D" in message and "numpy backend does not run" in message


def test_a_cyclic_graph_is_refused(export_dir, tmp_path):
    pytest.importorskip("tflite")
    data = bytearray(artifact(export_dir, "int8").read_bytes())
    _, sub = _fields(bytes(data))
    first, second = sub.Operators(0), sub.Operators(1)
    # the first layer reads the second layer's output: 0 -> 1 -> 0
    struct.pack_into("<i", data, _vector_start(first, 1), int(second.Outputs(0)))
    assert "cycle" in one_line_error(standalone(tmp_path, bytes(data)))


def test_a_disconnected_graph_is_refused(export_dir, tmp_path):
    pytest.importorskip("tflite")
    data = bytearray(artifact(export_dir, "int8").read_bytes())
    _, sub = _fields(bytes(data))
    # the graph output becomes the first layer's output: the later operators lead nowhere
    struct.pack_into("<i", data, _vector_start(sub, 2), int(sub.Operators(0).Outputs(0)))
    assert "disconnected" in one_line_error(standalone(tmp_path, bytes(data)))


def test_absurd_shapes_and_indices_are_refused(export_dir, tmp_path):
    pytest.importorskip("tflite")
    source = artifact(export_dir, "int8").read_bytes()
    _, sub = _fields(source)
    weights = sub.Tensors(int(sub.Operators(0).Inputs(1)))
    cases = {
        "huge shape": (_vector_start(weights, 0), 1 << 30),
        "buffer index": (weights._tab.Pos + weights._tab.Offset(8), 10_000),
        "tensor index": (_vector_start(sub.Operators(0), 1), 9_999),
    }
    for name, (pos, value) in cases.items():
        data = bytearray(source)
        struct.pack_into("<i", data, pos, value)
        one_line_error(standalone(tmp_path, bytes(data), f"{name.replace(' ', '_')}.tflite"))
    for cut in (20, 1000, len(source) // 2, len(source) - 8):
        one_line_error(standalone(tmp_path, source[:cut], f"cut_{cut}.tflite"))


def test_loads_without_any_native_runtime_imported(export_dir, tmp_path):
    script = (
        "import json, sys\n"
        "from digitkit.runtime import load\n"
        "import numpy as np\n"
        f"m = load({str(artifact(export_dir, 'int8'))!r}, backend='numpy')\n"
        "p = m.predict(np.zeros((2, 28, 28), np.uint8))\n"
        "banned = [k for k in sys.modules if k.split('.')[0] in ('ai_edge_litert', 'onnxruntime', 'tensorflow', 'tflite_micro', 'tflite_runtime', 'tflite', 'keras')]\n"
        "print(json.dumps({'banned': banned, 'predictions': p.tolist()}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["banned"] == [] and len(report["predictions"]) == 2
