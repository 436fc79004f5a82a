"""`digitkit predict`: the real command over the real test set, and bad files among good ones."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import mnist_png_dir, run_cli
from typer.testing import CliRunner

from digitkit.toolkit.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()


def bare_litert_predictions(path, images: np.ndarray) -> np.ndarray:
    """The artifact through its backend directly: hand-quantized int8 input, batch by batch."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    interpreter.resize_tensor_input(inp["index"], [len(images), 784])
    interpreter.allocate_tensors()
    q = np.clip(np.round(images.reshape(len(images), 784) / 255.0 / scale) + zero, -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], q)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]).argmax(axis=1)


def test_predict_over_the_test_set_as_pngs_equals_the_bare_backend(export_dir, mnist_test, tmp_path):
    x_test, y_test = mnist_test
    mnist_png_dir(tmp_path / "pngs", x_test)
    model = export_dir / "digit_mlp_int8.tflite"
    result = run_cli("predict", tmp_path / "pngs", "--model", model, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 10000
    predicted = np.array([row["digit"] for row in sorted(rows, key=lambda r: r["file"])])
    direct = bare_litert_predictions(model, x_test)
    assert (predicted == direct).all()
    cli_accuracy, direct_accuracy = (predicted == y_test).mean(), (direct == y_test).mean()
    assert cli_accuracy == direct_accuracy and cli_accuracy >= 0.975
    assert {"file", "digit", "confidence", "probabilities", "model", "backend"} == set(rows[0]) and len(
        rows[0]["probabilities"]
    ) == 10


def test_bad_files_are_reported_and_good_ones_still_predicted(export_dir, mnist_test, tmp_path):
    x_test, y_test = mnist_test
    good = mnist_png_dir(tmp_path / "good", x_test[:3])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good[0].read_bytes()[:60])
    args = [
        "predict",
        *map(str, good),
        str(tmp_path / "empty.png"),
        str(tmp_path / "text.png"),
        str(truncated),
        str(tmp_path / "missing.png"),
        "--model",
        str(export_dir / "digit_mlp_int8.onnx"),
    ]
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 4 and all(line.startswith("digitkit: error: ") for line in errors)
    for name in ("empty.png", "text.png", "truncated.png", "missing.png"):
        assert any(name in line for line in errors), name
    lines = result.stdout.strip().splitlines()[1:]  # after "Model: PATH (format mode) on BACKEND"
    assert [int(line.split("digit ")[1].split()[0]) for line in lines] == y_test[:3].tolist()


def test_default_model_is_the_int8_tflite_of_the_last_export(export_dir, mnist_test, tmp_path, monkeypatch):
    import shutil

    from digitkit.toolkit.cli.predict import default_model

    workspace = tmp_path / "work"
    shutil.copytree(export_dir, workspace / "runs" / "export")
    assert default_model(workspace / "runs" / "export").name == "digit_mlp_int8_pixels.tflite"
    png = mnist_png_dir(tmp_path / "one", mnist_test[0][:1])[0]
    monkeypatch.chdir(workspace)
    result = runner.invoke(app, ["predict", str(png)])
    assert result.exit_code == 0 and f"digit {mnist_test[1][0]}" in result.output
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["predict", str(png)])
    assert result.exit_code == 2 and "Run `digitkit export --int8` or pass --model" in result.output
