"""The built wheel in clean virtual environments, as a device installs it: one backend extra each.

These install from the package registry (PyPI) into throwaway venvs: minutes on a cold pip cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT, constraints

from digitkit.export.formats import TARGETS

pytestmark = pytest.mark.slow
NUMPY_1, TFLITE_RUNTIME = "numpy==1.26.4", "tflite-runtime==2.14.0"  # the old-device world, pinned
HEAVY = ("tensorflow", "keras", "onnx", "tf2onnx", "typer", "PIL")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel as `digitkit bundle` builds it for a device."""
    from digitkit.toolkit.bundling import build_wheel

    built = build_wheel(tmp_path_factory.mktemp("wheel"))
    assert built is not None, "pip wheel failed on the checkout"
    return built


def test_wheel_holds_the_three_packages_and_no_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for package in (
        "digitkit/__init__.py",  # a regular package: `digitkit.__version__`
        "digitkit/__main__.py",  # `python -m digitkit`
        "digitkit/toolkit/cli/__init__.py",
        "digitkit/export/formats.py",
        "digitkit/runtime/model.py",
        "digitkit/runtime/backends/tflite.py",
        "digitkit/toolkit/serve/app.py",
        "digitkit/toolkit/serve/static/index.html",  # `digitkit serve`'s page: package data
        "digitkit/toolkit/serve/static/app.js",
    ):
        assert package in names
    assert not any(n.startswith(("toolkit/", "export/", "runtime/", "tests/")) for n in names), (
        "never top-level packages"
    )
    assert not any(n.endswith(".gz") for n in names)


def make_venv(path: Path, python: str = sys.executable) -> Path:
    subprocess.run([python, "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def pip_install(python: Path, *requirements: str, pins: list[str] | None = None) -> None:
    """Installs with constraints.txt's pins (or ``pins``, other pip constraint arguments)."""
    pins = constraints(python.parent) if pins is None else pins
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *pins, *requirements], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]


def installed_versions(python: Path) -> dict[str, str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True, check=True
    ).stdout
    return {
        p["name"].lower().replace("_", "-"): p["version"]
        for p in json.loads(out)
        if p["name"] not in ("pip", "setuptools", "wheel")
    }


def installed(python: Path) -> set[str]:
    return set(installed_versions(python))


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def closure(python: Path, root: str) -> set[str]:
    """The distributions ``root`` pulls in, read from the venv's own metadata."""
    code = f"""
import importlib.metadata as md, re, json
from pip._vendor.packaging.markers import Marker  # every venv has pip
seen, todo = set(), [{root!r}]
while todo:
    name = todo.pop()
    key = name.lower().replace("_", "-")
    if key in seen:
        continue
    seen.add(key)
    for req in md.requires(name) or []:
        if "extra ==" in req:
            continue
        if ";" in req and not Marker(req.split(";", 1)[1]).evaluate():
            continue
        todo.append(re.split(r"[ ;<>=!~\\[(]", req, maxsplit=1)[0])
print(json.dumps(sorted(seen)))
"""
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


PREDICT = f"""
import sys, json, numpy as np
from digitkit.runtime import load
from digitkit.toolkit.data import load_mnist_test
x, y = load_mnist_test(sys.argv[2])
model = load(sys.argv[1])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
import digitkit
print(json.dumps({{"backend": model.backend, "accuracy": float((model.predict(x) == y).mean()), "heavy": heavy, "version": digitkit.__version__}}))
"""


@pytest.mark.parametrize(
    "extra, backend, artifact",
    [
        ("litert", "ai-edge-litert", "digit_mlp_int8.tflite"),
        ("onnxruntime", "onnxruntime", "digit_mlp_int8.onnx"),
    ],
)
def test_runtime_extra_installs_numpy_and_one_backend_and_predicts(
    wheel, export_dir, tmp_path, extra, backend, artifact
):
    python = make_venv(tmp_path / "venv")
    pip_install(python, f"{wheel}[{extra}]")
    versions = installed_versions(python)
    names = set(versions)
    assert names == closure(python, "digitkit") | closure(python, backend), names
    # hermetic: every distribution in the venv is one constraints.txt pins, at its pinned version
    pins = pinned()
    assert {n: v for n, v in versions.items() if n != "digitkit"} == {
        n: pins.get(n) for n in names - {"digitkit"}
    }
    assert not names & {
        "tensorflow",
        "tensorflow-cpu",
        "keras",
        "onnx",
        "tf2onnx",
        "typer",
        "pillow",
        "matplotlib",
    }
    result = subprocess.run(
        [str(python), "-c", PREDICT, str(export_dir / artifact), str(ROOT / "data" / "mnist")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [] and report["accuracy"] >= 0.975
    assert report["version"] == versions["digitkit"]


def test_tflite_runtime_on_numpy_1_runs_every_tflite_artifact(wheel, export_dir, tmp_path):
    """The old-device path: tflite-runtime 2.14 with numpy 1.x, driven by `digitkit verify`."""
    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime 2.14 has wheels for Python <= 3.11 only")
    python = make_venv(tmp_path / "venv")
    numpy_1 = constraints(tmp_path / "pins", numpy=NUMPY_1, tflite_runtime=TFLITE_RUNTIME)
    pip_install(python, "numpy<2", f"{wheel}[tflite,cli]", pins=numpy_1)
    digitkit = python.with_name("digitkit")
    command = [
        str(digitkit),
        "verify",
        str(export_dir),
        "--backend",
        "tflite-runtime",
        "--data-dir",
        str(ROOT / "data" / "mnist"),
        "--json",
        "-",
    ]
    result = subprocess.run([*command, "--report", str(tmp_path / "report")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    page = (tmp_path / "report" / "index.html").read_text()  # numpy alone draws it: a device writes its own
    tflite = sum(t.format == "tflite" for t in TARGETS)
    assert "tflite-runtime" in page and f"{tflite} of {tflite} artifact/backend pairs pass" in page
    summary = json.loads(result.stdout)
    rows = {r["file"]: r for r in summary["results"]}
    assert set(rows) == {t.filename for t in TARGETS if t.format == "tflite"}  # int8-pixels too
    assert all(r["backend"] == "tflite-runtime" and r["passed"] for r in rows.values())
    threaded = subprocess.run(
        [str(python), "-c", THREADS, str(export_dir / "digit_mlp_int8.tflite"), str(ROOT / "data" / "mnist")],
        capture_output=True,
        text=True,
    )
    assert threaded.returncode == 0 and threaded.stdout.split() == ["identical", "zero-copy"], (
        threaded.stdout + threaded.stderr[-2000:]
    )


THREADS = """
import sys, threading, numpy as np
from digitkit.runtime import load
from digitkit.toolkit.data import load_mnist_test
x, _ = load_mnist_test(sys.argv[2])
model = load(sys.argv[1], backend="tflite-runtime")
expected = model.predict_proba(x[:2000])
results = {}
def work(w):
    results[w] = np.stack([model.predict_proba(x[i])[0] for i in range(2000)])
threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
print("identical" if all(np.array_equal(results[w], expected) for w in range(8)) else "DIFFERENT")
print("zero-copy" if model.session.slot(1).zero_copy else "copying")
"""
