"""`make demo` and the examples, run as the README gives them: the commands come from the Makefile
itself (`make -n`), so a changed recipe is what runs here. Only the training step is swapped for the
session's seed model (trained by the same command's code, with the same defaults; its determinism and
recipe are tests/test_training.py's), to keep CI's time."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, assert_no_unexpected_error

pytestmark = pytest.mark.slow
VENV = Path(sys.executable).parent.parent


def demo_commands(runs: Path) -> list[list[str]]:
    stamp = VENV / ".installed"
    listed = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo", "-o", str(stamp), f"RUNS={runs}", f"VENV={VENV}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    return [shlex.split(line) for line in listed.splitlines() if line.strip()]


def verify_rows(text: str) -> set[tuple[str, str, str]]:
    """(verdict, artifact, backend) of each row of a verify table."""
    return {tuple(line.split()[:3]) for line in text.splitlines() if line.split()[:1] in (["PASS"], ["FAIL"])}


def test_make_demo_runs_end_to_end(seed_model_dir, mnist_test, tmp_path):
    runs = tmp_path / "runs"
    commands = demo_commands(runs)
    steps = [c[1] if c[0].endswith("digitkit") else Path(c[1]).name for c in commands]
    assert steps == ["train", "export", "make_sample_digit.py", "predict", "verify"], commands
    shutil.copytree(seed_model_dir, runs / "train")  # the train step, as its output
    outputs = {}
    for command, step in zip(commands[1:], steps[1:]):
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
        assert_no_unexpected_error(done.stderr, step)
        assert done.returncode == 0, (
            f"{step}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
        outputs[step] = done.stdout
    # export's closing summary: a table row per artifact, then the next commands (README: "ends with a
    # table (size, size vs fp32, accuracy) and the next commands")
    export = outputs["export"].splitlines()
    rows = {
        cells[2]: cells
        for cells in map(str.split, export)
        if len(cells) > 2 and cells[2].endswith((".tflite", ".onnx", ".c")) and "/" not in cells[2]
    }
    manifest = json.loads((runs / "export" / "manifest.json").read_text())
    assert set(rows) == {a["file"] for a in manifest["artifacts"]}, export
    for name, row in rows.items():
        fmt, mode, _, _size, _unit, ratio, accuracy = row[:7]
        assert (fmt, mode) in {(a["format"], a["mode"]) for a in manifest["artifacts"] if a["file"] == name}
        if mode == "fp32":
            assert ratio == "1.00x"
        if mode.startswith("int8"):
            assert float(ratio.rstrip("x")) < 0.3, row
        assert float(accuracy) >= 0.95, row
    nexts = export[export.index("Next:") + 1 :]
    assert [line.split()[:2] for line in nexts] == [
        ["digitkit", "verify"],
        ["digitkit", "info"],
        ["digitkit", "predict"],
    ]
    for line in nexts:  # each next command runs as printed (the image placeholder filled in)
        command = [str(VENV / "bin" / "digitkit"), *line.split()[1:]]
        command = [str(runs / "sample-digit.png") if a == "IMAGE.png" else a for a in command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
        assert done.returncode == 0, f"{line}: {done.stderr[-2000:]}"
    # the sample is MNIST test image 0 (a 7), photographed: predict must read it as a 7
    label = int(mnist_test[1][0])
    header, row = outputs["predict"].strip().splitlines()  # "Model: ... on BACKEND", then the image's line
    assert header.startswith("Model: ") and "digit_mlp_int8.tflite" in header, outputs["predict"]
    assert row.split()[:3] == [str(runs / "sample-digit.png"), "digit", str(label)], outputs["predict"]
    summary = json.loads((runs / "verify.json").read_text())
    assert summary["passed"] and len(summary["results"]) >= 6
    # The README's sample verify table has the rows make demo prints: the same artifact/backend pairs,
    # each PASS, and the same closing count (the figures are that machine's: accuracy differs by CPU).
    printed = verify_rows(outputs["verify"])
    shown = verify_rows((ROOT / "README.md").read_text().split("## Commands")[0])
    assert shown == printed, f"README's table: {sorted(shown)}\nmake demo's: {sorted(printed)}"
    count = f"PASS: {len(printed)} of {len(printed)} artifact/backend pairs pass."
    assert count in outputs["verify"] and count in (ROOT / "README.md").read_text()
    assert (runs / "report" / "index.html").is_file()


def test_runtime_api_example(export_dir):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "runtime_api.py"),
            str(export_dir / "digit_mlp_int8.tflite"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "DigitModel('digit_mlp_int8.tflite', format='tflite', mode='int8', backend='litert')"
    assert lines[1].startswith("digits: [1 "), lines  # the example's crude "1"
    assert lines[2].startswith("probabilities: [[") and len(lines[2].split()) >= 10
