"""`digitkit export --c` for the cnn recipe (RESHAPE, CONV_2D + MAX_POOL_2D twice, the dense layers):
the session's short CNN run (tests/conftest.py cnn_export_dir) as C, compiled strictly by the host's
gcc and clang, gives the numpy backend's int8 outputs (bit-exact with LiteRT x86) byte for byte on all
10,000 test images, and numpy-micro's (TFLite Micro) in its second rounding; verify passes with the c
row; the same bytes on emulated Cortex-M3 (no FPU) and Cortex-M4F under qemu."""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from cortex_m import run as cm
from cortex_m import toolchain
from test_c_export import STRICT, raw

from digitkit.export.c_source import Conv, generate, read_network
from digitkit.runtime import load, read_manifest

pytestmark = pytest.mark.slow
C_FILE, TFLITE = "digit_mlp_int8.c", "digit_mlp_int8.tflite"


@pytest.fixture(scope="module")
def images(mnist_test) -> np.ndarray:
    return np.ascontiguousarray(mnist_test[0].reshape(-1, 784))


@pytest.fixture(scope="module")
def cnn_c_outputs(cnn_export_dir, images, figures) -> np.ndarray:
    model = load(cnn_export_dir / C_FILE)
    assert model.backend == "c"
    started = time.perf_counter()
    out = raw(model, images)
    figures.append(
        f"CNN C export on the host (c backend, cc -O2): {1e6 * (time.perf_counter() - started) / len(images):.0f} µs/image over 10,000"
    )
    return out


def test_the_cnn_reads_as_two_convolutions_with_fused_pools(cnn_export_dir):
    net = read_network((cnn_export_dir / TFLITE).read_bytes())
    convs = [layer for layer in net.layers if isinstance(layer, Conv)]
    assert [(c.conv_shape, c.pool, c.out_shape) for c in convs] == [
        ((26, 26, 32), (2, 2), (13, 13, 32)),
        ((11, 11, 64), (2, 2), (5, 5, 64)),
    ]
    assert len(net.layers) == 4 and convs[1].used == (10, 10)  # VALID pooling drops conv row/column 10
    assert net.buffers == (13 * 13 * 32, 5 * 5 * 64)  # the conv outputs are never held whole


def test_manifest_records_the_cnn_c_and_its_ram(cnn_export_dir, figures):
    entry = read_manifest(cnn_export_dir).entry_for(C_FILE)
    assert entry is not None and entry.c is not None and entry.c.rounding == "litert"
    assert entry.c.ram_bytes == 128 * 4 + 13 * 13 * 32 + 5 * 5 * 64  # accumulators and two buffers
    assert entry.c.flash_bytes < 240_000  # about a third of the MLP's
    header = (cnn_export_dir / "digit_mlp_int8.h").read_text()
    assert f"scratch {entry.c.ram_bytes} bytes" in header
    array = (cnn_export_dir / "digit_mlp_int8_tflite.h").read_text()
    assert "MicroMutableOpResolver<5>" in array and "AddConv2D(), AddMaxPool2D()" not in array
    assert "AddConv2D()" in array and "AddMaxPool2D()" in array and "AddReshape()" in array
    tflm = entry.c.tflm
    assert tflm is not None
    figures.append(
        f"CNN C export: constants {entry.c.flash_bytes} B, RAM (scratch) {entry.c.ram_bytes} B; "
        f"TFLite Micro arena {tflm.arena_min_bytes} B minimum (arena {tflm.arena_bytes} B)"
    )


@pytest.mark.parametrize("rounding", ["litert", "tflite-micro"])
def test_host_compilers_build_the_cnn_warning_free(cnn_export_dir, rounding, tmp_path):
    compilers = [cc for cc in toolchain.HOST_TOOLS if toolchain.missing_packages({cc: cc}) == []]
    if not compilers:
        pytest.skip(toolchain.unavailable_reason(toolchain.HOST_TOOLS) or "no host C compiler")
    _, source, _ = generate((cnn_export_dir / TFLITE).read_bytes(), "digit_mlp_int8", rounding)
    (tmp_path / C_FILE).write_text(source)
    for cc in compilers:
        for extra in ([], ["-DDIGIT_MLP_INT8_SCRATCH_ON_STACK"]):
            subprocess.run(
                [cc, *STRICT, "-O2", *extra, "-c", str(tmp_path / C_FILE), "-o", str(tmp_path / "m.o")],
                check=True,
                capture_output=True,
                text=True,
            )


def test_cnn_c_is_bit_exact_with_the_numpy_backend_on_all_10000(
    cnn_export_dir, images, cnn_c_outputs, figures
):
    reference = raw(load(cnn_export_dir / TFLITE, backend="numpy"), images)
    differ = int((cnn_c_outputs != reference).any(axis=1).sum())
    assert differ == 0, f"{differ} images differ"
    figures.append(
        "CNN C export (litert rounding): bit-identical to the numpy backend (= LiteRT) on 10,000 of 10,000"
    )


def test_cnn_c_tflite_micro_rounding_equals_numpy_micro_on_all_10000(
    cnn_export_dir, images, tmp_path, figures
):
    _, source, _ = generate((cnn_export_dir / TFLITE).read_bytes(), "digit_mlp_int8", "tflite-micro")
    (tmp_path / C_FILE).write_text(source)
    ours = raw(load(tmp_path / C_FILE, backend="c"), images)
    reference = raw(load(cnn_export_dir / TFLITE, backend="numpy-micro"), images)
    differ = int((ours != reference).any(axis=1).sum())
    assert differ == 0, f"{differ} images differ"
    figures.append("CNN C export (tflite-micro rounding): bit-identical to numpy-micro on 10,000 of 10,000")


def test_verify_passes_the_cnn_c_row(cnn_export_dir, mnist_test, figures):
    from digitkit.toolkit.verification import Gates, verify_manifest

    results = verify_manifest(read_manifest(cnn_export_dir), *mnist_test, Gates(), backends=["c"])
    assert [(r.file, r.backend) for r in results] == [(C_FILE, "c")]
    (result,) = results
    assert result.passed, result.failures
    figures.append(
        f"short cnn run, {C_FILE} on c: accuracy {result.accuracy:.4f}, ood {result.ood_accuracy:.4f}"
    )


@pytest.mark.parametrize("core", ["cortex-m3", "cortex-m4f"])
def test_cortex_m_gives_the_cnn_host_bytes(cnn_export_dir, images, cnn_c_outputs, core, tmp_path, figures):
    reason = toolchain.arm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"Cortex-M emulation: {reason}")
    toolchain.ensure_arm_tools()
    count = 1000  # about 6 M instructions an image, 10 ms under qemu: a sample, not the whole set
    result = cm.build_and_run(cnn_export_dir, tmp_path, core, images[:count])
    differ = int((result.outputs != cnn_c_outputs[:count]).any(axis=1).sum())
    figures.append(
        f"CNN on {core} (qemu {cm.CORES[core].board}): {count - differ} of {count} images bit-identical "
        f"with the host; model text {result.text} B, data {result.data} B, bss {result.bss} B, stack {result.stack} B; "
        f"{result.instructions_per_inference / 1e6:.2f} M instructions per inference (qemu -icount, not cycles)"
    )
    assert differ == 0
    assert result.bss <= 8192 and result.text <= 300 * 1024
    assert result.instructions_per_inference <= 10e6


def test_the_cnn_float_models_are_refused_in_one_line(cnn_export_dir):
    from digitkit.runtime.errors import InputError

    with pytest.raises(InputError, match="uses DEQUANTIZE, which the C generator does not support"):
        read_network((cnn_export_dir / "digit_mlp_fp16.tflite").read_bytes())
    with pytest.raises(InputError, match="takes float32") as refused:
        read_network((cnn_export_dir / "digit_mlp_fp32.tflite").read_bytes())
    assert len(refused.value.one_line().splitlines()) == 1
