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
def test_the_saved_model_is_the_readme_recipe(seed_model_dir):
    """The model itself, not the config it recorded: 784 → Dense 512 relu → Dropout 0.2 → Dense 512
    relu → Dropout 0.2 → Dense 10 softmax, compiled with RMSprop and categorical cross-entropy."""
    import keras

    model = keras.models.load_model(seed_model_dir / "model.keras")
    assert tuple(model.input_shape) == (None, 784) and tuple(model.output_shape) == (None, 10)
    layers = [
        (type(layer).__name__, getattr(layer, "units", None), getattr(layer, "rate", None))
        for layer in model.layers
    ]
    assert layers == [
        ("Dense", 512, None),
        ("Dropout", None, 0.2),
        ("Dense", 512, None),
        ("Dropout", None, 0.2),
        ("Dense", 10, None),
    ], layers
    activations = [layer.activation.__name__ for layer in model.layers if hasattr(layer, "units")]
    assert activations == ["relu", "relu", "softmax"]
    assert [w.shape for w in model.get_weights()] == [
        (784, 512),
        (512,),
        (512, 512),
        (512,),
        (512, 10),
        (10,),
    ]
    assert type(model.optimizer).__name__ == "RMSprop"
    assert model.loss in ("categorical_crossentropy", keras.losses.categorical_crossentropy) or (
        type(model.loss).__name__ == "CategoricalCrossentropy"
    ), model.loss
    assert int(model.optimizer.iterations.numpy()) == 4 * -(-60_000 // 128)  # 4 epochs of batch 128


def weights_of(run_dir) -> bytes:
    with zipfile.ZipFile(run_dir / "model.keras") as archive:
        return archive.read("model.weights.h5")


@pytest.mark.slow
def test_same_seed_gives_bit_identical_weights_across_processes(tmp_path):
    """Two seeds, two epoch counts: each run twice, in fresh processes, gives the same bytes."""
    weights = {}
    for seed, epochs in (("7", "1"), ("8", "2")):
        for run in ("a", "b"):
            out = tmp_path / f"seed{seed}-epochs{epochs}-{run}"
            result = run_cli("train", "--seed", seed, "--epochs", epochs, "--out", out)
            assert result.returncode == 0, result.stderr
            weights[seed, epochs, run] = weights_of(out)
        assert weights[seed, epochs, "a"] == weights[seed, epochs, "b"], (seed, epochs)
    assert weights["7", "1", "a"] != weights["8", "2", "a"]


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
