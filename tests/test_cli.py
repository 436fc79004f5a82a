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
    result = subprocess.run(
        [sys.executable, "-m", "digitkit.toolkit", "--help"], capture_output=True, text=True
    )
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


def test_debug_works_before_or_after_the_command(tmp_path):
    missing = str(tmp_path / "missing.tflite")
    for args in (["--debug", "info", missing], ["info", missing, "--debug"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" in result.output and "ArtifactError" in result.output
        assert (
            result.output.strip().splitlines()[-1]
            == f"digitkit: error: {missing} does not exist. Pass the path of a .tflite or .onnx artifact"
        )
    plain = runner.invoke(app, ["info", missing])
    assert (
        plain.exit_code == 2
        and "Traceback" not in plain.output
        and len(plain.output.strip().splitlines()) == 1
    )


def test_typed_errors_map_to_exit_codes_in_one_place():
    from digitkit.runtime.errors import ArtifactError, ExportError, GateError, InputError
    from digitkit.toolkit.cli.common import exit_code_for

    assert exit_code_for(InputError("bad", "fix"), debug=False) == 2
    assert exit_code_for(ArtifactError("bad"), debug=False) == 2
    assert exit_code_for(ExportError("converter failed"), debug=False) == 1
    assert exit_code_for(GateError("gate failed"), debug=False) == 1
    assert exit_code_for(KeyboardInterrupt(), debug=False) == 130
    assert exit_code_for(RuntimeError("a bug"), debug=False) == 2
