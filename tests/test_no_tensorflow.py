"""The README's "needs TensorFlow: no" column, run for real: every such command works with TensorFlow,
Keras, tf2onnx and ONNX made unimportable (a directory on PYTHONPATH whose packages of those names
raise ImportError), as on a device that never installed them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, mnist_png_dir, run_cli
from test_serve import Server

BLOCKED = ("tensorflow", "keras", "tf2onnx", "onnx")


@pytest.fixture(scope="module")
def no_tensorflow(tmp_path_factory) -> dict[str, str]:
    """The environment: each blocked name a package that refuses to import."""
    blocker = tmp_path_factory.mktemp("blocked")
    for name in BLOCKED:
        (blocker / name).mkdir()
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed here')\n")
    paths = [str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def readme_commands_without_tensorflow() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text[text.index("| command | what it does | needs TensorFlow |") :].split("\n\n")[0]
    return {
        row.split("`digitkit ", 1)[1].split()[0].rstrip("`")
        for row in table.splitlines()[2:]
        if row.rstrip().endswith("| no |")
    }


def test_the_blocker_blocks(no_tensorflow):
    done = subprocess.run(
        [sys.executable, "-c", "import tensorflow"],
        capture_output=True,
        text=True,
        env={**os.environ, **no_tensorflow},
    )
    assert done.returncode == 1 and "tensorflow is not installed here" in done.stderr


def test_every_command_the_readme_says_needs_no_tensorflow_runs_without_it(
    no_tensorflow, export_dir, mnist_test, tmp_path
):
    commands = readme_commands_without_tensorflow()
    assert commands == {"verify", "predict", "info", "bench", "serve", "bundle", "doctor"}, commands
    int8 = export_dir / "digit_mlp_int8.tflite"
    images = mnist_png_dir(tmp_path / "digits", mnist_test[0][:3])
    runs = {
        "verify": ["verify", export_dir, "--artifact", int8.name, "--backend", "numpy", "--json", "-"],
        "predict": ["predict", *images, "--model", int8],
        "info": ["info", int8],
        "bench": ["bench", "--model", int8, "--backend", "numpy", "--seconds", "0.05", "--batch-sizes", "1"],
        "bundle": ["bundle", export_dir, "--out", tmp_path / "bundle", "--artifact", int8.name],
        "doctor": ["doctor", "--json"],
    }
    for command, args in runs.items():
        done = run_cli(*args, env=no_tensorflow)
        assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stderr[-2000:]}"
    assert json.loads(run_cli(*runs["verify"], env=no_tensorflow).stdout)["passed"]
    server = Server(int8, tmp_path / "serve", env=no_tensorflow)
    try:
        status, _, body = server.request("GET", "/healthz")
        assert status == 200 and body == {"status": "ok"}
    finally:
        server.stop()
    assert set(runs) | {"serve"} == commands
    assert Path(tmp_path / "bundle").is_dir()


def test_train_and_export_need_tensorflow_and_say_so_in_one_line(no_tensorflow, seed_model_dir, tmp_path):
    """README: train and export need TensorFlow: without it, one line naming the extra, exit 2."""
    for args in (
        ["train", "--epochs", "1", "--out", tmp_path / "train"],
        ["export", "--model", seed_model_dir, "--out", tmp_path / "export", "--int8"],
    ):
        done = run_cli(*args, env=no_tensorflow)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (args[0], done.returncode, done.stderr)
        assert "needs TensorFlow" in lines[0] and "digitkit[train]" in lines[0], lines
        assert not list((tmp_path / args[0]).glob("*")), "nothing written"
