"""Issue 13: a runtime for every CPU. Debian trixie (Raspberry Pi OS's current base, Python 3.13)
on arm64, armhf and riscv64, under qemu user-mode emulation.

One bundle (int8 and int8-pixels TFLite for the exactness claim, fp32 TFLite, int8 ONNX) is made and
verified on the host once per module. In each emulated root file system the bundle's digitkit wheel
is installed as the bundle's README tells a user of that platform:

- trixie arm64 (64-bit Pi OS): a plain venv, `pip install "./digitkit-*.whl[litert,onnxruntime,cli]"`
  from cp313 aarch64 wheels of numpy, LiteRT 2.3.0 and onnxruntime 1.32.0 (PyPI, downloaded on the
  host); QEMU_CPU=cortex-a76 with a Pi 5 cpuinfo bound.
- trixie armhf (32-bit Pi OS, the only OS for a Pi Zero): Debian's python3-numpy and
  python3-onnxruntime, a venv with --system-site-packages, `pip install "./digitkit-*.whl[cli]"`;
  QEMU_CPU=cortex-a7.
- trixie riscv64 (any other CPU): Debian's python3-numpy, the same venv and install; qemu's default CPU.

Then the real CLI, `digitkit verify --bundle /work/bundle --json ...`, runs there over all 10,000 test
images on every installed backend (riscv64: the TFLite artifacts only, as no ONNX runtime exists
there). Every row must pass verify's gates. The numpy backend's int8 and int8-pixels probabilities,
saved in the chroot through `digitkit.runtime.load(path, backend="numpy").predict_proba`, must equal
the host's numpy backend's and the host's LiteRT's bit for bit; for the native backends (LiteRT on
aarch64, onnxruntime) the images and values that differ from x86 are counted, reported, and must stay
within the gates. The chroot needs no network. Emulated speed is the emulator's, never a device's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from emulation import aarch64 as emu
from helpers import bundle_verified_on_host, wheel_requirements

pytestmark = [pytest.mark.slow, pytest.mark.emulation]

INT8, INT8_PIXELS, FP32, ONNX_INT8 = (
    "digit_mlp_int8.tflite",
    "digit_mlp_int8_pixels.tflite",
    "digit_mlp_fp32.tflite",
    "digit_mlp_int8.onnx",
)
ARTIFACTS = [INT8, INT8_PIXELS, FP32, ONNX_INT8]
EXACT = [INT8, INT8_PIXELS]  # the numpy backend must equal x86 bit for bit on these


@dataclass(frozen=True)
class Device:
    name: str  # emulation.aarch64.TARGETS key
    pins: tuple  # versions this test is about, downloaded with what the wheel's extras require
    extras: str  # what the bundle README tells this platform's user to install
    artifacts: tuple  # what `digitkit verify --artifact ...` runs there, on every installed backend
    backends: dict  # {format: the backends verify must find installed}
    native: dict  # {artifact: native backend} whose outputs are compared with x86's value by value


# fp32 TFLite is bundled (the host verifies it) but not verified under qemu: LiteRT about 60 s and
# numpy about 25 s on arm64, a float numpy pass 1.5-3 minutes on armhf and riscv64, for outputs that
# are not compared value by value anyway (float results differ from x86's in the last bits, 1.2e-6);
# bookworm armhf (test_armhf.py) verifies fp32 under qemu, on tflite-runtime.
# No ONNX runtime exists for riscv64 (the bundle README says: verify the TFLite files there).
DEVICES = [
    Device(
        "trixie-arm64",
        ("ai-edge-litert==2.3.0", "onnxruntime==1.32.0"),
        "litert,onnxruntime,cli",
        (INT8, INT8_PIXELS, ONNX_INT8),
        {"tflite": ("litert", "numpy"), "onnx": ("onnxruntime",)},
        {INT8: "litert", INT8_PIXELS: "litert", ONNX_INT8: "onnxruntime"},
    ),
    Device(
        "trixie-armhf",
        (),
        "cli",
        (INT8, INT8_PIXELS, ONNX_INT8),
        {"tflite": ("numpy",), "onnx": ("onnxruntime",)},
        {ONNX_INT8: "onnxruntime"},
    ),
    Device("trixie-riscv64", (), "cli", (INT8, INT8_PIXELS), {"tflite": ("numpy",)}, {}),
]

# Run in the chroot: what it is, then probabilities over the 10,000 images through digitkit's API:
# the numpy backend on EXACT, and each native backend named on the command line ("file=backend").
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
try:
    import onnxruntime
    info["onnxruntime"], info["onnxruntime_file"] = onnxruntime.__version__, onnxruntime.__file__
except ImportError:
    pass
info["litert"] = version("ai-edge-litert")
print(json.dumps(info), flush=True)
x, _ = load_mnist_test("/work/bundle/mnist", download=False)
for job in sys.argv[1:]:
    name, backend = job.split("=")
    model = load("/work/bundle/" + name, backend=backend)
    numpy.save(f"/work/out/{name}.{backend}.npy", numpy.concatenate([model.predict_proba(x[i:i + 1000]) for i in range(0, len(x), 1000)]))
print(json.dumps({"seconds": time.monotonic() - started}))
"""
# The probabilities and `digitkit verify` run side by side (two processes, so two host cores for
# the emulator: about half the wall time); each one's output and exit status go to /work/out.
SIDE_BY_SIDE = (
    '"$1" /work/out/device_script.py $2 >/work/out/probe.out 2>/work/out/probe.err & probe=$!; shift 2; '
    '"$@" >/work/out/verify.out 2>/work/out/verify.err; echo $? >/work/out/verify.rc; wait $probe; echo $? >/work/out/probe.rc'
)


def _probabilities(path: Path, backend: str, x: np.ndarray) -> np.ndarray:
    from digitkit.runtime import load

    model = load(path, backend=backend)
    return np.concatenate([model.predict_proba(x[i : i + 1000]) for i in range(0, len(x), 1000)])


@pytest.fixture(scope="module")
def trixie_bundle(request, tmp_path_factory):
    """The bundle, the host's verify rows {(file, backend): row}, and the host's probabilities
    {(file, backend): array}: made once for the three devices."""
    reason = emu.emulation_unavailable_reason(arch="trixie-arm64")
    if reason:
        pytest.skip(reason)
    from digitkit.runtime.backends import BACKENDS
    from digitkit.toolkit.data import load_mnist_test

    assert "numpy" in BACKENDS
    export_dir: Path = request.getfixturevalue("export_dir")  # trained and exported only when we can run
    bundle, rows = bundle_verified_on_host(
        export_dir, tmp_path_factory.mktemp("trixie"), [a for f in ARTIFACTS for a in ("--artifact", f)]
    )
    x_test, _ = load_mnist_test(bundle / "mnist", download=False)
    host = {(name, "numpy"): _probabilities(bundle / name, "numpy", x_test) for name in EXACT}
    for device in DEVICES:
        for name, backend in device.native.items():
            if (name, backend) not in host:
                host[name, backend] = _probabilities(bundle / name, backend, x_test)
    return bundle, rows, host


@pytest.mark.parametrize("device", DEVICES, ids=[d.name for d in DEVICES])
def test_verify_bundle_on_trixie(device: Device, trixie_bundle, tmp_path, figures):
    spec = emu.target(device.name)
    reason = emu.emulation_unavailable_reason(arch=device.name)
    if reason:
        pytest.skip(reason)
    bundle, host_rows, host = trixie_bundle
    out = tmp_path / "out"
    out.mkdir()
    (out / "device_script.py").write_text(DEVICE_SCRIPT)
    binds = {bundle: "/work/bundle", out: "/work/out"}

    started = time.monotonic()
    emu.ensure_host_tools(arch=device.name)
    cache = emu.default_cache_dir()
    root = emu.ensure_rootfs(cache, arch=device.name)
    wheel = next(bundle.glob("digitkit-*.whl"))
    debian_numpy = "--system-site-packages" in spec.venv_args
    requirements = [*wheel_requirements(wheel, device.extras, with_base=not debian_numpy), *device.pins]
    wheels = emu.download_wheels(requirements, cache / f"wheels-cp313-{spec.wheel_arch}", arch=device.name)
    python = emu.prepare_venv(root, [*wheels, wheel], [f"digitkit[{device.extras}]"], arch=device.name)
    digitkit = str(Path(python).with_name("digitkit"))
    setup_seconds = time.monotonic() - started
    jobs = " ".join(
        [f"{name}=numpy" for name in EXACT] + [f"{name}={backend}" for name, backend in device.native.items()]
    )
    verify = [
        digitkit,
        "verify",
        "--bundle",
        "/work/bundle",
        *[a for f in device.artifacts for a in ("--artifact", f)],
        "--json",
        "/work/out/device.json",
    ]
    try:
        run_started = time.monotonic()
        done = emu.run_in_root(
            root,
            ["/bin/sh", "-c", SIDE_BY_SIDE, "sh", python, jobs, *verify],
            timeout=2400,
            binds=binds,
            arch=device.name,
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
    assert (out / "verify.rc").read_text().strip() == "0", (
        f"verify:\n{outputs['verify.out']}\n{outputs['verify.err'][-3000:]}"
    )
    info, probe_seconds = (
        json.loads(outputs["probe.out"].splitlines()[0]),
        json.loads(outputs["probe.out"].splitlines()[-1])["seconds"],
    )
    report = json.loads((out / "device.json").read_text())
    device_rows = {(r["file"], r["backend"]): r for r in report["results"]}

    # What runs there: the suite's Python, the numpy the README's install gives, the native runtimes.
    assert info["machine"] in spec.machines and report["host"]["machine"] == info["machine"], info
    assert info["python"].startswith("3.13."), info
    if debian_numpy:  # Debian's numpy (2.2 in trixie)
        assert info["numpy_file"].startswith("/usr/lib/python3/dist-packages/") and info["numpy"].startswith(
            "2.2."
        ), info
    else:  # PyPI's numpy wheel, in the venv
        assert info["numpy_file"].startswith("/opt/venv/"), info
    backends = sorted({b for _, b in device_rows})
    expected = {(f, b) for f in device.artifacts for b in device.backends[f.rsplit(".", 1)[1]]}
    assert set(device_rows) == expected, sorted(device_rows)
    assert set(device_rows) <= set(host_rows), sorted(set(device_rows) - set(host_rows))

    # Exactness: the numpy backend's int8 probabilities equal x86's (numpy and LiteRT) bit for bit.
    exact = []
    for name in EXACT:
        got = np.load(out / f"{name}.numpy.npy")
        assert got.shape == host[name, "numpy"].shape == (10_000, 10)
        assert np.array_equal(host[name, "numpy"], host[name, "litert"]), (
            f"{name}: host numpy backend != host LiteRT"
        )
        assert np.array_equal(got, host[name, "numpy"]), (
            f"{name}: {spec.label} numpy differs from x86 on {int(np.any(got != host[name, 'numpy'], axis=1).sum())} images"
        )
        exact.append(name)

    # Native backends: count what differs from x86; each must stay within verify's gates.
    from digitkit.toolkit.verification import Gates

    gates = Gates()
    native = []
    for name, backend in device.native.items():
        got, ref = np.load(out / f"{name}.{backend}.npy"), host[name, backend]
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

    for key, row in sorted(device_rows.items()):
        assert row["passed"], (key, row["failures"])
        ref = host_rows[key]
        if key[1] == "numpy" and key[0] in EXACT:  # bit-exact outputs: the same figures to the last digit
            assert (row["accuracy"], row["agreement"], row["per_class_accuracy"]) == (
                ref["accuracy"],
                ref["agreement"],
                ref["per_class_accuracy"],
            )
        else:
            assert abs(row["accuracy"] - ref["accuracy"]) <= 1 - gates.min_agreement, key

    versions = ", ".join(
        [
            f"{spec.label}: {info['machine']} Python {info['python']}",
            f"numpy {info['numpy']} ({'Debian' if info['numpy_file'].startswith('/usr/lib') else 'PyPI'})",
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
        f"{f} {b} {r['accuracy']:.4f} (x86 {host_rows[f, b]['accuracy']:.4f})"
        for (f, b), r in sorted(device_rows.items())
    )
    figures.append(
        f"{versions}; emulated {time.monotonic() - started:.0f} s (set-up {setup_seconds:.0f}, verify beside the probabilities "
        f"{run_seconds:.0f}, probabilities alone {probe_seconds:.0f}; the emulator's speed): verify {len(device_rows)} rows pass [{accuracies}]; "
        f"numpy == x86 bit for bit on {', '.join(exact)} (10,000 images)"
        + (f"; vs x86: {'; '.join(native)}" if native else "")
        + f"; backends {', '.join(backends)}"
    )
