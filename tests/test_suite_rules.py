"""The suite's own rules, run on tiny throwaway test files through the real conftest: under CI's
DIGITKIT_REQUIRE_EMULATION=1 a skip is a failure, and the CLI's "unexpected; report it" fails a test
whatever exit code it expected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SKIPPING = """
import pytest

def test_device():
    pytest.skip("qemu-user-static is not installable here")

def test_fine():
    pass
"""

UNEXPECTED = """
from typer.testing import CliRunner
from digitkit.toolkit.cli import app

def test_a_bug_behind_exit_2(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("digitkit.toolkit.inspection.describe", broken)
    result = CliRunner().invoke(app, ["info", str(tmp_path / "model.tflite")])
    assert result.exit_code == 2  # what a test of bad input would expect: passes on its own
"""


def run_pytest(tmp_path: Path, source: str, require: bool) -> subprocess.CompletedProcess:
    (tmp_path / "test_throwaway.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "DIGITKIT_REQUIRE_EMULATION"}
    if require:
        env["DIGITKIT_REQUIRE_EMULATION"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_a_skip_is_a_failure_under_require_emulation(tmp_path):
    strict = run_pytest(tmp_path, SKIPPING, require=True)
    assert strict.returncode == 1, strict.stdout
    assert "1 failed, 1 passed" in strict.stdout, strict.stdout
    assert "skipped under DIGITKIT_REQUIRE_EMULATION=1" in strict.stdout
    assert "qemu-user-static is not installable here" in strict.stdout
    relaxed = run_pytest(tmp_path, SKIPPING, require=False)
    assert relaxed.returncode == 0 and "1 passed, 1 skipped" in relaxed.stdout, relaxed.stdout
    for run in (strict, relaxed):  # the skip list, in the figures section, either way
        figures = run.stdout.split("digitkit figures", 1)[1]
        assert "skipped: 1" in figures and "test_throwaway.py::test_device: qemu-user-static" in figures


def test_a_module_skip_is_a_failure_under_require_emulation(tmp_path):
    strict = run_pytest(tmp_path, 'import pytest\npytest.importorskip("no_such_module_here")\n', True)
    assert strict.returncode != 0 and "module skipped under DIGITKIT_REQUIRE_EMULATION=1" in strict.stdout


def test_an_unexpected_cli_error_fails_the_test_that_expected_exit_2(tmp_path):
    result = run_pytest(tmp_path, UNEXPECTED, require=False)
    assert result.returncode == 1, result.stdout
    assert "the CLI met an unexpected error (a bug)" in result.stdout
    assert "ZeroDivisionError: division by zero" in result.stdout
