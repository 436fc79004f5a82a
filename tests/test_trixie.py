"""Issues 13 and 20: a runtime for every CPU, and the README's device steps as written on each. Debian
trixie (Raspberry Pi OS's current base, Python 3.13) on arm64, armhf and riscv64, under qemu user-mode
emulation.

On the host, the README's step 1 makes its bundle (the int8 and int8-pixels TFLite models), unpacked as
`bundle/` beside `photo.jpg` (an MNIST test digit as dark ink on grey paper, JPEG), and verified here;
a second bundle holds the int8 ONNX model. In each emulated root file system the README's step 3 runs
as the README gives it for that platform (helpers.readme_install: the pip line as written, offline):

- trixie arm64 (64-bit Pi OS): `python3 -m venv ~/digitkit-env`, `pip install "./bundle/digitkit-*.whl
  [litert,cli,images]"` from cp313 aarch64 wheels (numpy, LiteRT 2.3.0, Pillow; onnxruntime 1.32.0 after
  it, for the ONNX model); QEMU_CPU=cortex-a76 with a Pi 5 cpuinfo bound.
- trixie armhf (32-bit Pi OS, the only OS for a Pi Zero): `sudo apt install python3-numpy python3-pil
  python3-venv` (the root file system's packages, with python3-onnxruntime), a venv with
  --system-site-packages, `pip install "./bundle/digitkit-*.whl[cli]"`; QEMU_CPU=cortex-a7.
- trixie riscv64 (any other CPU): the same lines, Debian's numpy and Pillow; qemu's default CPU.

Then, in one run: steps 4-6 as written after `. ~/digitkit-env/bin/activate` (`digitkit verify --bundle
bundle` over all 10,000 test images on every installed backend, which is this test's verify of the
TFLite models; `digitkit predict photo.jpg --model bundle/digit_mlp_int8_pixels.tflite`; `digitkit bench
--bundle bundle` with shorter measurements), then `digitkit verify` of the int8 ONNX model where an ONNX
runtime exists, beside a script saving the probabilities through `digitkit.runtime.load(path,
backend).predict_proba`. Every verify row must pass; the numpy backend's int8 and int8-pixels
probabilities must equal the host's numpy backend's and the host's LiteRT's bit for bit (so its printed
accuracy and agreement equal the host's, and its predict output the host's line for line); for the native
backends (LiteRT on aarch64, onnxruntime) the images and values that differ from x86 are counted,
reported, and must stay within the gates. predict must name the model and the backend `auto` chose and
print the photo's digit; bench a row per artifact and backend. The chroot needs no network. Emulated
speed is the emulator's, never a device's.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from emulation import aarch64 as emu
from helpers import (
    README_PREDICT,
    README_STEPS,
    bundle_verified_on_host,
    host_predict,
    pin,
    readme_bundle,
    readme_install,
    readme_install_lines,
    readme_photo,
    readme_results,
    readme_steps,
    run_cli,
    wheel_requirements,
)

pytestmark = [pytest.mark.slow, pytest.mark.emulation]

INT8, INT8_PIXELS, ONNX_INT8 = (
    "digit_mlp_int8.tflite",
    "digit_mlp_int8_pixels.tflite",
    "digit_mlp_int8.onnx",
)
README_FILES = (INT8, INT8_PIXELS)  # the README's bundle
EXACT = [INT8, INT8_PIXELS]  # the numpy backend must equal x86 bit for bit on these


@dataclass(frozen=True)
class Device:
    name: str  # emulation.aarch64.TARGETS key
    install: str  # helpers.README_INSTALL: the README's step 3 for this platform
    pins: tuple  # versions this test is about, downloaded with what the README's extras require
    more: tuple  # installed after the README's line, for a check beyond the README's (the ONNX model)
    backends: tuple  # what the README's verify and bench must find for the TFLite models, `auto`'s first
    onnx: bool  # an ONNX runtime is there: the int8 ONNX model is verified too
    native: dict  # {artifact: native backend} whose outputs are compared with x86's value by value


# No ONNX runtime exists for riscv64 (the README: the TFLite artifacts run on the numpy backend there).
DEVICES = [
    Device(
        "trixie-arm64",
        "venv",
        (pin("ai-edge-litert"), pin("onnxruntime"), pin("pillow")),
        ("onnxruntime",),
        ("litert", "numpy"),
        True,
        {INT8: "litert", INT8_PIXELS: "litert", ONNX_INT8: "onnxruntime"},
    ),
    Device("trixie-armhf", "debian", (), (), ("numpy",), True, {ONNX_INT8: "onnxruntime"}),
    Device("trixie-riscv64", "debian", (), (), ("numpy",), False, {}),
]

# Run in the chroot: what it is, then probabilities over the 10,000 images through digitkit's API, for
# each "path=backend" on the command line.
DEVICE_SCRIPT = """
import importlib.metadata, json, platform, struct, sys, time
started = time.monotonic()
import numpy
from digitkit.runtime import load
from digitkit.toolkit.data import load_mnist_test

def version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None

info = {"machine": platform.machine(), "python": platform.python_version(), "pointer_bits": 8 * struct.calcsize("P"),
        "numpy": numpy.__version__, "numpy_file": numpy.__file__}
for module in ("onnxruntime", "PIL"):
    try:
        imported = __import__(module)
        info[module], info[module + "_file"] = imported.__version__, imported.__file__
    except ImportError:
        pass
info["litert"] = version("ai-edge-litert")
print(json.dumps(info), flush=True)
x, _ = load_mnist_test("/work/readme/bundle/mnist", download=False)
for job in sys.argv[1:]:
    path, backend = job.split("=")
    model = load(path, backend=backend)
    name = path.rsplit("/", 1)[1]
    numpy.save(f"/work/out/{name}.{backend}.npy", numpy.concatenate([model.predict_proba(x[i:i + 1000]) for i in range(0, len(x), 1000)]))
print(json.dumps({"seconds": time.monotonic() - started}))
"""
# The probabilities, then the ONNX verify in "$@" if any, beside the README's steps 4-6 (two processes,
# so two host cores for the emulator); each one's output and exit status go to /work/out.
SIDE_BY_SIDE = (
    '{ "$1" /work/out/device_script.py $2 >/work/out/probe.out 2>/work/out/probe.err; echo $? >/work/out/probe.rc; '
    'shift 2; if [ $# -gt 0 ]; then "$@" >/work/out/verify.out 2>/work/out/verify.err; echo $? >/work/out/verify.rc; fi; } & '
    f"{readme_steps('/work/out')}; wait"
)


def _probabilities(path: Path, backend: str, x: np.ndarray) -> np.ndarray:
    from digitkit.runtime import load

    model = load(path, backend=backend)
    return np.concatenate([model.predict_proba(x[i : i + 1000]) for i in range(0, len(x), 1000)])


@dataclass(frozen=True)
class Host:
    readme: Path  # the README's bundle as bundle/, and photo.jpg
    onnx_bundle: Path
    rows: dict  # {(file, backend): the host's verify row} of both bundles
    probabilities: dict  # {(file, backend): array}
    label: int  # the photo's digit
    predict: dict  # {backend: the host's step 5 lines}


@pytest.fixture(scope="module")
def trixie_host(request, tmp_path_factory) -> Host:
    """The README's bundle and photo, the ONNX bundle, and the host's figures: made once for the three
    devices."""
    reason = emu.emulation_unavailable_reason(arch="trixie-arm64")
    if reason:
        pytest.skip(reason)
    from digitkit.runtime.backends import BACKENDS
    from digitkit.toolkit.data import load_mnist_test

    assert "numpy" in BACKENDS
    export_dir: Path = request.getfixturevalue("export_dir")  # trained and exported only when we can run
    tmp = tmp_path_factory.mktemp("trixie")
    onnx_bundle, rows = bundle_verified_on_host(export_dir, tmp / "onnx", ["--artifact", ONNX_INT8])
    readme = readme_bundle(export_dir, tmp / "work")
    label = readme_photo(readme)
    verified = run_cli("verify", "--bundle", readme / "bundle", "--json", tmp / "readme.json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    rows |= {(r["file"], r["backend"]): r for r in json.loads((tmp / "readme.json").read_text())["results"]}
    x_test, _ = load_mnist_test(readme / "bundle" / "mnist", download=False)
    host = {(name, "numpy"): _probabilities(readme / "bundle" / name, "numpy", x_test) for name in EXACT}
    for device in DEVICES:
        for name, backend in device.native.items():
            if (name, backend) not in host:
                folder = onnx_bundle if name == ONNX_INT8 else readme / "bundle"
                host[name, backend] = _probabilities(folder / name, backend, x_test)
    predict = {backend: host_predict(readme, backend) for backend in ("litert", "numpy")}
    for backend, lines in predict.items():
        assert lines[1].split()[:3] == ["photo.jpg", "digit", str(label)], (backend, lines)
    return Host(readme, onnx_bundle, rows, host, label, predict)


@pytest.mark.parametrize("device", DEVICES, ids=[d.name for d in DEVICES])
def test_readme_steps_on_trixie(device: Device, trixie_host: Host, tmp_path, figures):
    spec = emu.target(device.name)
    reason = emu.emulation_unavailable_reason(arch=device.name)
    if reason:
        pytest.skip(reason)
    host = trixie_host
    out = tmp_path / "out"
    out.mkdir()
    (out / "device_script.py").write_text(DEVICE_SCRIPT)
    binds = {host.readme: "/work/readme", host.onnx_bundle: "/work/bundle", out: "/work/out"}
    run = partial(emu.run_in_root, arch=device.name)

    started = time.monotonic()
    emu.ensure_host_tools(arch=device.name)
    cache = emu.default_cache_dir()
    root = emu.ensure_rootfs(cache, arch=device.name)
    wheel = next((host.readme / "bundle").glob("digitkit-*.whl"))
    lines = readme_install_lines(device.install, host.readme / "bundle" / "README.md")
    extras = re.search(r"\[([^\]]+)\]", lines[-1]).group(1)
    debian_numpy = "--system-site-packages" in spec.venv_args
    requirements = [*wheel_requirements(wheel, extras, with_base=not debian_numpy), *device.pins]
    wheels = emu.download_wheels(requirements, cache / f"wheels-cp313-{spec.wheel_arch}", arch=device.name)
    try:
        readme_install(run, spec, root, [*wheels, wheel], lines, binds, more=device.more)
    finally:
        assert emu.mounts_under(root) == [], "mounts left behind under the root file system"
    setup_seconds = time.monotonic() - started
    jobs = " ".join(
        [f"/work/readme/bundle/{name}=numpy" for name in EXACT]
        + [
            f"/work/{'bundle' if name == ONNX_INT8 else 'readme/bundle'}/{name}={backend}"
            for name, backend in device.native.items()
        ]
    )
    # Beyond the README: the int8 ONNX model where an ONNX runtime is installed.
    onnx_verify = [
        "/opt/venv/bin/digitkit",
        "verify",
        "--bundle",
        "/work/bundle",
        "--json",
        "/work/out/device.json",
    ]
    try:
        run_started = time.monotonic()
        done = run(
            root,
            [
                "/bin/sh",
                "-c",
                SIDE_BY_SIDE,
                "sh",
                "/opt/venv/bin/python",
                jobs,
                *(onnx_verify if device.onnx else []),
            ],
            timeout=2400,
            binds=binds,
            env={"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        run_seconds = time.monotonic() - run_started
    finally:
        assert emu.mounts_under(root) == [], "mounts left behind under the root file system"
    outputs = {
        name: (out / name).read_text() if (out / name).exists() else ""
        for name in ("probe.out", "probe.err", "verify.out", "verify.err")
    }
    assert done.returncode == 0 and (out / "probe.rc").read_text().strip() == "0", (
        f"exit {done.returncode}\n{done.stderr[-2000:]}\nprobe: {outputs['probe.out']}\n{outputs['probe.err'][-3000:]}"
    )
    info, probe_seconds = (
        json.loads(outputs["probe.out"].splitlines()[0]),
        json.loads(outputs["probe.out"].splitlines()[-1])["seconds"],
    )
    steps = readme_results(out, README_FILES)

    # What runs there: the suite's Python, the numpy and Pillow the README's install gives, the runtimes.
    assert info["machine"] in spec.machines, info
    assert info["python"].startswith("3.13."), info
    if debian_numpy:  # Debian's numpy (2.2 in trixie) and Pillow
        assert info["numpy_file"].startswith("/usr/lib/python3/dist-packages/") and info["numpy"].startswith(
            "2.2."
        ), info
        assert info["PIL_file"].startswith("/usr/lib/python3/dist-packages/"), info
    else:  # PyPI's numpy and Pillow wheels, in the venv
        assert info["numpy_file"].startswith("/opt/venv/") and info["PIL_file"].startswith("/opt/venv/"), info

    # Step 4: `digitkit verify --bundle bundle` found every installed backend by itself; every row passes.
    expected = {(f, b) for f in README_FILES for b in device.backends}
    assert set(steps.verify) == expected, sorted(steps.verify)
    device_rows = {}
    if device.onnx:
        assert (out / "verify.rc").read_text().strip() == "0", (
            f"verify:\n{outputs['verify.out']}\n{outputs['verify.err'][-3000:]}"
        )
        report = json.loads((out / "device.json").read_text())
        assert report["host"]["machine"] == info["machine"]
        device_rows = {(r["file"], r["backend"]): r for r in report["results"]}
        assert set(device_rows) == {(ONNX_INT8, "onnxruntime")}, sorted(device_rows)

    # Exactness: the numpy backend's int8 probabilities equal x86's (numpy and LiteRT) bit for bit.
    exact = []
    for name in EXACT:
        got, ref = np.load(out / f"{name}.numpy.npy"), host.probabilities[name, "numpy"]
        assert got.shape == ref.shape == (10_000, 10)
        assert np.array_equal(ref, host.probabilities[name, "litert"]), (
            f"{name}: host numpy backend != host LiteRT"
        )
        assert np.array_equal(got, ref), (
            f"{name}: {spec.label} numpy differs from x86 on {int(np.any(got != ref, axis=1).sum())} images"
        )
        exact.append(name)

    # Native backends: count what differs from x86; each must stay within verify's gates.
    from digitkit.toolkit.verification import Gates

    gates = Gates()
    native = []
    for name, backend in device.native.items():
        got, ref = np.load(out / f"{name}.{backend}.npy"), host.probabilities[name, backend]
        assert got.shape == ref.shape == (10_000, 10)
        images = int(np.any(got != ref, axis=1).sum())
        values = int((got != ref).sum())
        top1 = int((got.argmax(axis=1) != ref.argmax(axis=1)).sum())
        diff = float(np.abs(got.astype(np.float64) - ref).max())
        delta = (
            f"max {int(np.rint(diff * 256))} steps of 1/256"
            if name.endswith(".tflite")
            else f"max |Δp| {diff:.1e}"
        )
        native.append(f"{name} {backend}: {images} images / {values} values differ ({delta}), {top1} top-1")
        assert 1 - top1 / len(got) >= gates.min_agreement, native[-1]
        if backend == "litert":  # README: "differs from x86 by one step on 8 images, no top-1 change"
            assert top1 == 0 and np.rint(diff * 256) <= 1, native[-1]

    # The verify rows against the host's: the numpy backend's to the last printed digit (bit-exact
    # outputs), the native backends' within the gates.
    for (name, backend), (verdict, accuracy, agreement) in sorted(steps.verify.items()):
        ref = host.rows[name, backend]
        assert verdict == "PASS", (name, backend)
        if backend == "numpy":
            assert (accuracy, agreement) == (f"{ref['accuracy']:.4f}", f"{100 * ref['agreement']:.2f}%"), (
                name,
                accuracy,
                agreement,
                ref["accuracy"],
            )
        else:
            assert abs(float(accuracy) - ref["accuracy"]) <= 1 - gates.min_agreement, (name, backend)
    for key, row in device_rows.items():
        assert row["passed"], (key, row["failures"])
        assert abs(row["accuracy"] - host.rows[key]["accuracy"]) <= 1 - gates.min_agreement, key

    # Step 5: the model and the backend `auto` chose, then the photo's digit; on the numpy backend the
    # host's lines exactly.
    auto = device.backends[0]
    model = README_PREDICT.split("--model ")[1]
    assert steps.predict[0] == f"Model: {model} (tflite int8-pixels) on {auto}", steps.predict
    assert steps.predict[1].split()[:3] == ["photo.jpg", "digit", str(host.label)], steps.predict
    if auto == "numpy":
        assert steps.predict == host.predict["numpy"], (steps.predict, host.predict["numpy"])
    # Step 6: a row per artifact and backend.
    assert steps.bench == expected, sorted(steps.bench)

    versions = ", ".join(
        [
            f"{spec.label}: {info['machine']} Python {info['python']}",
            f"numpy {info['numpy']} ({'Debian' if info['numpy_file'].startswith('/usr/lib') else 'PyPI'})",
            f"Pillow {info['PIL']} ({'Debian' if info['PIL_file'].startswith('/usr/lib') else 'PyPI'})",
        ]
        + ([f"LiteRT {info['litert']}"] if info.get("litert") else [])
        + (
            [
                f"onnxruntime {info['onnxruntime']} ({'Debian' if info['onnxruntime_file'].startswith('/usr/lib') else 'PyPI'})"
            ]
            if info.get("onnxruntime")
            else []
        )
        + [f"QEMU_CPU {spec.cpu or 'default'}"]
    )
    accuracies = "; ".join(
        f"{f} {b} {acc} (x86 {host.rows[f, b]['accuracy']:.4f})"
        for (f, b), (_, acc, _) in sorted(steps.verify.items())
    ) + "".join(
        f"; {f} {b} {r['accuracy']:.4f} (x86 {host.rows[f, b]['accuracy']:.4f})"
        for (f, b), r in sorted(device_rows.items())
    )
    figures.append(
        f"{versions}; emulated {time.monotonic() - started:.0f} s (set-up with the README's install {setup_seconds:.0f}, "
        f"steps 4-6 beside the probabilities and the ONNX verify {run_seconds:.0f}, probabilities alone {probe_seconds:.0f}; "
        f"the emulator's speed): README's `{README_STEPS['verify']}` {len(steps.verify)} rows pass"
        + (f", ONNX verify {len(device_rows)} row" if device_rows else "")
        + f" [{accuracies}]; numpy == x86 bit for bit on {', '.join(exact)} (10,000 images)"
        + (f"; vs x86: {'; '.join(native)}" if native else "")
        + f"; predict: {steps.predict[0]} / {steps.predict[1]}; bench rows {sorted(steps.bench)}"
    )
