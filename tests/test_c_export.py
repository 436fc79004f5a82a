"""`digitkit export --c`: the generated C99 compiles strictly with gcc and clang, equals the numpy
backend (itself bit-exact with LiteRT x86) on all 10,000 test images on the host, equals numpy-micro
(TFLite Micro) in its second rounding mode, and gives the same bytes on emulated Cortex-M3 (no FPU),
Cortex-M4F, Cortex-M7 and Cortex-M33 (Secure, mps2-an505) under qemu-system-arm, within 1.5 M
instructions per inference. Toolchains come from Debian (tests/cortex_m/toolchain.py); a test skips,
saying why, only where they cannot be installed (no root, no apt-get)."""

from __future__ import annotations

import subprocess
import time
import warnings

import numpy as np
import pytest
from cortex_m import run as cm
from cortex_m import toolchain
from helpers import ROOT, run_cli

from digitkit.export.c_source import generate
from digitkit.runtime import load, read_manifest
from digitkit.runtime.errors import InputError
from digitkit.toolkit.verification import plan

pytestmark = pytest.mark.slow
STRICT = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"]


def raw(model, images: np.ndarray) -> np.ndarray:
    """The model's own int8 output for uint8 images (what the C writes), in batches of 1000."""
    return np.concatenate(
        [model._run_batch(images[i : i + 1000]).copy() for i in range(0, len(images), 1000)]
    )


@pytest.fixture(scope="module")
def images(mnist_test) -> np.ndarray:
    return np.ascontiguousarray(mnist_test[0].reshape(-1, 784))


@pytest.fixture(scope="module")
def host_compilers() -> list[str]:
    reason = toolchain.unavailable_reason(toolchain.HOST_TOOLS)
    if reason is None:
        toolchain.ensure_packages(toolchain.HOST_TOOLS)
    return [cc for cc in toolchain.HOST_TOOLS if toolchain.missing_packages({cc: cc}) == []]


@pytest.fixture(scope="module")
def c_outputs(export_dir, images, figures) -> np.ndarray:
    model = load(export_dir / "digit_mlp_int8.c")
    assert model.backend == "c"
    started = time.perf_counter()
    out = raw(model, images)
    figures.append(
        f"C export on the host (c backend, cc -O2): {1e6 * (time.perf_counter() - started) / len(images):.1f} µs/image over 10,000 (batch 1000)"
    )
    return out


def test_manifest_records_the_c_files_and_what_they_equal(export_dir):
    manifest = read_manifest(export_dir)
    entry = manifest.entry_for("digit_mlp_int8.c")
    assert entry is not None and entry.format == "c" and entry.c is not None
    assert entry.c.rounding == "litert" and "XNNPACK" in entry.c.reference
    assert entry.c.model == next(
        type(entry.c.model)(e.file, e.sha256) for e in manifest.artifacts if e.file == "digit_mlp_int8.tflite"
    )
    paths = manifest.check_companions(entry)  # header and TFLite Micro array, hashes checked
    assert [p.name for p in paths] == [
        "digit_mlp_int8.h",
        "digit_mlp_int8_tflite.c",
        "digit_mlp_int8_tflite.h",
    ]
    header = (export_dir / "digit_mlp_int8.h").read_text()
    assert header in (export_dir / "digit_mlp_int8.c").read_text()  # the amalgamation carries it verbatim
    assert "NOT reentrant" in header and '"litert"' in header
    assert entry.c.flash_bytes < 700_000 and entry.c.ram_bytes <= 4096
    array = (export_dir / "digit_mlp_int8_tflite.c").read_text()
    body = array[array.index("= {") + 3 : array.index("};")]
    data = bytes(int(v, 16) for v in body.replace("\n", "").split(","))
    assert data == (export_dir / "digit_mlp_int8.tflite").read_bytes()
    tflm = entry.c.tflm
    assert tflm is not None
    if tflm.arena_min_bytes is not None:  # measured where tflite-micro is installed
        assert 8_000 < tflm.arena_min_bytes < tflm.arena_bytes <= tflm.arena_min_bytes + 1040
        assert f"ARENA_BYTES {tflm.arena_bytes}" in (export_dir / "digit_mlp_int8_tflite.h").read_text()


def test_host_compilers_build_it_warning_free(export_dir, host_compilers, tmp_path, images, c_outputs):
    if not host_compilers:
        pytest.skip(toolchain.unavailable_reason(toolchain.HOST_TOOLS) or "no host C compiler")
    for cc in host_compilers:
        for extra in ([], ["-DDIGIT_MLP_INT8_SCRATCH_ON_STACK"]):
            subprocess.run(
                [
                    cc,
                    *STRICT,
                    "-O2",
                    *extra,
                    "-c",
                    str(export_dir / "digit_mlp_int8.c"),
                    "-o",
                    str(tmp_path / "m.o"),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
        program = tmp_path / f"digit-{cc}"
        subprocess.run(
            [cc, *STRICT, "-O2", "-I", str(export_dir), str(ROOT / "examples" / "mcu" / "main.c"),
             str(export_dir / "digit_mlp_int8.c"), "-o", str(program)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        (tmp_path / "seven.raw").write_bytes(images[0].tobytes())
        said = subprocess.run(
            [str(program), str(tmp_path / "seven.raw")], capture_output=True, text=True, check=True
        )
        assert said.stdout.startswith(f"digit {int(c_outputs[0].argmax())}\n")


def test_c_is_bit_exact_with_litert_on_all_10000(export_dir, images, c_outputs, figures):
    reference = raw(load(export_dir / "digit_mlp_int8.tflite", backend="numpy"), images)
    assert np.array_equal(c_outputs, reference), (
        f"{int((c_outputs != reference).any(axis=1).sum())} images differ"
    )
    try:
        litert = raw(load(export_dir / "digit_mlp_int8.tflite", backend="litert"), images)
    except Exception as exc:  # LiteRT missing: numpy is the stand-in, itself proven against LiteRT
        figures.append(f"C export: LiteRT not loadable here ({exc}); compared with the numpy backend only")
    else:
        assert np.array_equal(c_outputs, litert)
    figures.append(
        "C export (litert rounding): bit-identical int8 outputs to LiteRT on 10,000 of 10,000 images"
    )


def test_tflite_micro_rounding_equals_numpy_micro_on_all_10000(export_dir, images, tmp_path, figures):
    model = (export_dir / "digit_mlp_int8.tflite").read_bytes()
    _, source, _ = generate(model, "digit_mlp_int8", "tflite-micro")
    (tmp_path / "digit_mlp_int8.c").write_text(source)
    ours = raw(load(tmp_path / "digit_mlp_int8.c", backend="c"), images)
    reference = raw(load(export_dir / "digit_mlp_int8.tflite", backend="numpy-micro"), images)
    assert np.array_equal(ours, reference), f"{int((ours != reference).any(axis=1).sum())} images differ"
    litert = raw(load(export_dir / "digit_mlp_int8.tflite", backend="numpy"), images)
    differ = int((ours != litert).any(axis=1).sum())
    figures.append(
        f"C export (tflite-micro rounding): equals numpy-micro on 10,000; differs from LiteRT on {differ}"
    )


@pytest.mark.parametrize(
    ("core", "count"),
    [("cortex-m3", 10_000), ("cortex-m4f", 10_000), ("cortex-m7", 10_000), ("cortex-m33", 10_000)],
)
def test_cortex_m_gives_the_host_bytes(export_dir, images, c_outputs, core, count, tmp_path, figures):
    reason = toolchain.arm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Cortex-M emulation: {reason}")
    toolchain.ensure_arm_tools()
    result = cm.build_and_run(export_dir, tmp_path, core, images[:count])
    assert result.outputs.shape == (count, 10)
    differ = int((result.outputs != c_outputs[:count]).any(axis=1).sum())
    figures.append(
        f"{core} (qemu {cm.CORES[core].board}): {count - differ} of {count} images bit-identical with the host; "
        f"model text {result.text} B, data {result.data} B, bss {result.bss} B, stack {result.stack} B; "
        f"{result.instructions_per_inference / 1e6:.2f} M instructions per inference (qemu -icount, not cycles); "
        f"{result.seconds:.0f} s under qemu"
    )
    assert differ == 0
    assert result.bss <= 4096 and result.text <= 700 * 1024
    assert result.instructions_per_inference <= 1.5e6


def test_bad_input_is_one_line_exit_2(export_dir, seed_model_dir, tmp_path):
    out = tmp_path / "out"
    done = run_cli("export", "--model", str(seed_model_dir / "model.keras"), "--out", str(out), "--c")
    assert done.returncode == 2 and "--c needs the int8 tflite model" in done.stderr + done.stdout
    assert len((done.stderr + done.stdout).strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(InputError, match="uses DEQUANTIZE, which the C generator does not support"):
        generate((export_dir / "digit_mlp_fp16.tflite").read_bytes(), "digit_mlp_fp16")
    with pytest.raises(InputError, match="takes float32"):
        generate((export_dir / "digit_mlp_fp32.tflite").read_bytes(), "digit_mlp_fp32")


def test_verify_skips_the_c_row_without_a_compiler(export_dir, monkeypatch):
    monkeypatch.setenv("CC", "no-such-compiler-here")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = plan(read_manifest(export_dir))
    assert "digit_mlp_int8.c" not in {entry.file for entry, _ in pairs}
    assert any("digit_mlp_int8.c skipped: no C compiler" in str(w.message) for w in caught)


def test_tflm_backend_equals_numpy_micro(export_dir, images):
    pytest.importorskip("tflite_micro")
    subset = images[:1000]  # batch 1, ~0.5 ms an image
    ours = raw(load(export_dir / "digit_mlp_int8.tflite", backend="tflm"), subset)
    assert np.array_equal(
        ours, raw(load(export_dir / "digit_mlp_int8.tflite", backend="numpy-micro"), subset)
    )
