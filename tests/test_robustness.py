"""Files that travel: fuzzed artifacts, awkward images, killed runs, and --debug.

Every outcome must be a prediction or a one-line error with exit code 2: never a crash (a signal),
a hang, or a traceback.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import UNEXPECTED, mnist_png_dir, run_cli

from digitkit.runtime.hashing import sha256_file

pytestmark = pytest.mark.slow
FUZZ_PER_SOURCE = 170  # x 3 sources = 510 files
SOURCES = ("digit_mlp_int8.tflite", "digit_mlp_fp32.tflite", "digit_mlp_int8.onnx")
FORKSERVER = Path(__file__).with_name("fuzz_forkserver.py")


def mutate(data: bytes, kind: int, rng: np.random.Generator) -> bytes:
    if kind == 0:  # truncated
        return data[: int(rng.integers(0, len(data)))]
    if kind == 1:  # bit flips, mostly in the structure at the front
        raw = bytearray(data)
        for _ in range(int(rng.integers(1, 24))):
            limit = min(len(raw), 4096) if rng.random() < 0.8 else len(raw)
            raw[int(rng.integers(0, limit))] ^= 1 << int(rng.integers(0, 8))
        return bytes(raw)
    noise = rng.integers(0, 256, int(rng.integers(0, 20000)), dtype=np.uint8).tobytes()
    return data[:16] + noise if rng.random() < 0.5 else noise  # random, with or without a valid header


@pytest.fixture(scope="module")
def fuzzed_files(export_dir, tmp_path_factory) -> list[Path]:
    """Standalone files (no manifest beside them), so the native loaders are really exercised."""
    out = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(20261124)
    files = []
    for source in SOURCES:
        data = (export_dir / source).read_bytes()
        stem, suffix = source.rsplit(".", 1)
        for i in range(FUZZ_PER_SOURCE):
            path = out / f"{stem}_{i:03d}.{suffix}"
            path.write_bytes(mutate(data, i % 3, rng))
            files.append(path)
    return files


def classify(result: subprocess.CompletedProcess) -> str:
    if result.returncode < 0:
        return f"crash (signal {-result.returncode})"
    if "Traceback" in result.stderr:
        return "traceback"
    if result.returncode == 0:
        return "ok"
    errors = [line for line in result.stderr.strip().splitlines() if line.strip()]
    if any(UNEXPECTED in line for line in errors):
        return f"unexpected error: {errors[-1][:200]}"
    return (
        "one-line error"
        if result.returncode == 2 and len(errors) == 1
        else f"exit {result.returncode}: {result.stderr[-300:]}"
    )


def fuzz(mode: str, image: Path, files: list[Path]) -> Counter:
    """Each file in its own forked child (see fuzz_forkserver.py); two servers share the files."""
    halves = [files[0::2], files[1::2]]
    servers = [
        subprocess.Popen(
            [sys.executable, str(FORKSERVER), mode, str(image), *map(str, half)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for half in halves
    ]
    outcomes = Counter()
    for server in servers:
        out, _ = server.communicate(timeout=1800)
        assert server.returncode == 0
        outcomes.update(json.loads(out).values())
    return outcomes


def test_fuzzed_artifacts_never_crash_hang_or_trace(fuzzed_files, mnist_test, tmp_path, figures):
    image = mnist_png_dir(tmp_path / "img", mnist_test[0][:1])[0]
    through_load = fuzz("load", image, fuzzed_files)
    through_cli = fuzz("cli", image, fuzzed_files)
    figures.append(
        f"fuzzed {len(fuzzed_files)} artifacts: load() {dict(through_load)}; digitkit predict {dict(through_cli)}"
    )
    for outcomes in (through_load, through_cli):
        assert set(outcomes) <= {"ok", "one-line error"}, outcomes
        assert outcomes["one-line error"] >= len(fuzzed_files) // 2  # most mutations must be caught


def test_fuzzed_artifacts_beside_a_manifest_are_all_refused(export_dir, tmp_path, mnist_test):
    """With the manifest beside them, any change is refused by hash before a runtime sees the file."""
    directory = tmp_path / "export"
    shutil.copytree(export_dir, directory)
    image = mnist_png_dir(tmp_path / "img", mnist_test[0][:1])[0]
    rng = np.random.default_rng(7)
    original = (directory / "digit_mlp_int8.tflite").read_bytes()
    for kind in range(3):
        (directory / "digit_mlp_int8.tflite").write_bytes(mutate(original, kind, rng))
        result = run_cli("predict", image, "--model", directory / "digit_mlp_int8.tflite")
        assert classify(result) == "one-line error" and "changed since export" in result.stderr


def test_awkward_images_through_the_cli(export_dir, tmp_path):
    from PIL import Image

    corpus = tmp_path / "awkward"
    corpus.mkdir()
    (corpus / "empty.png").write_bytes(b"")
    (corpus / "notes.png").write_text("hello")
    Image.new("L", (1, 1), 255).save(corpus / "one-pixel.png")
    Image.new("I;16", (40, 40), 0).save(corpus / "sixteen-bit.png")
    Image.new("CMYK", (50, 50), (0, 0, 0, 0)).save(corpus / "cmyk.jpg")
    digit = Image.new("L", (60, 60), 255)
    digit.paste(0, (26, 10, 34, 50))
    digit.convert("P").save(corpus / "palette.png")
    digit.convert("RGB").save(corpus / "photo.jpg", quality=70)
    digit.save(corpus / "animated.gif", save_all=True, append_images=[digit.rotate(45)])
    good = corpus / "good.png"
    digit.save(good)
    (corpus / "truncated.png").write_bytes(good.read_bytes()[:40])
    result = run_cli("predict", corpus, "--model", export_dir / "digit_mlp_int8.tflite")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.startswith("Model: ") and "digit_mlp_int8.tflite" in header, header
    predicted = {Path(line.split()[0]).name for line in rows}
    failed = {Path(line.split("error: ")[1].split()[0]).name for line in result.stderr.splitlines()}
    assert {"good.png", "photo.jpg", "palette.png", "animated.gif"} <= predicted
    assert {"empty.png", "notes.png", "truncated.png"} <= failed
    assert predicted | failed == {p.name for p in corpus.iterdir()}
    for line in rows:
        if Path(line.split()[0]).name in ("good.png", "photo.jpg", "palette.png"):
            assert "digit 1" in line, line


def test_killed_training_keeps_the_previous_pair_or_names_the_mismatch(tmp_path):
    """model.keras and training.json are published as one unit (runtime/files.py `publish`, record
    last). Killed (SIGKILL, deterministically: `fault_point`) with both new files written in full
    but not yet renamed: the previous pair is intact, byte for byte, and nothing else is visible.
    Killed between the two renames: the new model sits beside the previous record, and export
    refuses the pair (one line, exit 2, before any work) instead of recording another model's
    recipe and accuracy. The next run cleans up and publishes a matching pair."""
    from digitkit.runtime.files import FAULT_ENV

    out = tmp_path / "train"
    assert run_cli("train", "--epochs", "1", "--out", out).returncode == 0
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    assert set(before) == {"model.keras", "training.json"}

    killed = run_cli("train", "--epochs", "1", "--seed", "3", "--out", out, env={FAULT_ENV: "publish:0"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert {p.name: sha256_file(p) for p in out.iterdir() if not p.name.startswith(".")} == before
    staged = [f for d in out.iterdir() if d.name.startswith(".") for f in d.iterdir()]
    assert sorted(f.name for f in staged) == ["model.keras", "training.json"], staged
    assert all(f.stat().st_size > 1_000_000 for f in staged if f.suffix == ".keras"), (
        "the kill must land with the new model written in full (else it proves nothing)"
    )

    killed = run_cli("train", "--epochs", "1", "--seed", "3", "--out", out, env={FAULT_ENV: "publish:1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sha256_file(out / "model.keras") != before["model.keras"]
    assert sha256_file(out / "training.json") == before["training.json"]
    export = run_cli("export", "--model", out, "--out", tmp_path / "export", "--int8")
    assert export.returncode == 2 and len(export.stderr.strip().splitlines()) == 1, export.stderr
    assert "is not the model" in export.stderr and "digitkit train --out" in export.stderr
    assert UNEXPECTED not in export.stderr and not (tmp_path / "export").exists()

    again = run_cli("train", "--epochs", "1", "--out", out)
    assert again.returncode == 0, again.stderr
    record = json.loads((out / "training.json").read_text())
    assert record["model_sha256"] == sha256_file(out / "model.keras") and record["test_accuracy"] > 0.9
    assert sorted(p.name for p in out.iterdir()) == ["model.keras", "training.json"]  # staging gone


def test_debug_shows_the_traceback(tmp_path):
    plain = run_cli("verify", tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = run_cli("--debug", "verify", tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "ArtifactError" in debug.stderr
