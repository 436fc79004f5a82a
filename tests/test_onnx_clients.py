"""Artifacts as clients nobody here wrote see them: OpenCV 4.x and 5.x on every ONNX artifact, the graph
they need (Gemm, int32 biases added after it, never int8 ones), and the metadata inside every artifact,
read back by onnx and by the TFLite schema (the `tflite` package), not only by digitkit.

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

BATCH_1_FILES = ["digit_mlp_int8.onnx"]  # also run one image at a time: OpenCV 4.x once erred by batch

# Runs under any Python with cv2 and numpy: every ONNX file through cv2.dnn at batch 1000 (and the
# files named in argv[3] at batch 1 too), top-1 saved, or the first line of the error.
OPENCV_RUN = """
import json, sys, pathlib, numpy as np, cv2
x = np.load(sys.argv[1]).reshape(-1, 784).astype(np.float32) / np.float32(255)
result = {"version": cv2.__version__, "files": {}, "batch_1": {}}
for name in sys.argv[4:]:
    try:
        net = cv2.dnn.readNetFromONNX(str(pathlib.Path(sys.argv[2]) / name))
        for batch, key in [(1000, "files")] + [(1, "batch_1")] * (name in sys.argv[3].split(",")):
            top1 = []
            for i in range(0, len(x), batch):
                net.setInput(x[i:i + batch])
                top1.append(net.forward().argmax(axis=1))
            result[key][name] = np.concatenate(top1).tolist()
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
        [str(python), "-c", OPENCV_RUN, str(images), str(export_dir), ",".join(BATCH_1_FILES), *ONNX_FILES],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_agreement(result: dict, reference: dict[str, np.ndarray], figures: list[str]) -> None:
    """fp32 and int8 load and agree with onnxruntime on every image (int8 at batch 1000 and batch 1);
    the dynamic-range model loads from OpenCV 5.1 on (DynamicQuantizeLinear), and then agrees on all
    but a handful."""
    version = result["version"]
    assert sorted(result["batch_1"]) == BATCH_1_FILES
    for name, top1 in result["batch_1"].items():
        agreement = float((np.asarray(top1) == reference[name]).mean())
        figures.append(
            f"OpenCV {version}: {name} at batch 1, top-1 agreement with onnxruntime {agreement:.4f}"
        )
        assert agreement == 1.0, name
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


def test_onnx_graphs_are_gemm_with_int32_biases_and_per_channel_int8_weights(export_dir):
    """Each dense layer is one Gemm (OpenCV 4.x cannot load the int8 MatMul + Add form). The int8
    model's biases are int32, scale input_scale × weight_scale per channel and zero point 0 (the QDQ
    convention), each added by a Sum right after its Gemm (export.onnx.bias_after_gemm); no int8
    vectors (what tf2onnx's Add gave) and no float biases."""
    for name in ONNX_FILES:
        model = onnx.load(str(export_dir / name))
        onnx.checker.check_model(model, full_check=True)
        assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}, name
    fp32, int8 = (onnx.load(str(export_dir / f"digit_mlp_{m}.onnx")) for m in ("fp32", "int8"))
    assert Counter(n.op_type for n in fp32.graph.node) == {"Gemm": 3, "Relu": 2, "Softmax": 1}
    ops = Counter(n.op_type for n in int8.graph.node)
    assert ops == {"Gemm": 3, "Sum": 3, "QuantizeLinear": 5, "DequantizeLinear": 11, "Softmax": 1}
    init = {i.name: numpy_helper.to_array(i) for i in int8.graph.initializer}
    producer = {out: n for n in int8.graph.node for out in n.output}
    int32_biases = 0
    for gemm in (n for n in int8.graph.node if n.op_type == "Gemm"):
        assert len(gemm.input) == 2, "no bias inside Gemm"
        a, b = (producer[name] for name in gemm.input)  # DequantizeLinear of activations and of weights
        (bias_sum,) = (n for n in int8.graph.node if gemm.output[0] in n.input)
        assert bias_sum.op_type == "Sum" and len(bias_sum.input) == 2
        (c,) = (producer[name] for name in bias_sum.input if name != gemm.output[0])
        assert c.op_type == "DequantizeLinear"
        bias, scale, zero_point = (init[name] for name in c.input)
        assert bias.dtype == np.int32 and bias.shape == (1, init[b.input[0]].shape[1])
        np.testing.assert_allclose(scale, init[a.input[1]] * init[b.input[1]], rtol=1e-6)
        assert zero_point.dtype == np.int32 and not zero_point.any()
        int32_biases += 1
    assert int32_biases == 3
    int8_vectors = [
        i.name
        for i in int8.graph.initializer
        if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 1 and not i.name.endswith("_zero_point")
    ]
    assert int8_vectors == []


@pytest.fixture(scope="module")
def onnxruntime_int32_form(export_dir, mnist, tmp_path_factory) -> Path:
    """ONNX Runtime's own int32-bias graph, Gemm's C = DequantizeLinear(int32): the exported fp32 model
    quantized as export does (same calibration images), without bias_after_gemm."""
    import logging

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from digitkit.export.calibration import CalibrationSet

    recorded = read_manifest(export_dir).calibration
    assert recorded is not None
    calibration = CalibrationSet.from_training_set(mnist[0][0], recorded.samples, recorded.seed)
    logging.getLogger().setLevel(logging.ERROR)
    path = tmp_path_factory.mktemp("int32") / "onnxruntime_int32_form.onnx"
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
    producer = {out: n for n in model.graph.node for out in n.output}
    biases = [producer[n.input[2]] for n in model.graph.node if n.op_type == "Gemm"]
    assert [b.op_type for b in biases] == ["DequantizeLinear"] * 3
    return path


def test_bias_after_gemm_changes_no_onnxruntime_output(export_dir, onnxruntime_int32_form, mnist_test):
    """The rewrite moves the biases, not their values: onnxruntime fuses Gemm + Sum back into the
    Gemm it quantizes, so its probabilities equal those of its own form on all 10,000 test images."""
    ours = load(export_dir / "digit_mlp_int8.onnx", backend="onnxruntime").predict_proba(mnist_test[0])
    theirs = load(onnxruntime_int32_form, backend="onnxruntime").predict_proba(mnist_test[0])
    np.testing.assert_array_equal(ours, theirs)


def test_onnxruntime_int32_form_still_misreads_batches_in_opencv_4(onnxruntime_int32_form, mnist_test):
    """Why export.onnx.bias_after_gemm exists, on OpenCV 4.x: ONNX Runtime's own form loads, each image
    alone is right, but in a batch only the first image gets its bias (Gemm copies M×N values from
    an N-value bias, docs/onnx-clients.md). When this fails on a newer OpenCV 4.x (and the 5.x test
    below too), the rewrite can go."""
    import cv2

    x = mnist_test[0][:8].reshape(8, 784).astype(np.float32) / np.float32(255)
    reference = load(onnxruntime_int32_form, backend="onnxruntime").predict_proba(x)
    net = cv2.dnn.readNetFromONNX(str(onnxruntime_int32_form))
    singles = []
    for image in x:
        net.setInput(image[None])
        singles.append(net.forward()[0].copy())
    net.setInput(x)
    batch = net.forward()
    assert np.abs(np.array(singles) - reference).max() < 0.02  # one at a time: right
    assert np.abs(batch[0] - reference[0]).max() < 0.02  # the first image of the batch: right
    assert not np.allclose(batch[1:], reference[1:], atol=0.02)  # the others: not


OPENCV_LOAD_EVERY_ENGINE = """
import json, sys, cv2
errors = {}
for engine in ["default"] + [e for e in ("ENGINE_AUTO", "ENGINE_OPENCV", "ENGINE_ORT", "ENGINE_CLASSIC",
                                         "ENGINE_NEW") if hasattr(cv2.dnn, e)]:
    try:
        cv2.dnn.readNetFromONNX(sys.argv[1], *(() if engine == "default" else (getattr(cv2.dnn, engine),)))
        errors[engine] = None
    except cv2.error as exc:
        errors[engine] = str(exc)
print(json.dumps({"version": cv2.__version__, "errors": errors}))
"""


@pytest.mark.slow
def test_onnxruntime_int32_form_still_fails_to_load_in_opencv_5(onnxruntime_int32_form, figures):
    """Why export.onnx.bias_after_gemm exists, on OpenCV 5.x: no engine loads ONNX Runtime's own form
    (`bufidx >= 0` in argTensor). When this fails on a newer OpenCV 5.x, the 5.x half is fixed."""
    done = subprocess.run(
        [str(opencv_5_python()), "-c", OPENCV_LOAD_EVERY_ENGINE, str(onnxruntime_int32_form)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["version"].startswith("5.") and "default" in result["errors"]
    for engine, error in result["errors"].items():
        figures.append(
            f"OpenCV {result['version']} {engine}: ONNX Runtime's int32 form: {(error or 'loads').strip()}"
        )
        assert error is not None and "bufidx >= 0" in error and "argTensor" in error, engine


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


def _usability(path: Path) -> tuple[str, str, str, str]:
    """ONNX Runtime Mobile's usability checker on ``path``: (NNAPI as is, NNAPI with fixed shapes,
    CoreML as is, CoreML with fixed shapes), CoreML's NeuralNetwork and MLProgram agreeing."""
    done = subprocess.run(
        [sys.executable, "-m", "onnxruntime.tools.check_onnx_model_mobile_usability", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    verdicts = {}
    for line in (done.stdout + done.stderr).splitlines():
        if "Model should perform well with" in line:
            claim, verdict = line.split("Model should perform well with ", 1)[1].rsplit(": ", 1)
            verdicts[claim] = verdict.strip()
    assert verdicts, done.stdout + done.stderr

    def fixed(ep: str) -> str:  # without the line, fixing the shapes changes nothing: the verdict as is
        return verdicts.get(f"{ep} if modified to have fixed input shapes", verdicts[f"{ep} as is"])

    coreml = {verdicts["CoreML NeuralNetwork as is"], verdicts["CoreML MLProgram as is"]}
    coreml_fixed = {fixed("CoreML NeuralNetwork"), fixed("CoreML MLProgram")}
    assert len(coreml) == len(coreml_fixed) == 1, verdicts  # the docs give one CoreML column each
    return verdicts["NNAPI as is"], fixed("NNAPI"), coreml.pop(), coreml_fixed.pop()


def test_the_mobile_usability_table_is_what_the_checker_says(export_dir):
    """docs/onnx-clients.md's table (NNAPI and CoreML, as exported and with the batch fixed): each
    cell's YES/NO is what onnxruntime's checker says about the exported artifact today."""
    text = (ROOT / "docs" / "onnx-clients.md").read_text()
    table = text[text.index("| artifact | NNAPI as exported |") :].split("\n\n")[0].splitlines()[2:]
    documented = {}
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        documented[cells[0]] = tuple(c.split()[0] for c in cells[1:5])
    assert set(documented) == {"fp32", "int8", "dynamic"}, documented
    for mode, verdicts in documented.items():
        assert _usability(export_dir / f"digit_mlp_{mode}.onnx") == verdicts, mode
