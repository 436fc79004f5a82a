"""Nothing lost, nothing surprising: Ctrl-C at random moments, output paths, stale artifacts, messages.

Every test runs the real `digitkit` console script in a subprocess, as a user would."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from helpers import mnist_png_dir

DIGITKIT = Path(sys.executable).with_name("digitkit")
# Python's own start-up (site, the editable-install finder: about 30 ms here) runs before digitkit's
# first line takes over Ctrl-C; the random moments start after it.
EARLIEST = 0.12


def leftovers(directory: Path) -> list[str]:
    """Hidden staging directories and temporary files a command may leave only while it runs."""
    if not directory.exists():
        return []
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob(".*")
        if p.name.startswith(".digitkit-staging-") or ".tmp" in p.name
    )


def export_is_whole(directory: Path) -> None:
    """No manifest yet, or a manifest whose every file is there, byte for byte."""
    from digitkit.runtime.manifest import MANIFEST_NAME, read_manifest

    if not (directory / MANIFEST_NAME).exists():
        return
    manifest = read_manifest(directory)
    for entry in manifest.artifacts:
        manifest.check_artifact(entry)


def report_is_whole(report: Path) -> None:
    if not report.exists():
        return
    page = report / "index.html"
    assert page.is_file(), f"half a report: {sorted(p.name for p in report.iterdir())}"
    text = page.read_text()
    for name in (p.name for p in report.iterdir() if p.suffix == ".png"):
        assert name in text
    import re

    for name in re.findall(r"src='([^']+)'", text):
        assert (report / name).is_file(), f"{name} is in index.html but missing"


def json_is_whole(path: Path) -> None:
    if path.exists():
        json.loads(path.read_text())


def bundle_is_whole(out: Path) -> None:
    archive = out.with_name(out.name + ".tar.gz")
    assert out.exists() == archive.exists(), "a bundle directory without its archive, or the reverse"
    if out.exists():
        from digitkit.toolkit.bundling import open_bundle

        with open_bundle(out):
            pass
        with open_bundle(archive):
            pass


def train_is_whole(out: Path) -> None:
    record = out / "training.json"
    if record.exists():
        assert json.loads(record.read_text())["model_file"] == "model.keras"
        assert (out / "model.keras").is_file()
    if (out / "model.keras").exists():
        import zipfile

        assert zipfile.is_zipfile(out / "model.keras")


class Case:
    """One long command: how to run it in ``work``, how long it takes at most, what must hold after."""

    def __init__(
        self,
        name: str,
        args: Callable[[Path], list[str]],
        window: float,
        trials: int,
        check: Callable[[Path], None],
    ) -> None:
        self.name, self.args, self.window, self.trials, self.check = name, args, window, trials, check


def interrupt_once(args: list[str], delay: float, cwd: Path) -> tuple[int | None, str, bool]:
    """Start the command, send one SIGINT after ``delay`` seconds (if it still runs), wait for it."""
    env = {**os.environ, "COLUMNS": "200"}
    process = subprocess.Popen(
        [str(DIGITKIT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=env,
    )
    time.sleep(delay)
    sent = process.poll() is None
    if sent:
        process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    return process.returncode, err, sent


@pytest.mark.slow
def test_ctrl_c_at_random_moments_exits_130_with_nothing_half_written(
    export_dir, seed_model_dir, mnist, tmp_path
):
    """≥ 30 SIGINTs at random moments into train, export, verify --report, bench, bundle (with and
    without building the wheel) and predict on many files: exit 130 (or 0 if it had already
    finished), one line, no traceback, no half-written output, no staging left behind."""
    _, (x_test, _) = mnist
    images = tmp_path / "digits"
    mnist_png_dir(images, x_test[:300])
    int8 = export_dir / "digit_mlp_int8.tflite"
    cases = [
        Case(
            "train",
            lambda w: ["train", "--epochs", "1", "--out", str(w / "train")],
            14.0,
            2,
            lambda w: train_is_whole(w / "train"),
        ),
        Case(
            "export",
            lambda w: (
                ["export", "--model", str(seed_model_dir / "model.keras"), "--out", str(w / "export")]
                + ["--format", "tflite"]
            ),
            10.0,
            3,
            lambda w: export_is_whole(w / "export"),
        ),
        Case(
            "verify --report",
            lambda w: (
                ["verify", str(export_dir), "--artifact", int8.name, "--backend", "numpy"]
                + ["--report", str(w / "report"), "--json", str(w / "verify.json")]
            ),
            2.5,
            8,
            lambda w: (report_is_whole(w / "report"), json_is_whole(w / "verify.json")),
        ),
        Case(
            "bench",
            lambda w: (
                ["bench", "--model", str(int8), "--backend", "numpy", "--seconds", "0.2"]
                + ["--batch-sizes", "1,32", "--json", str(w / "bench.json")]
            ),
            2.5,
            5,
            lambda w: json_is_whole(w / "bench.json"),
        ),
        Case(
            "bundle",
            lambda w: ["bundle", str(export_dir), "--out", str(w / "bundle"), "--mode", "int8", "--no-wheel"],
            1.0,
            5,
            lambda w: bundle_is_whole(w / "bundle"),
        ),
        Case(
            "bundle with wheel",
            lambda w: ["bundle", str(export_dir), "--out", str(w / "bundle"), "--mode", "int8"],
            3.0,
            2,
            lambda w: bundle_is_whole(w / "bundle"),
        ),
        Case(
            "predict",
            lambda w: ["predict", str(images), "--model", str(int8), "--json"],
            1.0,
            6,
            lambda w: None,
        ),
    ]
    seed = int(os.environ.get("DIGITKIT_INTERRUPT_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    tried, interrupted = [], 0
    for case in cases:
        for trial in range(case.trials):
            work = tmp_path / f"{case.name.replace(' ', '-')}-{trial}"
            work.mkdir()
            delay = rng.uniform(EARLIEST, case.window)
            code, err, sent = interrupt_once(case.args(work), delay, work)
            where = f"{case.name} interrupted at {delay:.2f} s (DIGITKIT_INTERRUPT_SEED={seed})"
            tried.append(where)
            assert "Traceback" not in err and "Exception ignored" not in err, f"{where}:\n{err}"
            if sent:
                interrupted += 1
                assert code == 130, f"{where}: exit {code}\n{err}"
                assert err.strip().splitlines()[-1].startswith("digitkit: error: Interrupted"), (
                    f"{where}:\n{err}"
                )
            else:
                assert code == 0, f"{where}: finished before the signal with exit {code}\n{err}"
            case.check(work)
            assert leftovers(work) == [], f"{where}: left {leftovers(work)}"
            shutil.rmtree(work)
    assert len(tried) >= 30
    assert interrupted >= 25, f"only {interrupted} of {len(tried)} runs were still going when signalled"
