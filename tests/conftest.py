"""Shared fixtures: real MNIST, the seed model trained once per run, and every export mode of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


_FIGURES: list[str] = []
_SKIPS: list[str] = []
# Set by .ci/run: CI runs as root with every package installable, so a skipped test (an emulated device,
# the browser, a C compiler, Cortex-M, a missing package) means something the README claims went
# unproven. Under it a skip is reported as a failure, with its reason.
REQUIRE_EMULATION = os.environ.get("DIGITKIT_REQUIRE_EMULATION") == "1"


@pytest.fixture(scope="session")
def figures() -> list[str]:
    """Lines a test wants in CI's log whatever the outcome: printed after the run's summary."""
    return _FIGURES


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = _skip_reason(report)
        _SKIPS.append(f"{item.nodeid}: {reason}")
        if REQUIRE_EMULATION:
            report.outcome = "failed"
            report.longrepr = (
                f"skipped under DIGITKIT_REQUIRE_EMULATION=1 (CI must run every test): {reason}\n"
                "Fix what the reason names (root, binfmt_misc, the Debian mirror, a package), or run "
                "without DIGITKIT_REQUIRE_EMULATION outside CI"
            )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped (``importorskip`` at the top): the same rule as a skipped test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        reason = _skip_reason(report)
        _SKIPS.append(f"{collector.nodeid}: {reason}")
        if REQUIRE_EMULATION:
            report.outcome = "failed"
            report.longrepr = f"module skipped under DIGITKIT_REQUIRE_EMULATION=1: {reason}"


def pytest_terminal_summary(terminalreporter):
    if _FIGURES or _SKIPS:
        terminalreporter.section("digitkit figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)
        verdict = "each one a failure" if REQUIRE_EMULATION else "DIGITKIT_REQUIRE_EMULATION unset"
        terminalreporter.write_line(f"skipped: {len(_SKIPS)} ({verdict})")
        for line in _SKIPS:
            terminalreporter.write_line(f"  {line}")


@pytest.fixture(autouse=True)
def _unexpected_errors_fail_the_test(monkeypatch):
    """In-process CLI runs (CliRunner) too: an exception turned into "unexpected; report it" is a bug,
    whatever exit code the test expected."""
    from digitkit.toolkit.cli import common

    unexpected: list[str] = []
    original = common.exit_code_for

    def recording(exc: BaseException, debug: bool) -> int:
        if not isinstance(exc, (common.DigitkitError, KeyboardInterrupt, MemoryError)):
            unexpected.append(f"{type(exc).__name__}: {exc}")
        return original(exc, debug)

    monkeypatch.setattr(common, "exit_code_for", recording)
    yield
    assert not unexpected, f"the CLI met an unexpected error (a bug): {unexpected}"


@pytest.fixture(scope="session")
def mnist():
    from digitkit.toolkit.data import load_mnist

    return load_mnist()


@pytest.fixture(scope="session")
def mnist_test(mnist):
    return mnist[1]


# While developing one test, a finished training run or export may stand in for the session's
# (copied, so tests never change the original): DIGITKIT_TEST_TRAIN_DIR, DIGITKIT_TEST_EXPORT_DIR.
# CI sets neither, and trains and exports from scratch.
def _prebuilt(variable: str, tmp_path_factory) -> Path | None:
    import shutil

    source = os.environ.get(variable)
    if not source:
        return None
    copy = tmp_path_factory.mktemp(variable.lower()) / "copy"
    shutil.copytree(source, copy)
    return copy


@pytest.fixture(scope="session")
def seed_model_dir(tmp_path_factory) -> Path:
    """The seed recipe, exactly (4 epochs, batch 128, seed 0), trained once per test run."""
    from digitkit.toolkit.training import TrainConfig, train

    prebuilt = _prebuilt("DIGITKIT_TEST_TRAIN_DIR", tmp_path_factory)
    if prebuilt is not None:
        return prebuilt
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

    prebuilt = _prebuilt("DIGITKIT_TEST_EXPORT_DIR", tmp_path_factory)
    if prebuilt is not None:
        return prebuilt
    (x_train, _), (x_test, y_test) = mnist
    out = tmp_path_factory.mktemp("export")
    model = seed_model_dir / "model.keras"
    calibration = CalibrationSet.from_training_set(x_train, 500, 0)
    run_export(
        ExportRequest(model, out, TARGETS, calibration, x_test, y_test, data_checksums(), read_record(model))
    )
    return out


CNN_TRAIN_SUBSET = 20_000  # 1 augmented epoch on these reaches about 0.96-0.97: above verify's 0.95 gate


@pytest.fixture(scope="session")
def cnn_model_dir(tmp_path_factory) -> Path:
    """A short augmented cnn run (1 epoch on 20,000 training images), once per session, shared by the
    recipe and C export tests (stand-in while developing: DIGITKIT_TEST_CNN_TRAIN_DIR)."""
    from digitkit.toolkit.training import recipe_defaults, train

    prebuilt = _prebuilt("DIGITKIT_TEST_CNN_TRAIN_DIR", tmp_path_factory)
    if prebuilt is not None:
        return prebuilt
    out = tmp_path_factory.mktemp("cnn-model")
    train(recipe_defaults("cnn", epochs=1, batch_size=64, augment=True, train_subset=CNN_TRAIN_SUBSET), out)
    return out


@pytest.fixture(scope="session")
def cnn_export_dir(cnn_model_dir, mnist, tmp_path_factory) -> Path:
    """Every target of the export table for the short cnn run: TFLite, ONNX and the C."""
    from digitkit.export.calibration import CalibrationSet
    from digitkit.export.formats import TARGETS
    from digitkit.export.pipeline import ExportRequest, run_export
    from digitkit.toolkit.data import data_checksums
    from digitkit.toolkit.training import read_record

    (x_train, _), (x_test, y_test) = mnist
    out = tmp_path_factory.mktemp("cnn-export")
    model = cnn_model_dir / "model.keras"
    calibration = CalibrationSet.from_training_set(x_train, 500, 0)
    run_export(
        ExportRequest(model, out, TARGETS, calibration, x_test, y_test, data_checksums(), read_record(model))
    )
    return out


from helpers import mnist_png_dir, run_cli  # noqa: E402,F401  (re-exported for tests)
