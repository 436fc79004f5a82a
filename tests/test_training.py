"""Training: the seed recipe's accuracy, determinism across processes, and bad input."""

from __future__ import annotations

import json
import zipfile

import pytest
from helpers import run_cli
from typer.testing import CliRunner

from digitkit.toolkit.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_seed_recipe_reaches_the_target_and_records_everything(seed_model_dir):
    record = json.loads((seed_model_dir / "training.json").read_text())
    assert record["config"]["epochs"] == 4 and record["config"]["batch_size"] == 128
    assert record["config"]["optimizer"] == "rmsprop"
    assert record["test_accuracy"] >= 0.975
    assert len(record["epochs"]) == 4
    assert record["epochs"][0]["val_accuracy"] > 0.90  # one epoch already clears 0.90
    assert set(record["data_sha256"]) == {
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    }
    assert {"tensorflow", "keras", "numpy", "python"} <= set(record["versions"])
    assert record["train_seconds"] > 0


@pytest.mark.slow
def test_same_seed_gives_bit_identical_weights_across_processes(tmp_path):
    weights = []
    for run in ("a", "b"):
        result = run_cli("train", "--seed", "7", "--epochs", "1", "--out", tmp_path / run)
        assert result.returncode == 0, result.stderr
        with zipfile.ZipFile(tmp_path / run / "model.keras") as archive:
            weights.append(archive.read("model.weights.h5"))
    assert weights[0] == weights[1]
    other = run_cli("train", "--seed", "8", "--epochs", "1", "--out", tmp_path / "c")
    assert other.returncode == 0, other.stderr
    with zipfile.ZipFile(tmp_path / "c" / "model.keras") as archive:
        assert archive.read("model.weights.h5") != weights[0]


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--epochs", "0"], "--epochs must be at least 1"),
        (["--batch-size", "-1"], "--batch-size must be at least 1"),
        (["--data-dir", "/nonexistent/mnist"], "does not exist"),
    ],
)
def test_bad_train_input_is_one_line_exit_2(tmp_path, args, fragment):
    result = runner.invoke(app, ["train", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out" / "model.keras").exists()


def test_unwritable_output_is_one_line_exit_2(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = runner.invoke(app, ["train", "--epochs", "1", "--out", str(blocker / "out")])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1 and "Pass a writable --out" in result.output
