"""Shared fixtures: real MNIST, the seed model trained once per run, and every export mode of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


_FIGURES: list[str] = []


@pytest.fixture(scope="session")
def figures() -> list[str]:
    """Lines a test wants in CI's log whatever the outcome: printed after the run's summary."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("digitkit figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def mnist():
    from digitkit.toolkit.data import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def mnist_test(mnist):
    return mnist[1]


@pytest.fixture(scope="session")
def seed_model_dir(tmp_path_factory) -> Path:
    """The seed recipe, exactly (4 epochs, batch 128, seed 0), trained once per test run."""
    from digitkit.toolkit.training import TrainConfig, train

    out = tmp_path_factory.mktemp("seed-model")
    train(TrainConfig(), out)
    return out


@pytest.fixture(scope="session")
def export_dir(seed_model_dir, mnist, tmp_path_factory) -> Path:
    """Every target of the export table (fp32, fp16, dynamic, int8; TFLite and ONNX) with its manifest."""
    from digitkit.export.calibration import CalibrationSet
    from digitkit.export.formats import TARGETS
    from digitkit.export.pipeline import ExportRequest, run_export
    from digitkit.toolkit.data import data_checksums
    from digitkit.toolkit.training import read_record

    (x_train, _), (x_test, y_test) = mnist
    out = tmp_path_factory.mktemp("export")
    model = seed_model_dir / "model.keras"
    calibration = CalibrationSet.from_training_set(x_train, 500, 0)
    run_export(
        ExportRequest(model, out, TARGETS, calibration, x_test, y_test, data_checksums(), read_record(model))
    )
    return out


from helpers import mnist_png_dir, run_cli  # noqa: E402,F401  (re-exported for tests)
