"""Batch-1 latency of the generated C on this PC against LiteRT, interleaved in one process (medians).

    .venv/bin/python examples/mcu/host_latency.py runs/export [more/digit_mlp_int8.c ...]

Compiles each C file with gcc and clang at -O2 and -O3 -march=native into a small shared library that
times every digit_mlp_int8_predict call with clock_gettime, and times LiteRT (Interpreter, num_threads=1,
set_tensor + invoke + get_tensor on pre-quantized int8 input) over the same 2,000 test images, five rounds
each, alternating. Checks the outputs equal LiteRT's on the way. A measurement, not a test.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHIM = r"""
#include <time.h>
#include "%s"
long dk_bench(const uint8_t *pixels, int8_t *out, long count, long long *ns);
long dk_bench(const uint8_t *pixels, int8_t *out, long count, long long *ns)
{
    long i;
    struct timespec a, b;
    for (i = 0; i < count; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        digit_mlp_int8_predict(pixels + 784 * i, out + 10 * i);
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[i] = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    }
    return count;
}
"""
FLAGS = (["-O2"], ["-O3", "-march=native"])


def build(source: Path, cc: str, flags: list[str], work: Path):
    shim = work / f"shim-{len(list(work.iterdir()))}.c"
    shim.write_text(SHIM % source.resolve())
    library = shim.with_suffix(".so")
    subprocess.run([cc, "-std=gnu99", *flags, "-fPIC", "-shared", "-o", str(library), str(shim)], check=True)
    lib = ctypes.CDLL(str(library))
    lib.dk_bench.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p]
    return lib


def main() -> None:
    from ai_edge_litert.interpreter import Interpreter

    from digitkit.toolkit.data import load_mnist

    export = Path(sys.argv[1])
    sources = [Path(a) for a in sys.argv[2:]] or [export / "digit_mlp_int8.c"]
    images = np.ascontiguousarray(load_mnist()[1][0].reshape(-1, 784)[:2000])
    interpreter = Interpreter(model_path=str(export / "digit_mlp_int8.tflite"), num_threads=1)
    interpreter.allocate_tensors()
    x_index = interpreter.get_input_details()[0]["index"]
    y_index = interpreter.get_output_details()[0]["index"]
    quantized = (images.astype(np.int16) - 128).astype(np.int8).reshape(-1, 1, 784)
    work = Path(tempfile.mkdtemp(prefix="digitkit-latency-"))
    try:
        configs = [
            (f"{source} {cc} {' '.join(flags)}", build(source, cc, flags, work))
            for source in sources
            for cc in ("gcc", "clang")
            if shutil.which(cc)
            for flags in FLAGS
        ]
        n = len(images)
        c_times: dict[str, list[np.ndarray]] = {name: [] for name, _ in configs}
        litert_times = []
        reference = np.zeros((n, 10), np.int8)
        for i in range(n):
            interpreter.set_tensor(x_index, quantized[i])
            interpreter.invoke()
            reference[i] = interpreter.get_tensor(y_index)[0]
        for _ in range(5):
            for name, lib in configs:
                out, ns = np.zeros((n, 10), np.int8), np.zeros(n, np.int64)
                lib.dk_bench(images.ctypes.data, out.ctypes.data, n, ns.ctypes.data)
                assert np.array_equal(out, reference), f"{name}: outputs differ from LiteRT"
                c_times[name].append(ns)
            t = np.zeros(n, np.int64)
            for i in range(n):
                started = time.perf_counter_ns()
                interpreter.set_tensor(x_index, quantized[i])
                interpreter.invoke()
                interpreter.get_tensor(y_index)
                t[i] = time.perf_counter_ns() - started
            litert_times.append(t)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    litert = float(np.median(np.concatenate(litert_times))) / 1000
    print(f"LiteRT set_tensor+invoke+get_tensor, 1 thread: median {litert:.2f} µs")
    for name, _ in configs:
        median = float(np.median(np.concatenate(c_times[name]))) / 1000
        print(f"{name}: median {median:.2f} µs, {median / litert:.2f}x LiteRT")


if __name__ == "__main__":
    main()
