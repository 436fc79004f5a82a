"""Issue 6: the device workflow on aarch64 (Debian bookworm, Python 3.11: Raspberry Pi OS's base),
under qemu user-mode emulation.

The README's steps run word for word: its bundle is made on the host (step 1) and unpacked beside a
JPEG of a test digit; in the emulated root file system step 3 installs the bundle's own digitkit wheel
as written (`python3 -m venv ~/digitkit-env`, the pip line with `[litert,cli,images]`, offline from
aarch64 wheels of numpy, LiteRT, Pillow and Typer downloaded on the host: the chroot needs no network),
and onnxruntime after it; then steps 4-6 after the README's activate line: `digitkit verify --bundle
bundle` re-proves parity there on all 10,000 test images on LiteRT and the numpy backend (`auto`
finds both), `digitkit predict photo.jpg --model bundle/digit_mlp_int8_pixels.tflite` names LiteRT
and the photo's digit, `digitkit bench --bundle bundle` (shorter measurements) a row per artifact and
backend. Beside them `digitkit verify` of the int8 ONNX model on onnxruntime. Accuracies and agreements
must equal the host's exactly. Cold (empty cache: mmdebstrap, venv under
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
    BARE_PATH,
    BESIDE_README,
    README_STEPS,
    bundle_verified_on_host,
    host_predict,
    pin,
    readme_bundle,
    readme_install,
    readme_install_lines,
    readme_photo,
    readme_results,
    run_cli,
    wheel_requirements,
)

pytestmark = [pytest.mark.slow, pytest.mark.emulation]
PINS = [pin("ai-edge-litert"), pin("onnxruntime"), pin("pillow")]  # downloaded with what the extras require
ONNX_INT8 = "digit_mlp_int8.onnx"
README_FILES = ("digit_mlp_int8.tflite", "digit_mlp_int8_pixels.tflite")  # the README's bundle


def test_verify_bundle_on_aarch64_equals_the_host(request, tmp_path, figures):
    reason = emu.emulation_unavailable_reason()
    if reason:
        pytest.skip(reason)
    export_dir: Path = request.getfixturevalue("export_dir")  # trained and exported only when we can run
    _, rows = bundle_verified_on_host(export_dir, tmp_path, ["--artifact", ONNX_INT8])  # in /work/bundle
    readme = readme_bundle(export_dir, tmp_path / "work")  # README steps 1-2, and a photo beside
    label = readme_photo(readme)
    verified = run_cli("verify", "--bundle", readme / "bundle", "--json", tmp_path / "readme.json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    rows |= {
        (r["file"], r["backend"]): r for r in json.loads((tmp_path / "readme.json").read_text())["results"]
    }

    started = time.monotonic()
    emu.ensure_host_tools()
    cache = emu.default_cache_dir()
    root = emu.ensure_rootfs(cache)
    wheel = next((readme / "bundle").glob("digitkit-*.whl"))
    lines = readme_install_lines("venv", readme / "bundle" / "README.md")
    wheels = emu.download_wheels(
        [*wheel_requirements(wheel, "litert,cli,images", with_base=True), *PINS],
        cache / "wheels-cp311-aarch64",
    )
    binds = {tmp_path / "work": "/work"}
    try:
        readme_install(
            emu.run_in_root, emu.target(), root, [*wheels, wheel], lines, binds, more=("onnxruntime",)
        )
    finally:
        assert emu.mounts_under(root) == [], "mounts left behind under the root file system"
    try:
        done = emu.run_in_root(  # steps 4-6 beside the ONNX model's verify
            root,
            [
                "/bin/sh",
                "-c",
                BESIDE_README,
                "sh",
                "/opt/venv/bin/digitkit",
                "verify",
                "--bundle",
                "/work/bundle",
                "--backend",
                "onnxruntime",
                "--json",
                "/work/device.json",
            ],
            timeout=1200,
            binds=binds,
            env={"PATH": BARE_PATH},
        )
        machine = emu.run_in_root(
            root,
            [
                "/opt/venv/bin/python",
                "-c",
                "import platform; print(platform.machine(), platform.python_version())",
            ],
            timeout=120,
        )
    finally:
        assert emu.mounts_under(root) == [], "mounts left behind under the root file system"
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert machine.stdout.split()[0] == "aarch64"
    device_rows = {
        (r["file"], r["backend"]): r
        for r in json.loads((tmp_path / "work" / "device.json").read_text())["results"]
    }
    assert set(device_rows) == {(ONNX_INT8, "onnxruntime")}, sorted(device_rows)
    # The README's steps 4-6 as written, no --backend: LiteRT and the numpy backend, found by `auto`.
    steps = readme_results(tmp_path / "work", README_FILES)
    expected = {(name, backend) for name in README_FILES for backend in ("litert", "numpy")}
    assert set(steps.verify) == expected and steps.bench == expected, (
        sorted(steps.verify),
        sorted(steps.bench),
    )
    figures.append(
        f"aarch64 emulation ({machine.stdout.strip()}, {time.monotonic() - started:.0f} s, the emulator's speed): "
        f"README's steps 3-6 ({'; '.join(README_STEPS.values())}) and digitkit verify of {ONNX_INT8}"
    )
    for key, row in sorted(device_rows.items()):
        figures.append(
            f"  {key[0]} on {key[1]}: aarch64 accuracy {row['accuracy']:.4f}, agreement {row['agreement']:.4f}; "
            f"x86_64 accuracy {rows[key]['accuracy']:.4f}, agreement {rows[key]['agreement']:.4f}"
        )
        assert row["passed"]
        assert row["accuracy"] == rows[key]["accuracy"] and row["agreement"] == rows[key]["agreement"]
        assert row["per_class_accuracy"] == rows[key]["per_class_accuracy"]
    for key, (verdict, accuracy, agreement) in sorted(steps.verify.items()):
        ref = rows[key]
        figures.append(
            f"  {key[0]} on {key[1]} (README's verify): aarch64 accuracy {accuracy}, agreement {agreement}; "
            f"x86_64 accuracy {ref['accuracy']:.4f}, agreement {100 * ref['agreement']:.2f}%"
        )
        assert verdict == "PASS", key
        assert (accuracy, agreement) == (f"{ref['accuracy']:.4f}", f"{100 * ref['agreement']:.2f}%"), key
    # Step 5: the model and LiteRT (`auto`'s choice), then the photo's digit, as on the host.
    assert steps.predict[0] == "Model: bundle/digit_mlp_int8_pixels.tflite (tflite int8-pixels) on litert"
    assert steps.predict[1].split()[:3] == ["photo.jpg", "digit", str(label)], steps.predict
    assert host_predict(readme, "litert")[1].split()[:3] == steps.predict[1].split()[:3]
    figures.append(f"  predict: {' / '.join(steps.predict)}")
    figures.append(
        "  digitkit bench --bundle bundle under qemu (speed and RSS are the emulator's, not a Pi's):"
    )
    figures.extend(
        "  " + line for line in (tmp_path / "work" / "readme-bench.out").read_text().strip().splitlines()
    )
