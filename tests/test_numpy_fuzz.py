"""Damaged and hostile .tflite files on the numpy backend: a prediction or a one-line DigitkitError,
never another exception, a hang or a memory blow-up.

numpy cannot segfault, so the files load in this process (unlike tests/test_robustness.py, which forks
for the native runtimes); each file gets a time budget, so a hang fails the test instead of stalling it.
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from digitkit.runtime import load
from digitkit.runtime.errors import DigitkitError

SOURCES = ("int8", "int8_pixels", "fp32", "fp16", "dynamic")
PER_SOURCE = 110  # x 5 sources = 550 files
SECONDS_PER_FILE = 2.0


def mutate(data: bytes, kind: int, rng: np.random.Generator) -> bytes:
    """As tests/test_robustness.py: truncations, bit flips mostly in the first 4 KB, random bytes."""
    if kind == 0:
        return data[: int(rng.integers(0, len(data)))]
    if kind == 1:
        raw = bytearray(data)
        for _ in range(int(rng.integers(1, 24))):
            limit = min(len(raw), 4096) if rng.random() < 0.8 else len(raw)
            raw[int(rng.integers(0, limit))] ^= 1 << int(rng.integers(0, 8))
        return bytes(raw)
    if kind == 2:  # a whole 32-bit word of the structure replaced: offsets, lengths, indices, dims
        raw = bytearray(data)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(0, min(len(raw), 4096) - 4)) & ~3
            raw[pos : pos + 4] = int(
                rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 20, int(rng.integers(0, 1 << 32))])
            ).to_bytes(4, "little")
        return bytes(raw)
    noise = rng.integers(0, 256, int(rng.integers(0, 20000)), dtype=np.uint8).tobytes()
    return data[:16] + noise if rng.random() < 0.5 else noise


def test_mutated_artifacts_fail_cleanly(export_dir, tmp_path, mnist_test, figures):
    rng = np.random.default_rng(20261129)
    batch = mnist_test[0][:3]
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    for source in SOURCES:
        data = (export_dir / f"digit_mlp_{source}.tflite").read_bytes()
        for i in range(PER_SOURCE):
            path = tmp_path / f"{source}_{i:03d}.tflite"
            path.write_bytes(mutate(data, i % 4, rng))
            start = time.perf_counter()
            try:
                model = load(path, backend="numpy")
                probabilities = model.predict_proba(batch)
                assert probabilities.shape == (3, 10)
                outcomes["prediction"] += 1
            except DigitkitError as exc:
                assert "\n" not in str(exc), f"{path.name}: {exc}"
                outcomes[type(exc).__name__] += 1
            except Exception as exc:  # anything else is a bug: name the file and the exception
                pytest.fail(f"{path.name}: {type(exc).__name__}: {exc}")
            elapsed = time.perf_counter() - start
            slowest = max(slowest, elapsed)
            assert elapsed < SECONDS_PER_FILE, f"{path.name} took {elapsed:.1f} s"
            path.unlink()
    figures.append(
        f"numpy backend fuzz: {sum(outcomes.values())} files, {dict(outcomes)}, slowest {slowest * 1000:.0f} ms"
    )
    assert sum(outcomes.values()) == len(SOURCES) * PER_SOURCE
