"""The recipes through every stage: a short augmented CNN run (1 epoch on 20,000 training images, once
per session) exported in every mode, through verify's gates, predict and info; the numpy backend's
CONV_2D and MAX_POOL_2D against LiteRT (int8 bit for bit on all 10,000 test images) and TFLite Micro
(the CNN's C export: tests/test_c_export_cnn.py); augmentation and the out-of-distribution set deterministic."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import mnist_png_dir

from digitkit.runtime import load

pytestmark = pytest.mark.slow


def tflite(export_dir: Path, mode: str) -> Path:
    return export_dir / f"digit_mlp_{mode}.tflite"


def raw_outputs(model, images: np.ndarray, batch: int = 1000) -> np.ndarray:
    return np.concatenate(
        [model._run_batch(images[i : i + batch]).copy() for i in range(0, len(images), batch)]
    )


@pytest.fixture(scope="module")
def test_pixels(mnist_test) -> np.ndarray:
    return np.ascontiguousarray(mnist_test[0].reshape(-1, 784))


def test_the_cnn_run_records_its_recipe_augmentation_and_ood_accuracy(cnn_model_dir):
    record = json.loads((cnn_model_dir / "training.json").read_text())
    assert record["recipe"] == "cnn" and record["config"]["filters"] == [32, 64]
    assert record["augment"]["rotation_degrees"] > 0 and record["augment"]["elastic_probability"] > 0
    assert record["parameters"] == 225_034  # about a third of the MLP's 669,706
    assert 0.0 < record["ood_accuracy"] < record["test_accuracy"]


def test_every_mode_of_the_cnn_passes_verify_and_reports_ood(cnn_export_dir, mnist_test, figures):
    from digitkit.runtime.manifest import read_manifest
    from digitkit.toolkit.verification import Gates, verify_manifest

    manifest = read_manifest(cnn_export_dir)
    assert {e.mode for e in manifest.artifacts} == {
        "fp32",
        "fp16",
        "dynamic",
        "int8",
        "int8-pixels",
        "int8-c",
    }
    assert manifest.source_model.training is not None and manifest.source_model.training.recipe == "cnn"
    results = verify_manifest(manifest, *mnist_test, Gates(), backends=["litert", "onnxruntime"])
    assert len(results) == 8
    for r in results:
        figures.append(
            f"short cnn run, {r.file} on {r.backend}: accuracy {r.accuracy:.4f}, ood {r.ood_accuracy:.4f}"
        )
        assert r.passed, (r.file, r.backend, r.failures)
        assert 0.3 < r.ood_accuracy < r.accuracy


@pytest.mark.parametrize("mode", ["int8", "int8_pixels"])
def test_numpy_cnn_int8_is_bit_identical_to_litert(cnn_export_dir, test_pixels, mode):
    expected = raw_outputs(load(tflite(cnn_export_dir, mode), backend="litert"), test_pixels)
    ours = raw_outputs(load(tflite(cnn_export_dir, mode), backend="numpy"), test_pixels)
    assert ours.dtype == expected.dtype
    assert np.array_equal(ours, expected), f"{int((ours != expected).any(axis=1).sum())} images differ"


def test_numpy_cnn_float_and_dynamic_models_agree_with_litert(cnn_export_dir, test_pixels):
    images = test_pixels[:1000]
    for mode in ("fp32", "fp16", "dynamic"):
        expected = raw_outputs(load(tflite(cnn_export_dir, mode), backend="litert"), images)
        ours = raw_outputs(load(tflite(cnn_export_dir, mode), backend="numpy"), images)
        if mode == "dynamic":  # hybrid conv and dense: the same top-1, probabilities close
            assert (ours.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 0.999
            assert np.abs(ours - expected).max() < 0.02
        else:
            assert np.abs(ours - expected).max() <= 1e-5
            assert np.array_equal(ours.argmax(axis=1), expected.argmax(axis=1))


def test_numpy_micro_cnn_is_bit_identical_to_tflite_micro(cnn_export_dir, test_pixels):
    runtime = pytest.importorskip("tflite_micro").runtime
    images = test_pixels[:200]  # batch 1 in TFLite Micro: a few ms an image for the CNN
    interpreter = runtime.Interpreter.from_bytes(
        tflite(cnn_export_dir, "int8").read_bytes(), arena_size=200_000
    )
    expected = []
    for row in (images ^ 0x80).view(np.int8):
        interpreter.set_input(row[None, :], 0)
        interpreter.invoke()
        expected.append(np.array(interpreter.get_output(0)))
    ours = raw_outputs(load(tflite(cnn_export_dir, "int8"), backend="numpy-micro"), images)
    assert np.array_equal(ours, np.concatenate(expected))


def test_predict_and_info_on_the_cnn(cnn_export_dir, mnist_test, tmp_path):
    from typer.testing import CliRunner

    from digitkit.toolkit.cli import app

    images, labels = mnist_test
    paths = mnist_png_dir(tmp_path / "png", images[:3])
    runner = CliRunner()
    model = tflite(cnn_export_dir, "int8_pixels")
    for backend in ("litert", "numpy"):
        result = runner.invoke(
            app, ["predict", *map(str, paths), "--model", str(model), "--backend", backend]
        )
        assert result.exit_code == 0, result.output
        digits = [int(d) for d in re.findall(r"digit (\d)", result.output)]
        assert digits == list(labels[:3]), result.output
    described = runner.invoke(app, ["info", str(model)])
    assert described.exit_code == 0 and "recipe:        cnn, augmented" in described.output, described.output


def test_augmentation_is_deterministic_per_seed_and_epoch(mnist):
    from digitkit.toolkit.augment import AugmentConfig, epoch_images

    images = mnist[0][0][:500]
    first = epoch_images(images, 0, 0, AugmentConfig())
    assert first.shape == (500, 784) and first.dtype == np.float32
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert np.array_equal(first, epoch_images(images, 0, 0, AugmentConfig()))
    for other in (epoch_images(images, 0, 1, AugmentConfig()), epoch_images(images, 1, 0, AugmentConfig())):
        assert not np.array_equal(first, other)
    still = AugmentConfig(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 4)  # every range zero: the images unchanged
    assert np.abs(epoch_images(images, 0, 0, still) - images.reshape(500, 784) / 255.0).max() < 1e-6


def test_the_ood_set_is_deterministic_and_harder(mnist_test):
    from digitkit.toolkit.ood import CONDITIONS, ood_set

    images, labels = mnist_test
    first, first_labels = ood_set(images, labels)
    again, _ = ood_set(images, labels)
    assert first.dtype == np.uint8 and first.shape == (3500, 28, 28) and len(CONDITIONS) == 7
    assert np.array_equal(first, again) and np.array_equal(first_labels, labels[:3500])
    assert not np.array_equal(first, images[:3500])


def test_the_mlp_recipe_is_the_seed_recipe():
    from digitkit.toolkit.training import TrainConfig, recipe_defaults

    assert recipe_defaults() == TrainConfig()
    assert recipe_defaults("mlp", augment=True).augment is not None
    assert (
        recipe_defaults("cnn").augment is not None and recipe_defaults("cnn", augment=False).augment is None
    )


def test_an_unknown_recipe_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from digitkit.toolkit.cli import app

    result = CliRunner().invoke(app, ["train", "--recipe", "rnn", "--out", str(tmp_path / "t")])
    assert result.exit_code == 2 and "--recipe 'rnn' is not a recipe" in result.output, result.output
    assert not (tmp_path / "t").exists()


def test_the_augmented_mlp_through_the_cli(tmp_path):
    """train --recipe mlp --augment (1 epoch), export --int8 (TFLite), verify and info, as a user runs them."""
    from typer.testing import CliRunner

    from digitkit.toolkit.cli import app

    runner = CliRunner()
    train_dir, export_dir = tmp_path / "train", tmp_path / "export"
    trained = runner.invoke(
        app, ["train", "--recipe", "mlp", "--augment", "--epochs", "1", "--out", str(train_dir)]
    )
    assert trained.exit_code == 0 and "Trained mlp (augmented) 1 epoch in" in trained.output, trained.output
    record = json.loads((train_dir / "training.json").read_text())
    assert record["recipe"] == "mlp" and record["augment"] is not None and record["parameters"] == 669_706
    exported = runner.invoke(
        app,
        ["export", "--model", str(train_dir / "model.keras"), "--out", str(export_dir), "--int8"]
        + ["--format", "tflite"],
    )
    assert exported.exit_code == 0, exported.output
    verified = runner.invoke(
        app, ["verify", str(export_dir), "--backend", "litert", "--artifact", "digit_mlp_int8.tflite"]
    )
    assert verified.exit_code == 0 and "PASS: 1 of 1" in verified.output, verified.output
    described = runner.invoke(app, ["info", str(export_dir / "digit_mlp_int8.tflite")])
    assert "recipe:        mlp, augmented" in described.output, described.output
