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


def test_typed_errors_map_to_exit_codes_in_one_place(monkeypatch):
    monkeypatch.undo()  # the mapping itself, unrecorded: conftest's recorder would count "a bug" as one
    from digitkit.runtime.errors import ArtifactError, ExportError, GateError, InputError
    from digitkit.toolkit.cli.common import exit_code_for

    assert exit_code_for(InputError("bad", "fix"), debug=False) == 2
    assert exit_code_for(ArtifactError("bad"), debug=False) == 2
    assert exit_code_for(ExportError("converter failed"), debug=False) == 1
    assert exit_code_for(GateError("gate failed"), debug=False) == 1
    assert exit_code_for(KeyboardInterrupt(), debug=False) == 130
    assert exit_code_for(RuntimeError("a bug"), debug=False) == 2


TRAIN_ON_A_TERMINAL = """
import json, sys, zipfile
from pathlib import Path
from digitkit.toolkit.cli.progress import EpochBar
from digitkit.toolkit.training import TrainConfig, train

out = Path(sys.argv[1])
config = TrainConfig(epochs=2, seed=5, train_subset=6400)  # the seed recipe, 50 batches an epoch
reported = []
with EpochBar(config.epochs) as bar:  # as `digitkit train` runs it on a terminal
    def on_batch(done, per_epoch):
        reported.append((done, per_epoch))
        bar.batch(done, per_epoch)
    train(config, out / "with-bar", on_epoch=bar.update, on_batch=on_batch if bar.live else None)
train(config, out / "without")


def weights(run):  # every array in the file, optimizer state too (the file's bytes differ within a process)
    import io, h5py, numpy as np
    found = {}
    with h5py.File(io.BytesIO(zipfile.ZipFile(out / run / "model.keras").read("model.weights.h5")), "r") as f:
        f.visititems(lambda name, o: found.update({name: np.array(o)}) if isinstance(o, h5py.Dataset) else None)
    return found


a, b = weights("with-bar"), weights("without")
same = len(a) > 10 and a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)
print(json.dumps({"live": bar.live, "reported": reported, "same_weights": same}))
"""


def test_training_progress_counts_batches_and_shows_tensorflow_loading_on_a_terminal(tmp_path):
    """stderr on a real terminal (a pty): the bar is live while TensorFlow loads and counts the batches
    of each epoch; the batch callback leaves the seed recipe's weights bit-identical."""
    import json
    import os
    import pty
    import re
    import threading

    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", TRAIN_ON_A_TERMINAL, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=terminal,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
    )
    os.close(terminal)
    shown = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the process closed its end
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    stdout, _ = process.communicate(timeout=600)
    reader.join(timeout=10)
    os.close(controller)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown.decode("utf-8", "replace"))
    assert process.returncode == 0, text[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["live"] and result["same_weights"]
    per_epoch = [done for done, total in result["reported"] if total == 50]
    assert len(per_epoch) == len(result["reported"]) == 100  # every batch of both epochs, once
    assert sorted(per_epoch) == sorted(list(range(1, 51)) * 2)
    assert text.count("loading MNIST and TensorFlow") >= 3, text[:2000]  # redrawn while it loads
    assert re.search(r"epoch [12]/2, batch \d+/50", text), text[-3000:]
    assert "2/2 epochs" in text and "val_acc" in text
