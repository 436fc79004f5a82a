"""Helpers the tests share (importable as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
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


def pin(name: str) -> str:
    """constraints.txt's line for ``name`` (e.g. "pillow==13.0.0"): what an emulated device downloads."""
    for line in CONSTRAINTS.read_text().splitlines():
        if line.split("==")[0].strip().lower().replace("_", "-") == name:
            return line.strip()
    raise KeyError(f"{name} is not pinned in {CONSTRAINTS}")


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


# The README's device steps, word for word ("On the device"): step 1 on the workstation, steps 3-6 on the
# device, in the directory holding the unpacked bundle. Tests check the README (and the bundle's own
# README) still says them, so a changed command fails them until the emulated devices run the new one.
README_BUNDLE = (
    "digitkit bundle runs/export --out runs/bundle "
    "--artifact digit_mlp_int8_pixels.tflite --artifact digit_mlp_int8.tflite"
)
README_WHEEL = "./bundle/digitkit-0.1.0-py3-none-any.whl"
# Step 3, by platform: "venv" (64-bit Pi OS: PyPI's wheels), "debian" (32-bit trixie, riscv64: Debian's
# numpy and Pillow); bookworm armhf is "debian" with `[tflite,cli]` ("the same lines with").
README_INSTALL = {
    "venv": (
        "python3 -m venv ~/digitkit-env",
        f'~/digitkit-env/bin/pip install "{README_WHEEL}[litert,cli,images]"',
    ),
    "debian": (
        "sudo apt install python3-numpy python3-pil python3-venv",
        "python3 -m venv --system-site-packages ~/digitkit-env",
        f'~/digitkit-env/bin/pip install "{README_WHEEL}[cli]"',
    ),
}
README_TFLITE_EXTRAS = "the same lines with `[tflite,cli]`"
README_ACTIVATE = ". ~/digitkit-env/bin/activate"
README_VERIFY = "digitkit verify --bundle bundle"
README_PREDICT = "digitkit predict photo.jpg --model bundle/digit_mlp_int8_pixels.tflite"
README_BENCH = "digitkit bench --bundle bundle"
# Under qemu, bench's defaults (1 s a measurement, batches 1, 32 and 1000) cost minutes per artifact and
# backend: the README's command with shorter measurements (the README says so).
CHEAP_BENCH = "--seconds 0.05 --batch-sizes 1,32"
README_STEPS = {"verify": README_VERIFY, "predict": README_PREDICT, "bench": f"{README_BENCH} {CHEAP_BENCH}"}
# PATH in the chroot without the venv: `digitkit` must come from the README's activate line.
BARE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Offline pip for the README's install line (the chroot has no network): wheels downloaded on the host.
OFFLINE_PIP = {
    "PIP_NO_INDEX": "1",
    "PIP_FIND_LINKS": "/wheels",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_COMPILE": "0",
}
# The test digit the photo is made from (MNIST test image 0, a 7).
PHOTO_INDEX = 0


def readme_steps(out: str) -> str:
    """Steps 4-6 as a user types them in /work/readme after the activate line, one after the other, each
    one's output and exit status in ``out``/readme-{verify,predict,bench}.{out,err,rc}."""
    lines = [f"cd /work/readme && {README_ACTIVATE} || exit 1"] + [
        f"{command} >{out}/readme-{step}.out 2>{out}/readme-{step}.err; echo $? >{out}/readme-{step}.rc"
        for step, command in README_STEPS.items()
    ]
    return "(" + "; ".join(lines) + ")"


# Steps 4-6 in /work/readme beside the command in "$@" (two processes: two host cores for the emulator);
# outputs in /work (see readme_steps).
BESIDE_README = f"{readme_steps('/work')} & " + '"$@"; status=$?; wait; exit $status'


def _words(path: Path) -> str:
    return " ".join(path.read_text().split())


def _lines(path: Path) -> set[str]:
    """Each line of ``path``, stripped: a command in a code block is a whole line."""
    return {line.strip() for line in path.read_text().splitlines()}


def readme_install_lines(kind: str, bundle_readme: Path, extras: str | None = None) -> tuple[str, ...]:
    """Step 3's lines for ``kind`` (README_INSTALL), ``extras`` replacing `[cli]` where the README says
    "the same lines with" them; checked, whole lines, against the README and the bundle's own README,
    which must also give the activate line and steps 4-6 as lines of their own."""
    lines = README_INSTALL[kind]
    readme, inside = _lines(ROOT / "README.md"), _lines(bundle_readme)
    for line in lines:
        assert line in readme and line in inside, f"the README's install line changed: {line}"
    for line in (README_ACTIVATE, README_VERIFY, README_PREDICT, README_BENCH):
        assert line in inside, f"the bundle's README does not give {line!r} as a line"
    if extras is not None:
        assert README_TFLITE_EXTRAS in _words(ROOT / "README.md") and README_TFLITE_EXTRAS in _words(
            bundle_readme
        ), "the README's bookworm line changed"
        lines = tuple(line.replace("[cli]", f"[{extras}]") for line in lines)
    return lines


def readme_install(
    run, spec, root: Path, wheels: list[Path], lines: tuple[str, ...], binds: dict, more=()
) -> str:
    """Step 3 in the chroot at ``root`` (``run``: the emulation's run_in_root for its architecture). The
    apt line cannot run there (no network, no dpkg database): its packages must be among those the root
    file system was built with (``spec.packages``). The venv line's options must be those /opt/venv was
    made with (``spec.venv_args``), and ~/digitkit-env is that venv. The pip line runs as written, in
    /work/readme, offline from ``wheels``; ``more`` (e.g. onnxruntime, for a check beyond the README's)
    is installed after it. Returns the venv's pip output."""
    import shutil

    for line in lines:
        words = line.split()
        if words[:3] == ["sudo", "apt", "install"]:
            missing = set(words[3:]) - set(spec.packages)
            assert not missing, f"{line}: {sorted(missing)} not in the emulated root file system"
        elif words[1:3] == ["-m", "venv"]:
            assert tuple(words[3:-1]) == tuple(spec.venv_args), (line, spec.venv_args)
    pip = next(line for line in lines if " install " in line and "/pip " in line)
    folder = root / "wheels"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for wheel in wheels:
        shutil.copy2(wheel, folder / Path(wheel).name)
    home = root / "root" / "digitkit-env"  # made here: the extracted root file system has no coreutils
    if not home.is_symlink():
        home.symlink_to("/opt/venv")
    script = pip + (f" && ~/digitkit-env/bin/pip install {' '.join(more)}" if more else "")
    done = run(
        root, ["/bin/sh", "-c", script], timeout=1800, binds=binds, cwd="/work/readme", env=OFFLINE_PIP
    )
    assert done.returncode == 0, (
        f"{script}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


def readme_bundle(export_dir: Path, work: Path) -> Path:
    """Step 1 as written (in a directory whose runs/export is ``export_dir``), then step 2: the bundle
    unpacked as ``work/readme/bundle``. Returns ``work/readme`` (readme_photo adds step 5's photo)."""
    readme = work / "readme"
    (readme / "runs").mkdir(parents=True)
    (readme / "runs" / "export").symlink_to(export_dir)
    made = run_cli(*README_BUNDLE.split()[1:], cwd=readme)
    assert made.returncode == 0, made.stderr
    (readme / "runs" / "export").unlink()
    (readme / "runs" / "bundle").rename(readme / "bundle")
    return readme


def readme_photo(readme: Path) -> int:
    """``readme/photo.jpg``: MNIST test digit PHOTO_INDEX as a photo of dark ink on light paper (224 x 224,
    JPEG quality 85), made with Pillow here; returns its label."""
    from PIL import Image

    from digitkit.toolkit.data import load_mnist_test

    x, y = load_mnist_test(readme / "bundle" / "mnist", download=False)
    digit = 255 - x[PHOTO_INDEX].reshape(28, 28).astype(np.uint8)
    paper = Image.fromarray((digit.astype(np.float32) * 0.85 + 25).astype(np.uint8))  # grey paper, dark ink
    paper.resize((224, 224), Image.BICUBIC).save(readme / "photo.jpg", quality=85)
    return int(y[PHOTO_INDEX])


def host_predict(readme: Path, backend: str) -> list[str]:
    """Step 5 on this machine, in ``readme``, on ``backend``: the lines a device's run is compared with."""
    done = run_cli(*README_PREDICT.split()[1:], "--backend", backend, cwd=readme)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@dataclass(frozen=True)
class ReadmeRun:
    """What steps 4-6 printed on a device (each checked to have exited 0)."""

    verify: dict  # (file, backend): (verdict, accuracy, agreement) as printed
    predict: list  # lines
    bench: set  # (file, backend) of each row


def readme_results(out: Path, files: tuple[str, ...]) -> ReadmeRun:
    """Steps 4-6's outputs in ``out`` (readme_steps), after checking that each exited 0 and that the README
    and ``out``'s bundle README still give them; ``files`` are the bundle's artifacts (bench's rows)."""
    text = _words(ROOT / "README.md")  # the README quotes each command in backticks
    assert f"`{README_BUNDLE}`" in text and f"`{README_ACTIVATE}`" in text, (
        "the README's device steps changed"
    )
    assert f"`{CHEAP_BENCH}`" in text, "the README no longer says how the emulated devices shorten bench"
    for step, command in README_STEPS.items():
        assert f"`{command.replace(f' {CHEAP_BENCH}', '')}`" in text, f"the README's step changed: {command}"
        rc = (out / f"readme-{step}.rc").read_text().strip()
        assert rc == "0", (
            f"{command}: exit {rc}\n{(out / f'readme-{step}.out').read_text()}\n{(out / f'readme-{step}.err').read_text()}"
        )
        assert_no_unexpected_error((out / f"readme-{step}.err").read_text(), command)
    rows = {}
    for line in (out / "readme-verify.out").read_text().splitlines():
        words = line.split()
        if words[:1] in (["PASS"], ["FAIL"]):
            rows[words[1], words[2]] = (words[0], words[3], words[6])
    bench = {
        tuple(line.split()[:2])
        for line in (out / "readme-bench.out").read_text().splitlines()
        if line.split()[:1] and line.split()[0] in files
    }
    return ReadmeRun(rows, (out / "readme-predict.out").read_text().splitlines(), bench)
