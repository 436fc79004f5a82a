"""Issue 6: the device workflow on aarch64 (Debian bookworm, Python 3.11: Raspberry Pi OS's base),
under qemu user-mode emulation.

A bundle is made on the host; in the emulated root file system the bundle's own digitkit wheel is
installed with aarch64 wheels of numpy, LiteRT, onnxruntime and Typer (downloaded on the host: the
chroot needs no network), and `digitkit verify --bundle` re-proves parity there on all 10,000 test
images. Its accuracies must equal the host's exactly. Cold (empty cache: mmdebstrap, venv under
qemu, wheels): about a minute of emulation; warm (cached root file system and wheels): about 30 s.
Skips, saying why, where emulation cannot run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from emulation import aarch64 as emu
from helpers import (
    BESIDE_README,
    README_VERIFY,
    bundle_verified_on_host,
    readme_bundle,
    readme_verify_rows,
    wheel_requirements,
)

pytestmark = [pytest.mark.slow, pytest.mark.emulation]
EXTRAS = "litert,onnxruntime,cli"
PINS = ["ai-edge-litert==2.3.0", "onnxruntime==1.32.0"]  # downloaded with what the wheel's metadata requires
# The native runtimes this test is about. The numpy backend (installed wherever numpy is, so run by
# default too) is checked on trixie's three CPUs by test_trixie.py; left out here, it would add about
# 2 minutes of qemu to this test.
BACKENDS = ["litert", "onnxruntime"]


def test_verify_bundle_on_aarch64_equals_the_host(request, tmp_path, figures):
    reason = emu.emulation_unavailable_reason()
    if reason:
        pytest.skip(reason)
    export_dir: Path = request.getfixturevalue("export_dir")  # trained and exported only when we can run
    bundle, rows = bundle_verified_on_host(export_dir, tmp_path, ["--mode", "int8", "--mode", "int8-pixels"])
    host_rows = {key: row for key, row in rows.items() if key[1] in BACKENDS}

    started = time.monotonic()
    emu.ensure_host_tools()
    cache = emu.default_cache_dir()
    root = emu.ensure_rootfs(cache)
    wheel = next(bundle.glob("digitkit-*.whl"))
    wheels = emu.download_wheels(
        [*wheel_requirements(wheel, EXTRAS, with_base=True), *PINS], cache / "wheels-cp311-aarch64"
    )
    python = emu.prepare_venv(root, [*wheels, wheel], [f"digitkit[{EXTRAS}]"])
    digitkit = str(Path(python).with_name("digitkit"))
    readme_bundle(export_dir, tmp_path / "work")  # README steps 1-2; step 4 runs beside the verify below
    try:
        done = emu.run_in_root(
            root,
            [
                "/bin/sh",
                "-c",
                BESIDE_README,
                "sh",
                digitkit,
                "verify",
                "--bundle",
                "/work/bundle",
                *[a for b in BACKENDS for a in ("--backend", b)],
                "--json",
                "/work/device.json",
            ],
            timeout=1200,
            binds={tmp_path / "work": "/work"},
        )
        bench = emu.run_in_root(
            root,
            [digitkit, "bench", "--bundle", "/work/bundle", "--seconds", "0.05", "--batch-sizes", "1,100"],
            timeout=600,
            binds={tmp_path / "work": "/work"},
        )
        machine = emu.run_in_root(
            root,
            [python, "-c", "import platform; print(platform.machine(), platform.python_version())"],
            timeout=120,
        )
    finally:
        assert emu.mounts_under(root) == [], "mounts left behind under the root file system"
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert bench.returncode == 0, bench.stderr
    assert machine.stdout.split()[0] == "aarch64"
    device_rows = {
        (r["file"], r["backend"]): r
        for r in json.loads((tmp_path / "work" / "device.json").read_text())["results"]
    }
    assert (
        set(device_rows)
        == set(host_rows)
        == {
            ("digit_mlp_int8.tflite", "litert"),
            ("digit_mlp_int8_pixels.tflite", "litert"),
            ("digit_mlp_int8.onnx", "onnxruntime"),
        }
    )
    figures.append(
        f"aarch64 emulation ({machine.stdout.strip()}, {time.monotonic() - started:.0f} s): digitkit verify --bundle"
    )
    for key, row in sorted(device_rows.items()):
        figures.append(
            f"  {key[0]} on {key[1]}: aarch64 accuracy {row['accuracy']:.4f}, agreement {row['agreement']:.4f}; "
            f"x86_64 accuracy {host_rows[key]['accuracy']:.4f}, agreement {host_rows[key]['agreement']:.4f}"
        )
        assert row["passed"]
        assert (
            row["accuracy"] == host_rows[key]["accuracy"] and row["agreement"] == host_rows[key]["agreement"]
        )
        assert row["per_class_accuracy"] == host_rows[key]["per_class_accuracy"]
    # The README's step 4 as written, no --backend: LiteRT and the numpy backend, found by `auto`.
    rows = readme_verify_rows(tmp_path / "work")
    names = ("digit_mlp_int8.tflite", "digit_mlp_int8_pixels.tflite")
    assert rows == {("PASS", name, backend) for name in names for backend in ("litert", "numpy")}, rows
    figures.append(f"  aarch64, README as written ({README_VERIFY}): {sorted(rows)}")
    figures.append("  digitkit bench --bundle under qemu (speed and RSS are the emulator's, not a Pi's):")
    figures.extend("  " + line for line in bench.stdout.strip().splitlines())
