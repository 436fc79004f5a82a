"""Issue 16: a second route for ONNX on a 32-bit Raspberry Pi. Debian trixie armhf's own python3-opencv
(4.10, from apt, as a Pi user gets it) runs `digitkit verify` on the int8 ONNX model through the
`opencv` backend, under qemu; the rows must pass and equal the host's OpenCV 4.x rows.

The root file system is trixie armhf with python3-numpy and python3-opencv (about 300 MB as a
tarball, built once in about 3 minutes and cached with the other emulated systems); the bundle's
wheel goes into a --system-site-packages venv, as its README tells a 32-bit Pi user. Verify takes
about 100 s under qemu (the emulator's speed, not a Pi's).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from emulation import aarch64 as emu
from helpers import bundle_verified_on_host, wheel_requirements

pytestmark = [pytest.mark.slow, pytest.mark.emulation]

ARCH = "trixie-armhf-opencv"
ARTIFACT = "digit_mlp_int8.onnx"
emu.TARGETS.setdefault(  # its own root directory: test_trixie.py's armhf system stays as it is
    ARCH,
    replace(
        emu._trixie(
            "armhf",
            ("armv7l", "armv8l"),
            "qemu-arm",
            "armv7l",
            ("python3-numpy", "python3-opencv"),
            "cortex-a7",
            False,
            "arm-linux-gnueabihf",
        ),
        root_name="root-trixie-armhf-opencv",
    ),
)


def test_debian_opencv_on_trixie_armhf_verifies_the_int8_onnx_model(request, tmp_path, figures):
    reason = emu.emulation_unavailable_reason(arch=ARCH)
    if reason:
        pytest.skip(reason)
    export_dir: Path = request.getfixturevalue("export_dir")
    bundle, host_rows = bundle_verified_on_host(export_dir, tmp_path, ["--artifact", ARTIFACT])
    emu.ensure_host_tools(arch=ARCH)
    cache = emu.default_cache_dir()
    root = emu.ensure_rootfs(cache, arch=ARCH)
    wheel = next(bundle.glob("digitkit-*.whl"))
    wheels = emu.download_wheels(
        wheel_requirements(wheel, "cli", with_base=False), cache / "wheels-cp313-armv7l", arch=ARCH
    )
    python = emu.prepare_venv(root, [*wheels, wheel], ["digitkit[cli]"], arch=ARCH)
    out = tmp_path / "out"
    out.mkdir()
    verify = [str(Path(python).with_name("digitkit")), "verify", "--bundle", "/work/bundle"]
    done = emu.run_in_root(
        root,
        [*verify, "--backend", "opencv", "--json", "/work/out/device.json"],
        timeout=1800,
        binds={bundle: "/work/bundle", out: "/work/out"},
        arch=ARCH,
    )
    probe = emu.run_in_root(
        root,
        [python, "-c", "import cv2, platform; print(cv2.__version__, platform.machine())"],
        600,
        arch=ARCH,
    )
    assert emu.mounts_under(root) == [], "mounts left behind under the root file system"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    version, machine = probe.stdout.split()
    assert version.startswith("4.") and machine in ("armv7l", "armv8l")
    (row,) = json.loads((out / "device.json").read_text())["results"]
    host = host_rows[ARTIFACT, "opencv"]
    assert row["passed"] and row["backend"] == "opencv"
    assert (row["accuracy"], row["agreement"]) == (host["accuracy"], host["agreement"])
    figures.append(
        f"trixie armhf, Debian's OpenCV {version}: {ARTIFACT} accuracy {row['accuracy']:.4f}, "
        f"agreement {row['agreement']:.4f} (x86 OpenCV: {host['accuracy']:.4f}, {host['agreement']:.4f})"
    )
