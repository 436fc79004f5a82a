"""The runtime benchmark runs end to end on the exported artifacts (quick settings, no timing asserted):
its comparisons are between the same answers, and its table has a row per artifact."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from digitkit.export.formats import TARGETS

pytestmark = pytest.mark.slow


def test_runtime_benchmark_compares_equal_answers_for_every_artifact(export_dir, tmp_path):
    out = tmp_path / "runtime.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_runtime.py"), "--export-dir", str(export_dir), "--quick", "--no-tensorflow", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {a["file"]: a for a in result["artifacts"]}
    assert set(rows) == {t.filename for t in TARGETS}
    for name, row in rows.items():
        assert row["top1_agreement_digitkit_vs_bare"] == 1.0, name
        assert len(row["batch1_seconds"]["bare"]["process_medians"]) == result["config"]["b1_processes"]
        assert row["batch1_ratio_uint8"] > 0 and row["batch1_ratio_uint8_to_bare_converting"] > 0 and row["big_ratio_uint8"] > 0
    assert "Runtime vs bare backend, batch 1 " in done.stdout and "digit_mlp_int8_pixels.tflite" in done.stdout
