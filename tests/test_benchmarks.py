"""The runtime benchmark runs end to end on the exported artifacts (quick settings, no timing asserted):
it compares equal answers, the numpy backend agrees with LiteRT, and its tables have a row per artifact."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from digitkit.export.formats import TARGETS

pytestmark = pytest.mark.slow


def test_runtime_benchmark_compares_equal_answers_for_every_artifact(export_dir, tmp_path):
    command = [sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--quick", "--only", "runtime"]
    command += ["--export-dir", str(export_dir), "--out", str(tmp_path), "--work", str(tmp_path / "work")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["errors"] == {}
    rows = {row["file"]: row for row in report["results"]["runtime"]}
    assert set(rows) == {t.filename for t in TARGETS if t.format in ("tflite", "onnx")}
    for name, row in rows.items():
        assert row["agree"] == 1.0, name
        assert row["batch1"]["bare"]["n"] == 3 * 4 * 100  # quick: 3 processes x 4 blocks x 100 calls
        assert {"uint8", "float32"} <= set(row["ratios1"]) and row["big_ratios"]["uint8"] > 0
        if name.endswith(".tflite"):  # every TFLite artifact also runs on the numpy backend
            assert row["ratios1"]["numpy"]["median"] > 0 and row["numpy_max_diff"] < 1e-3, name
            if "int8" in name:
                assert row["numpy_max_diff"] == 0.0, name  # bit-exact with LiteRT
        else:
            assert "numpy" not in row["ratios1"] and row["numpy_max_diff"] is None
    markdown = (tmp_path / "latest.md").read_text()
    assert "numpy backend vs LiteRT" in markdown and "digit_mlp_int8_pixels.tflite" in done.stdout
    goal = "| Runtime vs bare backend, batch 1 | float32, int8 models <= 1.25x |"  # a row of the Goals table
    assert goal in markdown
