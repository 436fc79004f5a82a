"""Artifacts as clients nobody here wrote see them: OpenCV 4.x and 5.x on every ONNX artifact, the graph
they need (Gemm, float or int32 biases, never int8 ones), and the metadata inside every artifact, read
back by onnx and by the TFLite schema (the `tflite` package), not only by digitkit.

OpenCV 4.x is the one `make install` puts in the test environment (constraints.txt, the family Debian
and Raspberry Pi OS ship); 5.x runs in a clean venv of its own, built once with the same constraints
and cached beside the emulated root file systems (~/.cache/digitkit/venvs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import ROOT
from onnx import numpy_helper

from digitkit.export.formats import TARGETS
from digitkit.runtime import load
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.manifest import read_manifest
from digitkit.runtime.metadata import METADATA_NAME, read_metadata

ONNX_FILES = [t.filename for t in TARGETS if t.format == "onnx"]
OPENCV_5 = "opencv-python-headless==5.1.0.95"

# Runs under any Python with cv2 and numpy: every ONNX file through cv2.dnn at batch 1000, top-1 saved.
OPENCV_RUN = """
import json, sys, pathlib, numpy as np, cv2
x = np.load(sys.argv[1]).reshape(-1, 784).astype(np.float32) / np.float32(255)
result = {"version": cv2.__version__, "files": {}}
for name in sys.argv[3:]:
    try:
        net = cv2.dnn.readNetFromONNX(str(pathlib.Path(sys.argv[2]) / name))
        top1 = []
        for i in range(0, len(x), 1000):
            net.setInput(x[i:i + 1000])
            top1.append(net.forward().argmax(axis=1))
        result["files"][name] = np.concatenate(top1).tolist()
    except cv2.error as exc:
        lines = [line for line in str(exc).splitlines() if "error" in line] or [str(exc)]
        result["files"][name] = lines[0].strip()
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def test_images(mnist_test, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("images") / "x_test.npy"
    np.save(path, mnist_test[0])
    return path


@pytest.fixture(scope="module")
def onnxruntime_top1(export_dir, mnist_test) -> dict[str, np.ndarray]:
    return {
        name: load(export_dir / name, backend="onnxruntime").predict(mnist_test[0]) for name in ONNX_FILES
    }


def opencv_5_python() -> Path:
    """A clean venv with numpy and OpenCV 5 alone, built with constraints.txt (less its OpenCV 4 pin),
    cached by its requirements; built under a temporary name and renamed into place."""
    constraints = [
        line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if not line.startswith("opencv-python-headless")
    ]
    digest = hashlib.sha256("\n".join(constraints).encode()).hexdigest()[:12]
    key = f"{OPENCV_5}-py{sys.version_info[0]}{sys.version_info[1]}-{digest}"
    env = os.environ.get("DIGITKIT_EMULATION_CACHE")
    cache = (Path(env).expanduser().parent if env else Path.home() / ".cache" / "digitkit") / "venvs"
    venv = cache / key.replace("==", "-")
    python = venv / "bin" / "python"
    if python.exists():
        return python
    cache.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=".build-", dir=cache))
    try:
        subprocess.run([sys.executable, "-m", "venv", str(building)], check=True)
        (building / "constraints.txt").write_text("\n".join(constraints) + "\n")
        result = subprocess.run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            + ["-c", str(building / "constraints.txt"), "numpy", OPENCV_5],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        try:
            building.rename(venv)
        except OSError:  # another run finished first: use its venv
            pass
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return python


def run_opencv(python: Path, export_dir: Path, images: Path) -> dict:
    done = subprocess.run(
        [str(python), "-c", OPENCV_RUN, str(images), str(export_dir), *ONNX_FILES],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_agreement(result: dict, reference: dict[str, np.ndarray], figures: list[str]) -> None:
    """fp32 and int8 load and agree with onnxruntime on every image; the dynamic-range model loads from
    OpenCV 5.1 on (DynamicQuantizeLinear), and then agrees on all but a handful."""
    version = result["version"]
    for name, top1 in result["files"].items():
        if isinstance(top1, str):
            figures.append(f"OpenCV {version}: {name} does not load ({top1[:120]})")
            assert "dynamic" in name and tuple(int(p) for p in version.split(".")[:2]) < (5, 1), top1
            continue
        agreement = float((np.asarray(top1) == reference[name]).mean())
        figures.append(f"OpenCV {version}: {name} top-1 agreement with onnxruntime {agreement:.4f}")
        if "dynamic" in name:  # activations quantized at run time, each runtime its own way
            assert agreement >= 0.999, name
        else:
            assert agreement == 1.0, name


def test_opencv_4_runs_every_onnx_artifact_like_onnxruntime(
    export_dir, test_images, onnxruntime_top1, figures
):
    import cv2

    assert cv2.__version__.startswith("4."), "make install pins OpenCV 4.x (constraints.txt)"
    check_agreement(run_opencv(Path(sys.executable), export_dir, test_images), onnxruntime_top1, figures)


@pytest.mark.slow
def test_opencv_5_in_a_clean_venv_runs_every_onnx_artifact_like_onnxruntime(
    export_dir, test_images, onnxruntime_top1, figures
):
    result = run_opencv(opencv_5_python(), export_dir, test_images)
    assert result["version"].startswith("5.")
    check_agreement(result, onnxruntime_top1, figures)


def test_onnx_graphs_are_gemm_with_float_biases_and_per_channel_int8_weights(export_dir):
    """Each dense layer is one Gemm (OpenCV 4.x cannot load the int8 MatMul + Add form); the int8
    model's biases are the float32 Gemm C inputs, never int8 tensors (what tf2onnx's Add gave)."""
    for name in ONNX_FILES:
        model = onnx.load(str(export_dir / name))
        onnx.checker.check_model(model, full_check=True)
        assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}, name
    fp32, int8 = (onnx.load(str(export_dir / f"digit_mlp_{m}.onnx")) for m in ("fp32", "int8"))
    assert Counter(n.op_type for n in fp32.graph.node) == {"Gemm": 3, "Relu": 2, "Softmax": 1}
    ops = Counter(n.op_type for n in int8.graph.node)
    assert ops["Gemm"] == 3 and ops["MatMul"] == ops["Add"] == 0 and ops["QuantizeLinear"] >= 4
    initializers = {i.name: i for i in int8.graph.initializer}
    biases = [initializers[n.input[2]] for n in int8.graph.node if n.op_type == "Gemm"]
    assert [(b.data_type, tuple(b.dims)) for b in biases] == [
        (onnx.TensorProto.FLOAT, (512,)),
        (onnx.TensorProto.FLOAT, (512,)),
        (onnx.TensorProto.FLOAT, (10,)),
    ]
    int8_vectors = [
        i.name
        for i in int8.graph.initializer
        if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 1 and not i.name.endswith("_zero_point")
    ]
    assert int8_vectors == []


def test_int32_biases_are_scaled_input_times_weight_and_opencv_4_misreads_their_batches(
    export_dir, mnist, tmp_path
):
    """The int32-bias form (export.onnx.INT32_BIASES): biases scaled input_scale × weight_scale, and why
    it is not the default: OpenCV 4.x gets only the first image of a batch right (OpenCV 5.x refuses it,
    docs/onnx-clients.md). When this test fails on a newer OpenCV, flip INT32_BIASES."""
    import logging

    import cv2
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from digitkit.export.calibration import CalibrationSet

    (x_train, _), (x_test, _) = mnist
    calibration = CalibrationSet.from_training_set(x_train, 100, 0)
    logging.getLogger().setLevel(logging.ERROR)
    path = tmp_path / "int32.onnx"
    quantize_static(
        str(export_dir / "digit_mlp_fp32.onnx"),
        str(path),
        calibration.onnx_reader("pixels"),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: n for n in model.graph.node for out in n.output}
    int32_biases = 0
    for gemm in (n for n in model.graph.node if n.op_type == "Gemm"):
        a, b, c = (producer[name] for name in gemm.input)
        assert init[c.input[0]].dtype == np.int32
        expected = init[a.input[1]] * init[b.input[1]]  # input scale × the weights' per-channel scales
        np.testing.assert_allclose(init[c.input[1]], expected, rtol=1e-6)
        int32_biases += 1
    assert int32_biases == 3
    x = x_test[:8].reshape(8, 784).astype(np.float32) / np.float32(255)
    reference = load(path, backend="onnxruntime").predict_proba(x)
    net = cv2.dnn.readNetFromONNX(str(path))
    net.setInput(x)
    batch = net.forward()
    assert np.abs(batch[0] - reference[0]).max() < 0.02  # the first image is right
    assert not np.allclose(batch, reference, atol=0.02)  # the others are not


def test_metadata_reads_back_through_onnx_and_the_tflite_schema(export_dir):
    import tflite

    manifest = read_manifest(export_dir)
    for entry in manifest.artifacts:
        if entry.format not in ("onnx", "tflite"):
            continue
        path = export_dir / entry.file
        data = path.read_bytes()
        assert sha256_file(path) == entry.sha256  # the manifest hashes the file with its metadata
        ours = read_metadata(data, entry.format)
        assert ours is not None, entry.file
        if entry.format == "onnx":
            props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
            theirs = {k: json.loads(v) if k in ("input", "labels", "recipe") else v for k, v in props.items()}
        else:
            model = tflite.Model.GetRootAsModel(data, 0)
            named = {
                model.Metadata(i).Name().decode(): model.Metadata(i).Buffer()
                for i in range(model.MetadataLength())
            }
            assert "min_runtime_version" in named  # the converter's own entries are kept
            theirs = json.loads(model.Buffers(named[METADATA_NAME]).DataAsNumpy().tobytes())
        assert theirs == ours.to_json(), entry.file
        assert (ours.format, ours.mode) == (entry.format, entry.mode)
        assert ours.source_model_sha256 == manifest.source_model.sha256
        assert ours.labels == tuple("0123456789") and ours.recipe["epochs"] == 4
        assert (
            ours.input["shape"] == [None, 784] and ours.input["preprocessing"]["image"] == "28x28 grayscale"
        )
        assert ours.input["dtype"] == entry.inputs[0].dtype


def test_a_lone_renamed_artifact_says_what_it_is(export_dir, tmp_path, mnist_test):
    """No manifest beside it: `digitkit info` and the runtime take the mode from the file itself."""
    from typer.testing import CliRunner

    from digitkit.toolkit.cli import app

    for source, backend in (("digit_mlp_int8_pixels.tflite", "numpy"), ("digit_mlp_fp32.onnx", "opencv")):
        lone = tmp_path / f"renamed{Path(source).suffix}"
        shutil.copy(export_dir / source, lone)
        mode = read_manifest(export_dir).entry_for(source).mode
        described = json.loads(CliRunner().invoke(app, ["info", str(lone), "--json"]).output)
        assert described["manifest"] == "no manifest lists this file"
        assert described["mode"] == mode and described["metadata"]["mode"] == mode
        model = load(lone, backend=backend)
        assert model.mode == mode and model.metadata is not None
        assert (model.predict(mnist_test[0][:1000]) == mnist_test[1][:1000]).mean() > 0.95
