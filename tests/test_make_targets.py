"""The README's two commands as the Makefile and `.ci/run` define them: what `make test` runs, in which
order, where it installs, that a second run installs nothing, and what CI runs. Read from `make -n`
(the recipe make would run), so a changed Makefile is what is checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import ROOT

VENV = Path(sys.executable).parent.parent


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_make_test_lints_before_the_suite_and_installs_into_dot_venv():
    """README: `make test`: venv, install, then lint (ruff, import contracts, mypy) and the whole suite,
    everything in `.venv/`."""
    listed = make("-n", "-B", "test").stdout.splitlines()  # -B: as on a fresh clone, install included
    first = {
        step: next((i for i, line in enumerate(listed) if marker in line), None)
        for step, marker in [
            ("venv", "-m venv .venv"),
            ("install", '-e ".[train,litert,onnxruntime,opencv,images,serve,test,lint]"'),
            ("ruff", "ruff check"),
            ("format", "ruff format --check"),
            ("contracts", "lint-imports"),
            ("mypy", "mypy"),
            ("suite", "-m pytest -q tests"),
        ]
    }
    assert None not in first.values(), (first, listed)
    assert list(first.values()) == sorted(first.values()), first  # in this order
    assert all(".venv/" in line for line in listed if "pip install" in line or "pytest" in line), listed


def test_a_second_make_installs_nothing():
    """README: both commands are idempotent. Once installed (as this suite is), the install step is up
    to date: make would not run it again. (The commands themselves write only under runs/, replacing
    their own files; tests/test_demo.py runs them.)"""
    stamp = VENV / ".installed"
    if VENV.resolve() != (ROOT / ".venv").resolve():
        # A venv other than the repository's (a hermetic test venv): ask about that one.
        up_to_date = make("-q", str(stamp), f"VENV={VENV}")
    else:
        up_to_date = make("-q", ".venv/.installed")
    assert up_to_date.returncode == 0, "make would install again: .venv/.installed is older than its inputs"


def test_ci_runs_make_test_with_every_skip_a_failure():
    """README: `.ci/run` calls `make test` with DIGITKIT_REQUIRE_EMULATION=1 (tests/test_suite_rules.py
    shows what that variable does)."""
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert commands[-1] == "DIGITKIT_REQUIRE_EMULATION=1 make test", commands


def test_the_suite_lists_its_slowest_tests():
    """README: the suite prints the 25 slowest tests."""
    import tomllib

    addopts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["addopts"]
    assert "--durations=25" in addopts.split()


def test_the_venv_tools_run_by_path_or_after_activate():
    """README: run the tools as `.venv/bin/digitkit`, or `source .venv/bin/activate` first."""
    from digitkit.runtime import __version__

    by_path = subprocess.run([str(VENV / "bin" / "digitkit"), "--version"], capture_output=True, text=True)
    activated = subprocess.run(
        ["bash", "-c", f'source "{VENV}/bin/activate" && command -v digitkit && digitkit --version'],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )
    assert by_path.stdout == f"digitkit {__version__}\n", by_path.stderr
    found, version = activated.stdout.splitlines()
    assert Path(found) == VENV / "bin" / "digitkit" and version == f"digitkit {__version__}", activated
