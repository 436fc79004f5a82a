"""Training: `digitkit train` (the CLI) against plain_keras_mnist.py (the classic Keras mnist_mlp.py),
each a fresh process, in interleaved runs (digitkit, plain, digitkit, ...); medians."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from common import BENCH_DIR, DIGITKIT, PYTHON, Table, last_json, median, run_child, x

FIELDS = {"wall_s": ".2f", "fit_s": ".2f", "cpu_s": ".1f", "rss_mb": ".0f", "test_accuracy": ".4f"}


@dataclass
class TrainRun:
    wall_s: float  # fork to exit: start-up, imports, data, fit, evaluation (and digitkit's saving)
    fit_s: float  # inside model.fit, as the process reports it
    cpu_s: float
    rss_mb: float
    test_accuracy: float


@dataclass
class TrainingResult:
    epochs: int
    digitkit: list  # of TrainRun
    plain: list

    def median(self, side: str, key: str) -> float:
        return median(getattr(r, key) for r in getattr(self, side))


def train_digitkit(out: Path, epochs: int) -> TrainRun:
    child = run_child([DIGITKIT, "train", "--out", out, "--epochs", epochs])
    record = json.loads((out / "training.json").read_text())
    return TrainRun(child.wall_s, record["train_seconds"], child.cpu_s, child.rss_mb, record["test_accuracy"])


def train_plain(epochs: int) -> TrainRun:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}  # as digitkit imports TensorFlow
    child = run_child([PYTHON, BENCH_DIR / "plain_keras_mnist.py", epochs], env)
    record = last_json(child.stdout)
    return TrainRun(child.wall_s, record["fit_seconds"], child.cpu_s, child.rss_mb, record["test_accuracy"])


def run(ws, log) -> TrainingResult:
    """3 runs each at 4 epochs (quick: 1 at 1); the first digitkit model is the workspace model."""
    runs, epochs = (1, 1) if ws.quick else (3, 4)
    result = TrainingResult(epochs, [], [])
    for i in range(runs):
        log(f"[training] run {i + 1}/{runs}, {epochs} epochs: digitkit, then plain")
        result.digitkit.append(train_digitkit(ws.work / "training" / f"digitkit-{i + 1}", epochs))
        result.plain.append(train_plain(epochs))
    return result


def tables(r: TrainingResult) -> list:
    rows = [
        [label, *(f"{r.median(side, k):{f}}" for k, f in FIELDS.items()), [round(t.wall_s, 1) for t in getattr(r, side)]]
        for side, label in (("digitkit", "`digitkit train` (CLI)"), ("plain", "plain Keras script"))
    ]  # fmt: skip
    ratios = [x(r.median("digitkit", k) / r.median("plain", k)) for k in ("wall_s", "fit_s")]
    accuracy = r.median("digitkit", "test_accuracy") - r.median("plain", "test_accuracy")
    rows.append(["digitkit / plain", *ratios, "", "", f"{accuracy:+.4f}", ""])
    return [
        Table(
            f"Training: {r.epochs} epochs, {len(r.digitkit)} interleaved runs each (medians)",
            "trainer | wall (s) | model.fit (s) | CPU (s) | peak RSS (MB) | test accuracy | wall per run (s)",
            rows,
            "wall: fork to exit. model.fit: inside the process. digitkit also evaluates, saves and hashes "
            "model.keras, and trains deterministically (enable_op_determinism); the plain script does not.",
        )
    ]
