"""The command line as a whole: fast help, no TensorFlow where none is needed, one-line errors."""
from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from digitkit.toolkit.cli import app

runner = CliRunner()
HEAVY = ("tensorflow", "keras", "onnx", "tf2onnx")


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "export", "info", "verify", "predict", "bench", "bundle"):
        assert command in result.output


def test_help_imports_no_heavy_library_in_a_fresh_interpreter():
    code = (
        "import sys; from typer.testing import CliRunner; from digitkit.toolkit.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "digitkit.toolkit", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "verify" in result.stdout


def test_unknown_export_format_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["export", "--format", "coreml", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "Unknown format 'coreml'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_mode_a_format_lacks_is_one_line_exit_2(tmp_path):
    result = runner.invoke(app, ["export", "--format", "onnx", "--float16", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--float16 is not available for onnx" in result.output


def test_version_constant_matches_the_distribution():
    from pathlib import Path

    import pytest

    tomllib = pytest.importorskip("tomllib")

    from digitkit.runtime.version import __version__

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert __version__ == pyproject["project"]["version"]
