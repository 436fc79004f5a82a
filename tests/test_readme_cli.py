"""The README's "Commands" claims, run as a user runs them: the defaults (`train`, `export` and `bundle`
with no paths, in a fresh working directory), what each command shows, the units of tables and JSON,
progress on a terminal and none off one, and a failed converter's error (docs/readme-claims.md)."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import pty
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import mnist_png_dir, run_cli

pytestmark = pytest.mark.slow  # trains (2 epochs) and exports once, as a user would

TRAIN_EPOCHS = 2  # two, so that "one line per epoch" is counted, not just seen


@pytest.fixture(scope="module")
def defaults_run(tmp_path_factory):
    """`train`, `export` and `bundle` without --out or a directory, one after the other in a fresh
    working directory (the README's first steps): train --json (stdout), export --json FILE (the table
    and the JSON), bundle --json (stdout). Off a terminal: run_cli's stderr is a pipe."""
    cwd = tmp_path_factory.mktemp("defaults")
    runs = {
        "train": run_cli("train", "--epochs", TRAIN_EPOCHS, "--json", cwd=cwd),
        "export": run_cli("export", "--int8", "--format", "tflite", "--json", "export.json", cwd=cwd),
        "bundle": run_cli("bundle", "--no-wheel", "--json", cwd=cwd),
    }
    for name, run in runs.items():
        assert run.returncode == 0, f"digitkit {name}: {run.stderr}"
    return cwd, runs


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def binary_size(size: int) -> str:
    """KiB below 1 MiB, MiB above, one decimal (the README's "tables show KiB/MiB")."""
    return f"{size / 1024:.1f} KiB" if size < 1024 * 1024 else f"{size / 1024**2:.1f} MiB"


def table_rows(stdout: str, first_cells: set[str], column: int) -> dict[str, list[str]]:
    """Rows of a printed table keyed by the cell at ``column``, for rows whose first cell is in
    ``first_cells``; cells are separated by two or more spaces."""
    rows = {}
    for line in stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells and cells[0] in first_cells:
            rows[cells[column]] = cells
    return rows


def test_train_defaults_seed_0_out_runs_train_one_line_per_epoch_and_json(defaults_run):
    """L43 `--seed 0 --out runs/train`; L60-61 off a terminal one line per epoch; L66 `train --json`."""
    cwd, runs = defaults_run
    train = runs["train"]
    record = json.loads(train.stdout)  # --json alone: the whole of stdout is the JSON, no table
    out = cwd / "runs" / "train"
    assert json.loads((out / "training.json").read_text()) == record
    assert record["model_sha256"] == sha256(out / "model.keras")
    assert record["config"]["seed"] == 0 and record["config"]["batch_size"] == 128
    assert (record["recipe"], record["augment"]) == ("mlp", None)
    assert [e["epoch"] for e in record["epochs"]] == list(range(1, TRAIN_EPOCHS + 1))
    epoch_lines = [line for line in train.stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epoch_lines] == [
        f"epoch {n}/{TRAIN_EPOCHS}" for n in range(1, TRAIN_EPOCHS + 1)
    ], train.stderr
    for line, epoch in zip(epoch_lines, record["epochs"]):
        assert f"val_acc {epoch['val_accuracy']:.4f}" in line
    assert train.stderr.splitlines() == epoch_lines, "off a terminal, train's stderr is its epoch lines"


def test_export_defaults_runs_export_calibration_500_seed_0_and_units(defaults_run, mnist):
    """L44 `runs/export/` from `runs/train`; L163-164 `--calibration-size 500 --calibration-seed 0`;
    L71 sizes in bytes in JSON, KiB/MiB and pp in the table; L61 no progress off a terminal."""
    from digitkit.export.calibration import CalibrationSet

    cwd, runs = defaults_run
    out = cwd / "runs" / "export"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source_model"]["sha256"] == sha256(cwd / "runs" / "train" / "model.keras")
    (x_train, _), _ = mnist
    expected = CalibrationSet.from_training_set(x_train, 500, 0).describe()
    calibration = manifest["calibration"]
    assert (calibration["samples"], calibration["seed"]) == (500, 0)
    assert calibration["indices_sha256"] == expected.indices_sha256, "not the images 500 and seed 0 choose"

    summary = json.loads((cwd / "export.json").read_text())
    assert Path(summary["out"]) == Path("runs/export")
    rows = table_rows(runs["export"].stdout, {"tflite"}, column=2)
    assert (
        sorted(rows)
        == sorted(a["file"] for a in summary["artifacts"])
        == sorted(a["file"] for a in manifest["artifacts"])
    )
    for artifact in summary["artifacts"]:
        size = (out / artifact["file"]).stat().st_size
        assert artifact["size_bytes"] == size
        cells = rows[artifact["file"]]
        assert cells[3] == binary_size(size)
        assert artifact["vs_keras_pp"] == pytest.approx(
            100 * (artifact["accuracy"] - summary["keras_accuracy"]), abs=1e-9
        )
        assert cells[6] == f"{artifact['vs_keras_pp']:+.2f}"
    assert "exporting" not in runs["export"].stderr and "loading" not in runs["export"].stderr


def test_bundle_defaults_dir_runs_export_out_runs_bundle_and_json(defaults_run):
    """L50 `[DIR]` defaults to runs/export, `--out` to runs/bundle; L66 `bundle --json`; L71 bytes."""
    cwd, runs = defaults_run
    summary = json.loads(runs["bundle"].stdout)  # --json alone: the whole of stdout is the JSON
    assert "writing" not in runs["bundle"].stderr, "no progress off a terminal"
    bundle, archive = cwd / "runs" / "bundle", cwd / "runs" / "bundle.tar.gz"
    assert (Path(summary["bundle"]), Path(summary["archive"])) == (
        Path("runs/bundle"),
        Path("runs/bundle.tar.gz"),
    )
    assert summary["archive_bytes"] == archive.stat().st_size
    listed = {f["file"]: f["size_bytes"] for f in summary["files"]}
    assert listed == {str(p.relative_to(bundle)): p.stat().st_size for p in bundle.rglob("*") if p.is_file()}
    export = json.loads((cwd / "runs" / "export" / "manifest.json").read_text())
    for artifact in export["artifacts"]:
        assert sha256(bundle / artifact["file"]) == artifact["sha256"], (
            "the bundle is not the default export's"
        )


def test_predict_shows_digit_confidence_and_top_3_per_image(defaults_run, mnist_test, tmp_path):
    """L46: each image's line names its digit, confidence and top 3 (digit:probability, best first),
    the same figures as the JSON's probabilities."""
    cwd, _ = defaults_run
    images, _ = mnist_test
    pngs = mnist_png_dir(tmp_path / "digits", images[:6])
    result = run_cli("predict", *pngs, "--model", cwd / "runs" / "export", "--json", tmp_path / "p.json")
    assert result.returncode == 0, result.stderr
    records = {r["file"]: r for r in json.loads((tmp_path / "p.json").read_text())}
    lines = [line for line in result.stdout.splitlines() if " top3 " in line]
    assert len(lines) == len(pngs) == len(records)
    for line in lines:
        match = re.fullmatch(
            r"(\S+)\s+digit (\d)  confidence ([\d.]+)  top3 (\d):([\d.]+) (\d):([\d.]+) (\d):([\d.]+)", line
        )
        assert match, line
        record = records[match[1]]
        probabilities = np.array(record["probabilities"])
        best = np.argsort(-probabilities, kind="stable")[:3]
        shown = [(int(match[i]), float(match[i + 1])) for i in (4, 6, 8)]
        assert [d for d, _ in shown] == [int(d) for d in best] and int(match[2]) == record["digit"] == best[0]
        assert [p for _, p in shown] == pytest.approx([probabilities[d] for d in best], abs=5e-4)
        assert float(match[3]) == pytest.approx(record["confidence"], abs=5e-4)


def test_info_shows_the_files_size_and_sha256(defaults_run, tmp_path):
    """L47: info's size and hash are the file's (bytes in JSON, KiB/MiB and bytes in the text)."""
    cwd, _ = defaults_run
    artifact = cwd / "runs" / "export" / "digit_mlp_int8.tflite"
    result = run_cli("info", artifact, "--json", tmp_path / "info.json")
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "info.json").read_text())
    size, digest = artifact.stat().st_size, sha256(artifact)
    assert (data["size_bytes"], data["sha256"]) == (size, digest)
    assert f"size:          {binary_size(size)} ({size} bytes)" in result.stdout.splitlines()
    assert f"sha256:        {digest}" in result.stdout.splitlines()


def test_bench_model_dir_measures_every_artifact_load_p99_rss_and_units(defaults_run, tmp_path):
    """L64 `bench --model DIR` takes every artifact it lists; L48 load time, p99, peak RSS; L71 µs in
    JSON, MiB in the table; L61 no progress off a terminal."""
    cwd, _ = defaults_run
    export = cwd / "runs" / "export"
    result = run_cli(
        "bench",
        "--model",
        export,
        "--seconds",
        "0.05",
        "--batch-sizes",
        "1,1000",
        "--json",
        tmp_path / "b.json",
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "b.json").read_text())
    listed = {a["file"] for a in json.loads((export / "manifest.json").read_text())["artifacts"]}
    assert {r["file"] for r in rows} == listed
    assert {r["backend"] for r in rows} >= {"numpy"}
    table = {}
    for line in result.stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in listed:
            table[(cells[0], cells[1])] = cells
    assert len(table) == len(rows)
    for r in rows:
        assert r["load_ms"] > 0 and r["batch1_p99_us"] >= r["batch1_median_us"] > 0
        assert 10 < r["peak_rss_mb"] < 16384, "peak RSS in MiB: a Python process with numpy is tens of MiB"
        # µs: a batch-1 call's median latency and the batch-1 throughput are two measures of one thing
        # (ms or ns would put them 1000x apart; a loaded machine moves them a few x at most).
        assert 1 / 20 < (1e6 / r["batch1_median_us"]) / r["throughput"]["1"] < 20
        cells = table[(r["file"], r["backend"])]
        assert cells[2:5] == [
            f"{r['load_ms']:.1f}",
            f"{r['batch1_median_us']:.1f}",
            f"{r['batch1_p99_us']:.1f}",
        ]
        assert cells[-1] == f"{r['peak_rss_mb']:.0f}"
    assert "measuring" not in result.stderr


def test_verify_units_agreement_percent_pp_and_microseconds(defaults_run, tmp_path):
    """L71-72: JSON agreement a fraction and µs/image, the table % and pp; off a terminal no progress."""
    cwd, _ = defaults_run
    export = cwd / "runs" / "export"
    result = run_cli("verify", export, "--backend", "numpy", "--json", tmp_path / "v.json")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "v.json").read_text())
    table = {}
    for line in result.stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] in ("PASS", "FAIL"):
            table[(cells[1], cells[2])] = cells
    assert "µs/image (batch 1000)" in result.stdout and "agreement" in result.stdout
    assert len(table) == len(summary["results"]) == 3
    reference = summary["reference"]["test_accuracy"]
    for r in summary["results"]:
        cells = table[(r["file"], r["backend"])]
        assert 0.99 <= r["agreement"] <= 1 and cells[6] == f"{100 * r['agreement']:.2f}%"
        assert r["drop_pp"] == pytest.approx(100 * (reference - r["accuracy"]), abs=1e-9)
        assert cells[5] == f"{-r['drop_pp'] + 0.0:+.2f}"
        assert float(cells[8]) == pytest.approx(r["us_per_image_batch1000"], abs=0.051)
        assert 0 < r["us_per_image_batch1000"] < 10_000, "µs per image of a 670k-weight MLP"
    assert "verified" not in result.stderr


def read_with_stderr_on_a_terminal(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Run the real CLI with stderr on a pseudo-terminal (stdout a pipe); return what each received."""
    exe = Path(sys.executable).with_name("digitkit")
    master, slave = pty.openpty()
    process = subprocess.Popen([str(exe), *map(str, args)], cwd=cwd, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: every copy of the terminal's other end is closed
            break
        if not chunk:
            break
        received += chunk
    os.close(master)
    stdout = process.stdout.read() if process.stdout else b""
    process.wait(timeout=600)
    terminal = received.decode("utf-8", "replace")
    return subprocess.CompletedProcess(args, process.returncode, stdout.decode(), terminal), terminal


def test_long_steps_show_progress_on_a_terminal_only(defaults_run, tmp_path):
    """L59-61: on a terminal, verify, export, bench and bundle announce their long steps on stderr (off
    one they do not: the tests above); stdout keeps only the result."""
    cwd, _ = defaults_run
    export = cwd / "runs" / "export"
    verify, terminal = read_with_stderr_on_a_terminal(
        ["verify", export, "--artifact", "digit_mlp_int8.tflite", "--backend", "numpy"], cwd
    )
    assert verify.returncode == 0, terminal
    assert "digitkit: verified digit_mlp_int8.tflite on numpy: pass" in terminal
    assert "verified" not in verify.stdout and "PASS: 1 of 1" in verify.stdout

    made, terminal = read_with_stderr_on_a_terminal(
        ["export", "--format", "tflite", "--out", tmp_path / "fp32"], cwd
    )
    assert made.returncode == 0, terminal
    assert "digitkit: loading MNIST and TensorFlow ..." in terminal
    assert "digitkit: exporting digit_mlp_fp32.tflite (tflite fp32) ..." in terminal
    assert "exporting" not in made.stdout

    measured, terminal = read_with_stderr_on_a_terminal(
        ["bench", "--model", export / "digit_mlp_int8.tflite", "--backend", "numpy", "--seconds", "0.01"], cwd
    )
    assert measured.returncode == 0, terminal
    assert "digitkit: measuring digit_mlp_int8.tflite on numpy ..." in terminal

    bundled, terminal = read_with_stderr_on_a_terminal(
        ["bundle", export, "--no-wheel", "--out", tmp_path / "bundle"], cwd
    )
    assert bundled.returncode == 0, terminal
    assert "digitkit: writing bundle.tar.gz ..." in terminal


def test_doctor_reports_the_os(tmp_path):
    """L51: doctor names this machine's OS (its os-release name, kernel name and release)."""
    result = run_cli("doctor", "--json", tmp_path / "doctor.json")
    assert result.returncode == 0, result.stderr
    reported = json.loads((tmp_path / "doctor.json").read_text())["os"]
    assert f"{platform.system()} {platform.release()}" in reported
    try:
        assert platform.freedesktop_os_release()["PRETTY_NAME"] in reported
    except OSError:  # no os-release file: the kernel is all there is to name
        pass
    assert f"OS:         {reported}, {platform.machine()}" in result.stdout.splitlines()


def test_verify_measures_at_batch_1000_and_bench_latency_at_batch_1(defaults_run, mnist_test, monkeypatch):
    """L72: the real model, wrapped to record the batch of every predict_proba call: verify's timed pass
    over the test set is all batches of 1000; bench's latency calls are one image each."""
    from digitkit.runtime import load
    from digitkit.runtime.manifest import read_manifest
    from digitkit.toolkit import benchmark, verification

    cwd, _ = defaults_run
    export = cwd / "runs" / "export"
    batches: list[int] = []

    class Recording:
        def __init__(self, model):
            self._model = model

        def __getattr__(self, name):
            return getattr(self._model, name)

        def predict_proba(self, images):
            batches.append(len(images))
            return self._model.predict_proba(images)

    def recording_load(*args, **kwargs):
        return Recording(load(*args, **kwargs))

    monkeypatch.setattr(verification, "load", recording_load)
    x_test, y_test = mnist_test
    manifest = read_manifest(export)
    gates = verification.Gates(min_accuracy=0.95, max_drop_pp=0.5, min_agreement=0.99)
    [result] = verification.verify_manifest(
        manifest, x_test, y_test, gates, backends=["numpy"], files=["digit_mlp_int8.tflite"]
    )
    assert result.passed and result.ms_per_image > 0
    assert batches == [1000] * (len(x_test) // 1000), batches

    batches.clear()
    monkeypatch.setattr(benchmark, "load", recording_load)
    measured = benchmark.bench_model(
        export / "digit_mlp_int8.tflite", backend="numpy", batch_sizes=(32,), seconds=0.01
    )
    assert measured.batch1_median_us > 0
    assert set(batches) == {1, 32}
    assert batches.count(1) >= 200, "the latency figures are medians of at least 200 batch-1 calls"
