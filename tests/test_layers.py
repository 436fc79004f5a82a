"""The layers hold by themselves: toolkit > export > runtime, nothing heavy in the runtime, and device
commands that never import the export layer; import-linter enforces it and fails on a violation."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEVICE_COMMANDS = ("predict", "verify", "info", "bench", "serve")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_a_device_command_module_leaves_the_export_layer_unimported(command):
    code = (
        f"import sys, digitkit.toolkit.cli.{command}; "
        "print(sorted(m for m in sys.modules if m.startswith('digitkit.export') or m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'onnx')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_running_a_device_command_imports_no_export_layer(tmp_path):
    """The whole app, as `digitkit info` runs it, not only the module."""
    code = (
        "import sys; from typer.testing import CliRunner; from digitkit.toolkit.cli import app; "
        f"r = CliRunner().invoke(app, ['info', {str(tmp_path / 'missing.tflite')!r}]); assert r.exit_code == 2, r.output; "
        "print(sorted(m for m in sys.modules if m.startswith('digitkit.export')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )


@pytest.fixture
def source_copy(tmp_path) -> Path:
    """The package laid out as it installs (digitkit/__init__.py and the three layers), copied so a
    copy can be broken."""
    for layer in ("runtime", "export", "toolkit"):
        shutil.copytree(
            ROOT / layer, tmp_path / "digitkit" / layer, ignore=shutil.ignore_patterns("__pycache__")
        )
    for module in (ROOT / "toolkit" / "namespace").glob("*.py"):
        shutil.copy(module, tmp_path / "digitkit" / module.name)
    return tmp_path


def test_plain_lint_imports_keeps_every_contract_on_the_installed_package():
    """As a contributor runs it: `lint-imports` in the repository, on the editable install."""
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "4 kept, 0 broken" in result.stdout


def test_the_contracts_hold_on_the_source(source_copy):
    result = lint_imports(source_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        (
            "runtime/model.py",
            "import tensorflow",
            "The runtime never imports TensorFlow, Keras, ONNX or tf2onnx BROKEN",
        ),
        (
            "runtime/hashing.py",
            "from digitkit.toolkit import data",
            "Layers: toolkit > export > runtime BROKEN",
        ),
        (
            "toolkit/cli/predict.py",
            "from digitkit.export import formats",
            "Device commands never import the export layer BROKEN",
        ),
        (
            "toolkit/serve/app.py",
            "from digitkit.export import formats",
            "Device commands never import the export layer BROKEN",
        ),
        (
            "runtime/images.py",
            "import starlette",
            "The runtime stays free of the web framework",
        ),
    ],
)
def test_a_deliberate_violation_breaks_its_contract(source_copy, module, line, contract):
    path = source_copy / "digitkit" / module
    path.write_text(path.read_text() + f"\n\ndef _violation() -> None:\n    {line}  # noqa\n")
    result = lint_imports(source_copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert contract in result.stdout
