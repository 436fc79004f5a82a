"""Export: every target of the table, real converters on the real seed model, and what must hold."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from digitkit.export.formats import MODES, TARGETS, markdown_table, modes_of_flag, select_targets
from digitkit.runtime import load, read_manifest
from digitkit.runtime.errors import InputError
from digitkit.runtime.hashing import sha256_file
from digitkit.toolkit.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def artifact(export_dir: Path, fmt: str, mode: str) -> Path:
    return export_dir / next(t.filename for t in TARGETS if t.format == fmt and t.mode == mode)


def test_manifest_lists_every_target_with_matching_hashes(export_dir):
    manifest = read_manifest(export_dir)
    assert manifest.schema_version == 1
    assert [(e.format, e.mode) for e in manifest.artifacts] == [(t.format, t.mode) for t in TARGETS]
    for entry in manifest.artifacts:
        path = export_dir / entry.file
        assert sha256_file(path) == entry.sha256 and path.stat().st_size == entry.size_bytes
        assert entry.inputs[0].shape[-1] == 784 and entry.outputs[0].shape[-1] == 10
    source = manifest.source_model
    assert len(source.test_predictions) == 10000 and source.test_accuracy >= 0.975
    probabilities = manifest.reference_probabilities()
    assert probabilities.shape == (10000, 10)
    assert (probabilities.argmax(axis=1) == manifest.reference_predictions()).all()
    assert manifest.calibration is not None and manifest.calibration.source == "MNIST training set"
    assert manifest.source_model.training is not None and len(manifest.source_model.training.epochs) == 4


def test_the_manifest_reference_is_the_saved_keras_model(seed_model_dir, export_dir, mnist_test):
    """Every parity claim rests on the manifest's reference: recompute it from model.keras, once with
    Keras and once with numpy from the saved weights (no Keras code), and compare."""
    import keras

    x_test, y_test = mnist_test
    manifest = read_manifest(export_dir)
    source = manifest.source_model
    assert source.sha256 == sha256_file(seed_model_dir / "model.keras")
    model = keras.models.load_model(seed_model_dir / "model.keras")
    x = x_test.reshape(-1, 784).astype(np.float32) / np.float32(255)
    by_keras = np.asarray(model(x, training=False), dtype=np.float32)
    w1, b1, w2, b2, w3, b3 = (w.astype(np.float64) for w in model.get_weights())
    hidden = np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0)
    logits = hidden @ w3 + b3
    by_numpy = np.exp(logits - logits.max(axis=1, keepdims=True))
    by_numpy /= by_numpy.sum(axis=1, keepdims=True)

    recorded = manifest.reference_probabilities()
    assert np.abs(recorded - by_keras).max() < 1e-6
    assert np.abs(recorded - by_numpy).max() < 1e-5
    predictions = manifest.reference_predictions()
    assert np.array_equal(predictions, by_keras.argmax(axis=1))
    # numpy's float64 may break a near-tie the other way; none here is closer than float32 noise
    top2 = np.sort(by_numpy, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5
    assert np.array_equal(predictions[clear], by_numpy.argmax(axis=1)[clear]) and clear.mean() > 0.999
    assert source.test_accuracy == float((by_keras.argmax(axis=1) == y_test).mean())
    assert source.test_accuracy == pytest.approx(float((by_numpy.argmax(axis=1) == y_test).mean()), abs=2e-4)


def test_int8_tflite_is_small_and_fully_integer(export_dir):
    fp32, int8 = artifact(export_dir, "tflite", "fp32"), artifact(export_dir, "tflite", "int8")
    assert int8.stat().st_size <= 0.27 * fp32.stat().st_size
    model = load(int8)
    assert model.input_info.dtype == "int8" and model.output_info.dtype == "int8"
    assert model.input_info.scale == pytest.approx(1 / 255) and model.input_info.zero_point == -128
    details = model.session.tensor_details()
    kernels = [
        d
        for d in details
        if d["dtype"] == np.int8 and tuple(d["shape"]) in ((512, 784), (512, 512), (10, 512))
    ]
    assert len(kernels) == 3, "the three dense kernels must be int8"
    assert not any(d["dtype"] == np.float32 for d in details), "a full-integer model has no float tensors"


def test_int8_pixels_tflite_is_the_int8_model_with_its_conversions_inside(export_dir, mnist_test):
    """uint8 pixels in, float32 out, int8 inside: the same answers as the int8 model, bit for bit."""
    x_test, _ = mnist_test
    int8, pixels = (
        load(artifact(export_dir, "tflite", "int8")),
        load(artifact(export_dir, "tflite", "int8-pixels")),
    )
    assert pixels.input_info.dtype == "uint8" and pixels.output_info.dtype == "float32"
    assert pixels.input_info.scale == pytest.approx(1 / 255) and pixels.input_info.zero_point == 0
    details = pixels.session.tensor_details()
    kernels = [
        d
        for d in details
        if d["dtype"] == np.int8 and tuple(d["shape"]) in ((512, 784), (512, 512), (10, 512))
    ]
    assert len(kernels) == 3, "the three dense kernels must be int8"
    assert [d["dtype"] for d in details if d["dtype"] not in (np.int8, np.int32)].count(np.float32) == 1, (
        "only the output is float"
    )
    np.testing.assert_array_equal(pixels.predict_proba(x_test), int8.predict_proba(x_test))


def test_dynamic_tflite_has_int8_weights_and_float_io(export_dir):
    model = load(artifact(export_dir, "tflite", "dynamic"))
    assert model.input_info.dtype == "float32"
    details = model.session.tensor_details()
    kernels = [d for d in details if d["dtype"] == np.int8 and len(d["shape"]) == 2]
    assert sorted(tuple(d["shape"]) for d in kernels) == [(10, 512), (512, 512), (512, 784)]
    # per tensor (README; tflite-runtime 2.14 rejects the per-channel FULLY_CONNECTED v12): the
    # converter stores one scale per output row, and they are all one value
    distinct = [len(set(d["quantization_parameters"]["scales"].tolist())) for d in kernels]
    assert distinct == [1, 1, 1], distinct
    import tflite

    flat = tflite.Model.GetRootAsModel(artifact(export_dir, "tflite", "dynamic").read_bytes(), 0)
    codes = [flat.OperatorCodes(i) for i in range(flat.OperatorCodesLength())]
    versions = {c.Version() for c in codes if c.BuiltinCode() == tflite.BuiltinOperator.FULLY_CONNECTED}
    assert versions == {9}, versions


def test_onnx_artifacts_pass_the_full_checker_and_are_quantized(export_dir):
    ops = {}
    for mode in ("fp32", "dynamic", "int8"):
        path = artifact(export_dir, "onnx", mode)
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
        opsets = {o.domain or "ai.onnx": o.version for o in onnx.load(str(path)).opset_import}
        assert opsets.get("ai.onnx") == 17, (mode, opsets)  # README: "ONNX models use opset 17"
        ops[mode] = Counter(node.op_type for node in onnx.load(str(path)).graph.node)
    assert ops["fp32"]["QuantizeLinear"] == 0 and ops["fp32"]["Gemm"] == 3
    assert ops["int8"]["QuantizeLinear"] >= 4 and ops["int8"]["DequantizeLinear"] >= 7
    int8_model = onnx.load(str(artifact(export_dir, "onnx", "int8")))
    weights = [
        i for i in int8_model.graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2
    ]
    assert len(weights) == 3
    per_channel_scales = [
        i
        for i in int8_model.graph.initializer
        if i.name.endswith("_scale") and len(i.dims) == 1 and i.dims[0] in (512, 10)
    ]
    assert len(per_channel_scales) >= 3, "weights are quantized per channel"
    assert ops["dynamic"]["DynamicQuantizeLinear"] >= 1 and ops["dynamic"]["MatMulInteger"] == 3


def test_every_artifact_tracks_the_keras_model(export_dir, mnist_test):
    x_test, _ = mnist_test
    manifest = read_manifest(export_dir)
    reference = manifest.reference_predictions()
    for entry in manifest.artifacts:
        predictions = load(export_dir / entry.file).predict(x_test)
        assert (predictions == reference).mean() >= 0.995, entry.file


def test_target_table_drives_validation():
    assert [t.mode for t in select_targets(None, [])] == ["fp32", "fp32"]
    assert {(t.format, t.mode) for t in select_targets(["tflite"], ["int8"])} == {
        ("tflite", "fp32"),
        ("tflite", "int8"),
    }
    assert {(t.format, t.mode) for t in select_targets(["onnx"], modes_of_flag("--int8"))} == {
        ("onnx", "fp32"),
        ("onnx", "int8"),
    }
    assert {t.mode for t in select_targets(["tflite"], modes_of_flag("--int8"))} == {
        "fp32",
        "int8",
        "int8-pixels",
    }
    assert {t.format for t in select_targets(None, ["fp16"]) if t.mode == "fp16"} == {"tflite"}
    with pytest.raises(InputError, match="--float16 is not available for onnx"):
        select_targets(["onnx"], ["fp16"])
    table = markdown_table()
    for target in TARGETS:
        assert target.filename in table
    assert set(MODES) == {t.mode for t in TARGETS}


@pytest.mark.parametrize("document", ["README.md", "docs/manifest.md"])
def test_the_documents_show_the_format_table_as_it_is(document):
    """`python -m digitkit.export.formats` prints the table; the docs carry it verbatim."""
    text = (Path(__file__).resolve().parent.parent / document).read_text()
    assert markdown_table() in text, f"{document}: paste the output of `python -m digitkit.export.formats`"


def test_python_m_formats_prints_the_table_the_documents_carry():
    """README: "`python -m digitkit.export.formats`; a test holds this copy to it": the command itself."""
    import subprocess as sp

    printed = sp.run(
        [sys.executable, "-m", "digitkit.export.formats"], capture_output=True, text=True, check=True
    )
    assert printed.stdout.strip() == markdown_table().strip()
    for document in ("README.md", "docs/manifest.md"):
        assert printed.stdout.strip() in (Path(__file__).resolve().parent.parent / document).read_text()


def test_calibration_flags_are_reproducible(seed_model_dir, export_dir, mnist, tmp_path):
    """The same --calibration-size and --calibration-seed give the same int8 model, byte for byte, in
    another run; another seed picks other training images and gives another model."""
    from digitkit.export.calibration import CalibrationSet
    from digitkit.export.pipeline import ExportRequest, run_export
    from digitkit.toolkit.data import data_checksums
    from digitkit.toolkit.training import read_record

    (x_train, _), (x_test, y_test) = mnist
    model = seed_model_dir / "model.keras"
    int8 = [t for t in TARGETS if (t.format, t.mode) == ("tflite", "int8")]
    session = read_manifest(export_dir).calibration
    assert (session.samples, session.seed) == (500, 0)  # conftest's, the CLI's defaults
    runs = {}
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}"
        calibration = CalibrationSet.from_training_set(x_train, 500, seed)
        run_export(
            ExportRequest(model, out, int8, calibration, x_test, y_test, data_checksums(), read_record(model))
        )
        runs[seed] = (read_manifest(out).calibration, (out / int8[0].filename).read_bytes())
    assert runs[0][0] == session
    assert runs[0][1] == (export_dir / int8[0].filename).read_bytes()
    assert runs[1][0].indices_sha256 != session.indices_sha256 and runs[1][1] != runs[0][1]


def test_missing_and_corrupt_models_are_one_line_exit_2(tmp_path):
    result = runner.invoke(
        app, ["export", "--model", str(tmp_path / "missing.keras"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "Run `digitkit train` first" in result.output
    corrupt = tmp_path / "model.keras"
    corrupt.write_bytes(os.urandom(4096))
    result = runner.invoke(app, ["export", "--model", str(corrupt), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not a readable Keras model" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not any(p for p in (tmp_path / "out").glob("*") if not p.name.startswith("."))


def test_unwritable_output_directory_is_one_line_exit_2(seed_model_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = runner.invoke(
        app, ["export", "--model", str(seed_model_dir / "model.keras"), "--out", str(blocker / "export")]
    )
    assert result.exit_code == 2 and "Pass a writable --out" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_model_with_another_input_shape_is_refused(tmp_path):
    import keras

    model = keras.Sequential([keras.Input(shape=(100,)), keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "other.keras")
    result = runner.invoke(
        app, ["export", "--model", str(tmp_path / "other.keras"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2 and "not (None, 784) to (None, 10)" in result.output


def test_killed_export_leaves_the_previous_artifacts_intact(seed_model_dir, tmp_path):
    out = tmp_path / "export"
    command = [
        str(Path(sys.executable).with_name("digitkit")),
        "export",
        "--model",
        str(seed_model_dir / "model.keras"),
        "--out",
        str(out),
    ]
    assert subprocess.run(command + ["--format", "tflite"], capture_output=True).returncode == 0
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    process = subprocess.Popen(
        command + ["--int8", "--dynamic", "--float16"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        p.name.startswith(".digitkit-staging-") and any(p.iterdir()) for p in out.iterdir()
    ):
        time.sleep(0.05)
    time.sleep(0.5)  # let a converter get going inside the staging directory
    process.send_signal(signal.SIGKILL)
    process.wait()
    after = {p.name: sha256_file(p) for p in out.iterdir() if p.is_file()}
    assert after == before, "the killed run changed or added a visible file"
    manifest = read_manifest(out)
    for entry in manifest.artifacts:
        manifest.check_artifact(entry)
    rerun = subprocess.run(command + ["--int8"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".")], (
        "stale staging directories are cleaned up"
    )
    assert {e.mode for e in read_manifest(out).artifacts} == {"fp32", "int8", "int8-pixels"}


def test_an_export_killed_mid_publish_leaves_whole_files_and_a_refused_mix(
    seed_model_dir, export_dir, tmp_path
):
    """Killed (SIGKILL, deterministically: runtime/files.py `fault_point`) after the first staged file
    is renamed into place and before the manifest: every visible file is whole (the new artifact is
    the complete file a finished run writes; every other file is the previous export's, byte for
    byte), and the previous manifest refuses the file it no longer describes instead of running it.
    A rerun repairs."""
    import keras
    from helpers import run_cli

    from digitkit.runtime.files import FAULT_ENV

    other = keras.models.load_model(seed_model_dir / "model.keras")
    weights = other.get_weights()
    other.set_weights([*weights[:-1], weights[-1] + 0.5])  # another model: every artifact byte differs
    other.save(tmp_path / "other.keras")
    out = tmp_path / "export"
    shutil.copytree(export_dir, out)  # the previous export: every target
    before = {p.name: sha256_file(p) for p in out.iterdir()}

    command = ["export", "--model", tmp_path / "other.keras", "--out", out, "--format", "tflite"]
    killed = run_cli(*command, env={FAULT_ENV: "publish:1"})  # fp32 TFLite, probabilities, manifest
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = {p.name: sha256_file(p) for p in out.iterdir() if not p.name.startswith(".")}
    new = "digit_mlp_fp32.tflite"
    assert set(after) == set(before)
    assert {n: h for n, h in after.items() if n != new} == {n: h for n, h in before.items() if n != new}
    assert after[new] != before[new]
    refused = run_cli("verify", out)
    assert refused.returncode == 2 and "changed since export" in refused.stderr, refused.stderr

    rerun = run_cli(*command)
    assert rerun.returncode == 0, rerun.stderr
    assert sha256_file(out / new) == after[new], "the file the killed run published was not the whole file"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], (
        "stale staging directories are cleaned up"
    )
    manifest = read_manifest(out)
    for entry in manifest.artifacts:
        manifest.check_artifact(entry)


def test_info_shows_tensors_quantization_and_the_manifest_verdict(export_dir, tmp_path):
    import json
    import shutil

    result = runner.invoke(app, ["info", str(artifact(export_dir, "tflite", "int8")), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)  # the command's own JSON output, not a manifest
    assert data["mode"] == "int8" and data["manifest"].startswith("matches") and data["backend"] == "litert"
    assert data["inputs"][0]["dtype"] == "int8" and data["inputs"][0]["quantization"]["zero_point"] == -128
    assert data["tensor_types"]["int8"] >= 3 and "float32" not in data["tensor_types"]
    onnx_info = json.loads(
        runner.invoke(app, ["info", str(artifact(export_dir, "onnx", "int8")), "--json"]).output
    )
    assert onnx_info["op_types"]["QuantizeLinear"] >= 4
    copy = tmp_path / "export"
    shutil.copytree(export_dir, copy)
    changed = artifact(copy, "tflite", "int8")
    raw = bytearray(changed.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    changed.write_bytes(bytes(raw))
    result = runner.invoke(app, ["info", str(changed)])
    assert result.exit_code == 0 and "MISMATCH" in result.output


def test_a_converter_that_fails_names_its_target_and_quotes_the_converter(
    seed_model_dir, mnist, tmp_path, capsys
):
    """tf2onnx 1.17 refuses opset 19 (the CLI keeps users to 13-18; the pipeline is called directly here)."""
    from digitkit.export.calibration import CalibrationSet
    from digitkit.export.pipeline import ExportRequest, run_export
    from digitkit.runtime.errors import ExportError
    from digitkit.toolkit.data import data_checksums

    (x_train, _), (x_test, y_test) = mnist
    targets = [t for t in TARGETS if (t.format, t.mode) == ("onnx", "fp32")]
    request = ExportRequest(
        seed_model_dir / "model.keras",
        tmp_path / "out",
        targets,
        CalibrationSet.from_training_set(x_train, 10, 0),
        x_test,
        y_test,
        data_checksums(),
        None,
        onnx_opset=19,
    )
    with pytest.raises(ExportError, match=r"Export to onnx fp32 \(digit_mlp_fp32.onnx\) failed: ") as failure:
        run_export(request)
    assert failure.value.exit_code == 1
    assert not [p for p in (tmp_path / "out").iterdir()], "a failed export publishes nothing"
    # The one line the CLI prints quotes tf2onnx's own message (raised inside tf2onnx).
    import traceback

    from digitkit.toolkit.cli.common import exit_code_for

    converter_error = failure.value.__cause__
    raised_in = traceback.extract_tb(converter_error.__traceback__)[-1].filename
    assert "tf2onnx" in raised_in, f"expected tf2onnx's own exception, got one from {raised_in}"
    own_text = str(converter_error).strip().splitlines()[0]
    assert "Opset 19" in own_text
    capsys.readouterr()
    assert exit_code_for(failure.value, debug=False) == 1
    printed = capsys.readouterr().err.strip().splitlines()
    assert len(printed) == 1 and own_text in printed[0], printed
