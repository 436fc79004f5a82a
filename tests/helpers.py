"""Helpers the tests share (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# The CLI's line for an exception no code raised on purpose (toolkit/cli/common.py `exit_code_for`):
# exit 2 and one line like bad input, but a bug, so every test counts it as a failure.
UNEXPECTED = "(unexpected; rerun with --debug"


def assert_no_unexpected_error(stderr: str, what: str) -> None:
    assert UNEXPECTED not in stderr, f"{what}: an unexpected error is a bug, not bad input:\n{stderr[-2000:]}"


CONSTRAINTS = ROOT / "constraints.txt"


def constraints(tmp: Path, **replacements: str) -> list[str]:
    """pip arguments that install with constraints.txt's pins (hermetic: an upstream release changes
    nothing until a pin does); ``replacements`` swaps a distribution's pin, e.g. numpy="numpy==1.26.4"
    for tflite-runtime's numpy-1 world."""
    if not replacements:
        return ["-c", str(CONSTRAINTS)]
    lines = []
    for line in CONSTRAINTS.read_text().splitlines():
        name = line.split("==")[0].strip().lower().replace("_", "-")
        if name not in {k.replace("_", "-") for k in replacements}:
            lines.append(line)
    lines += replacements.values()
    tmp.mkdir(parents=True, exist_ok=True)
    derived = tmp / "constraints.txt"
    derived.write_text("\n".join(lines) + "\n")
    return ["-c", str(derived)]


def run_cli(*args, env=None, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    """The real `digitkit` console script in a subprocess, as a user runs it (an "unexpected" error
    fails the calling test)."""
    exe = Path(sys.executable).with_name("digitkit")
    merged = {**os.environ, **(env or {})}
    result = subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, env=merged, cwd=cwd, timeout=timeout
    )
    assert_no_unexpected_error(result.stderr, "digitkit " + " ".join(map(str, args)))
    return result


def mnist_png_dir(directory: Path, images: np.ndarray) -> list[Path]:
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = directory / f"{i:05d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def bundle_verified_on_host(export_dir: Path, tmp_path: Path, bundle_args: list[str]) -> tuple[Path, dict]:
    """A bundle in ``tmp_path/work/bundle`` and the host's `verify --bundle` rows, keyed (file, backend):
    what the emulated devices' results are compared with."""
    import json

    from typer.testing import CliRunner

    from digitkit.toolkit.cli import app

    runner = CliRunner()
    bundle = tmp_path / "work" / "bundle"
    made = runner.invoke(app, ["bundle", str(export_dir), "--out", str(bundle), *bundle_args])
    assert made.exit_code == 0, made.output
    host = runner.invoke(app, ["verify", "--bundle", str(bundle), "--json", str(tmp_path / "host.json")])
    assert host.exit_code == 0, host.output
    rows = {(r["file"], r["backend"]): r for r in json.loads((tmp_path / "host.json").read_text())["results"]}
    return bundle, rows


def wheel_requirements(wheel: Path, extras: str, with_base: bool) -> list[str]:
    """What ``pip install "WHEEL[extras]"`` asks for, from the wheel's own metadata (markers dropped):
    the extras' requirements, and the base ones (numpy) unless the system provides them."""
    import zipfile

    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read(
            next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        ).decode()
    wanted = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.split(":", 1)[1].strip())
            marker = str(req.marker or "")
            if any(f'extra == "{e}"' in marker for e in extras.split(",")) or (
                with_base and "extra ==" not in marker
            ):
                wanted.append(f"{req.name}{req.specifier}")
    return wanted


# The README's device steps, word for word ("On the device"): step 1 on the workstation, step 4 on the
# device, in the directory holding the unpacked bundle. Tests check the README still says them.
README_BUNDLE = (
    "digitkit bundle runs/export --out runs/bundle "
    "--artifact digit_mlp_int8_pixels.tflite --artifact digit_mlp_int8.tflite"
)
README_VERIFY = "digitkit verify --bundle bundle"
# README_VERIFY as a user types it, in /work/readme, beside the command in "$@" (two processes: two
# host cores for the emulator); its output and exit status go to /work/readme.{out,err,rc}.
BESIDE_README = (
    f"(cd /work/readme && {README_VERIFY} >/work/readme.out 2>/work/readme.err; echo $? >/work/readme.rc) & "
    '"$@"; status=$?; wait; exit $status'
)


def readme_bundle(export_dir: Path, work: Path) -> Path:
    """Step 1 as written (in a directory whose runs/export is ``export_dir``), then step 2: the bundle
    unpacked as ``work/readme/bundle``. Returns ``work/readme``."""
    readme = work / "readme"
    (readme / "runs").mkdir(parents=True)
    (readme / "runs" / "export").symlink_to(export_dir)
    made = run_cli(*README_BUNDLE.split()[1:], cwd=readme)
    assert made.returncode == 0, made.stderr
    (readme / "runs" / "export").unlink()
    (readme / "runs" / "bundle").rename(readme / "bundle")
    return readme


def readme_verify_rows(work: Path) -> set[tuple[str, str, str]]:
    """(verdict, file, backend) of each row README_VERIFY printed, after checking it exited 0 and that
    the README still gives both steps."""
    text = " ".join((ROOT / "README.md").read_text().split())
    assert README_BUNDLE in text and README_VERIFY in text, "the README's device steps changed"
    out, rc = (work / "readme.out").read_text(), (work / "readme.rc").read_text().strip()
    assert rc == "0", f"{README_VERIFY}: exit {rc}\n{out}\n{(work / 'readme.err').read_text()}"
    return {tuple(line.split()[:3]) for line in out.splitlines() if line.split()[:1] in (["PASS"], ["FAIL"])}
