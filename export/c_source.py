"""`digitkit export --c`: the int8 TFLite network as dependency-free C99, bit-exact with a named runtime.

``generate(tflite_bytes, name, rounding)`` returns the header and the source text. The source is an
amalgamation (as SQLite's sqlite3.c): it carries its header's text verbatim, so it compiles alone and
the runtime's `c` backend proves the very file a device builds. Two roundings:

- ``litert`` (default): equals LiteRT's default x86 path (XNNPACK) bit for bit, with integers only.
  XNNPACK requantizes with a float32 product ``(float)acc * scale[c]`` and rounds half to even; a
  float32 product is the exact product rounded to 24 significant bits (ties to even), so the C takes
  ``rne(round24(round24(|acc|) * M[c]) / 2^N[c])`` where ``scale[c] = M[c] * 2^-N[c]`` exactly. The
  softmax (TFLite's float lookup table, float32 sum, ``1 / (sum * scale)``, round half away) is done
  on float32 values held as integer (mantissa, exponent) pairs with the same roundings, from an
  embedded table of the float32 values (newlib's expf differs from glibc's: never computed on device).
- ``tflite-micro``: equals TensorFlow Lite Micro (gemmlowp fixed-point multiplier and shift, double
  rounding; fixed-point softmax on an embedded Q0.31 exp table).

Layers run on u = q - zero_point (a black pixel or a ReLU zero adds nothing and is skipped), weights
stored input-major, int32 accumulators: integer sums, exact in any order. The nonzero inputs are
gathered ``GROUP`` at a time and each pass adds their products to every accumulator: plain loops that
gcc and clang vectorize on a PC (16-bit products where a vector unit is likely) and that halve the
accumulator traffic on a Cortex-M (0.56 M instructions per inference on M3/M4/M7/M33 against 1.05 M
one input at a time; host batch 1 at -O3 -march=native about 2x LiteRT against 4x).

The cnn recipe (RESHAPE, CONV_2D, MAX_POOL_2D, RESHAPE, then the dense layers) runs the same way: a
RESHAPE moves nothing (NHWC is row-major); a VALID CONV_2D is a direct loop over output pixels, each
one a dense layer over its window (KW * C inputs contiguous per window row) with the same kernels and
per-channel requantization; a non-overlapping MAX_POOL_2D after it is fused: each conv pixel's bytes
are max-ed into its pool cell (stored bytes q + 128 order as q), so the conv's output is never held
and RAM is two activation buffers (13x13x32 and 5x5x64 bytes for the recipe) plus the accumulators.
"""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np

from digitkit.runtime.backends import numpy_kernels as nk
from digitkit.runtime.backends import numpy_micro as nm
from digitkit.runtime.backends.base import TensorInfo
from digitkit.runtime.backends.numpy_flatbuffer import Tensor, parse
from digitkit.runtime.errors import ArtifactError, InputError
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.manifest import CSource, FileRef, TflmArray, Tool
from digitkit.runtime.version import __version__

from .context import ExportContext
from .manifest import ConverterInfo

FULLY_CONNECTED, SOFTMAX, RESHAPE = 9, 25, 22
VALID = 1  # schema.fbs Padding
CONV_2D, MAX_POOL_2D = 3, 17
ROUNDINGS = {
    "litert": "LiteRT's default x86 path (XNNPACK): float32 requantization, half to even; float table softmax",
    "tflite-micro": "TensorFlow Lite Micro: fixed-point multiplier and shift (double rounding); fixed-point softmax",
}
PIXELS, CLASSES = 784, 10
_FIX = "Export the mlp or cnn recipe with `digitkit export --int8 --c`; other models need the TFLite or ONNX files"
GROUP = 4  # nonzero inputs per pass over a layer's accumulators
ARENA_MARGIN = 1024  # bytes added to the measured minimum TFLite Micro arena (it segfaults just below it)


def unsupported(problem: str) -> InputError:
    return InputError(problem, _FIX)


@dataclass(frozen=True)
class Dense:
    w: np.ndarray  # int8 (units, depth)
    bias: np.ndarray  # int64 (units,)
    in_offset: int  # stored byte b = q + 128; u = b - in_offset (in_offset = zp_in + 128)
    out_zero_point: int
    qmin: int  # clamp of y = q - zp_out
    qmax: int
    mantissa: np.ndarray  # litert: scale = M * 2^-N; micro: fixed-point multiplier q31
    shift: np.ndarray  # litert: N (>= 1); micro: gemmlowp shift (left if positive)
    accumulator_bound: int


@dataclass(frozen=True)
class Conv:
    """A VALID CONV_2D as a dense layer over each output pixel's window (weights (out channels,
    KH * KW * in channels) in the filter's OHWI order), optionally followed by a non-overlapping
    MAX_POOL_2D fused into it: each conv pixel is max-ed into its pool cell as it is computed, so the
    conv's full output is never held."""

    dense: Dense
    kernel: tuple[int, int]
    stride: tuple[int, int]
    in_shape: tuple[int, int, int]  # H, W, C
    conv_shape: tuple[int, int, int]
    pool: Optional[tuple[int, int]] = None  # pool window = pool stride
    pool_clamp: tuple[int, int] = (0, 255)  # the pool's fused activation, on stored bytes q + 128

    @property
    def out_shape(self) -> tuple[int, int, int]:
        h, w, c = self.conv_shape
        if self.pool is None:
            return self.conv_shape
        return h // self.pool[0], w // self.pool[1], c

    @property
    def out_size(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def used(self) -> tuple[int, int]:
        """The conv output rows and columns that reach the output (VALID pooling drops the rest)."""
        h, w, _ = self.out_shape
        return (h * self.pool[0], w * self.pool[1]) if self.pool else (h, w)


Layer = Union[Dense, Conv]


def _dense_of(layer: Layer) -> Dense:
    return layer.dense if isinstance(layer, Conv) else layer


@dataclass(frozen=True)
class Network:
    layers: tuple[Layer, ...]
    softmax_table: np.ndarray  # litert: float32 bit patterns of expf(-in_scale*beta*d); micro: Q0.31 exp
    inverse_scale_log2: int  # softmax output scale = 2^-k
    out_zero_point: int
    rounding: str

    @property
    def flash_bytes(self) -> int:
        total = self.softmax_table.size * 4
        for layer in map(_dense_of, self.layers):
            total += layer.w.size + layer.bias.size * 4 + layer.mantissa.size * 4 + layer.shift.size
        return total

    @property
    def widest(self) -> int:
        return max(_dense_of(layer).w.shape[0] for layer in self.layers)

    @property
    def buffers(self) -> tuple[int, int]:
        """Sizes of the two activation buffers (bytes, q + 128). A dense layer writes over its own input
        (it reads all of it into the accumulators first); a convolution writes to the other buffer."""
        sizes, current = [0, 0], -1  # -1: the caller's pixels
        for layer in self.layers:
            if isinstance(layer, Conv):
                current = 1 if current == 0 else 0
                sizes[current] = max(sizes[current], layer.out_size)
            else:
                current = max(current, 0)
                sizes[current] = max(sizes[current], layer.w.shape[0])
        return sizes[0], sizes[1]

    @property
    def scratch_bytes(self) -> int:
        return self.widest * 4 + sum(self.buffers)


def _single(t: Tensor, what: str) -> tuple[float, int]:
    if t.quant.scale.size != 1:
        raise unsupported(f"The {what} tensor {t.name!r} is not quantized per tensor")
    return float(t.quant.scale[0]), int(t.quant.zero_point[0])


def read_network(model: bytes, rounding: str = "litert") -> Network:
    """The int8 MLP or CNN of a TFLite file, checked op by op; anything else is a one-line InputError."""
    if rounding not in ROUNDINGS:
        raise InputError(f"Unknown C rounding {rounding!r}", f"Use one of: {', '.join(ROUNDINGS)}")
    graph = parse(model)
    known = (FULLY_CONNECTED, SOFTMAX, RESHAPE, CONV_2D, MAX_POOL_2D)
    for op in graph.operators:  # the op first: the most useful thing to name
        if op.code not in known:
            raise unsupported(f"The model uses {op.name}, which the C generator does not support")
    x = graph.tensors[graph.input]
    if x.dtype != np.int8 or tuple(x.shape[1:]) != (PIXELS,):
        raise unsupported(
            f"The model takes {x.dtype.name} {list(x.shape)}, not the int8 [1, 784] of the int8 MLP or CNN"
        )
    in_scale, in_zp = _single(x, "input")
    if np.float32(in_scale) != np.float32(1 / 255) or in_zp != -128:
        raise unsupported(
            f"The model's input has scale {in_scale} and zero point {in_zp}, not 1/255 and -128"
        )
    layers: list[Layer] = []
    softmax = None
    current = graph.input
    for op in graph.operators:
        if softmax is not None:
            raise unsupported(
                f"The model has {op.name} after its SOFTMAX, which the C generator does not support"
            )
        if op.inputs[0] != current or len(op.outputs) != 1:
            raise unsupported(
                f"Operator {op.index} ({op.name}) is not part of one chain from input to output"
            )
        src, dst = graph.tensors[current], graph.tensors[op.outputs[0]]
        if src.dtype != np.int8 or dst.dtype != np.int8:
            raise unsupported(
                f"The model's {op.name} maps {src.dtype.name} to {dst.dtype.name}, not int8 to int8"
            )
        if op.code == FULLY_CONNECTED:
            layers.append(_dense(graph.tensors, op, src, dst, rounding))
        elif op.code == CONV_2D:
            layers.append(_conv(graph.tensors, op, src, dst, rounding))
        elif op.code == MAX_POOL_2D:
            last = layers[-1] if layers else None
            if not isinstance(last, Conv) or last.pool is not None:
                raise unsupported("A MAX_POOL_2D does not follow a CONV_2D directly")
            layers[-1] = _pool(op, src, dst, last)
        elif op.code == RESHAPE:
            if _single(src, "reshape input") != _single(dst, "reshape output") or int(
                np.prod(src.shape[1:])
            ) != int(np.prod(dst.shape[1:])):
                raise unsupported(f"A RESHAPE maps {list(src.shape)} to {list(dst.shape)} with other values")
        else:
            softmax = (src, dst, float(op.options.scalar(0, "f", 1.0)) if op.options is not None else 1.0)
        current = dst.index
    if current != graph.output or not layers or softmax is None:
        raise unsupported("The model is not a chain of CONV_2D and FULLY_CONNECTED layers ending in SOFTMAX")
    if not isinstance(layers[-1], Dense) or layers[-1].w.shape[0] != CLASSES:
        raise unsupported("The model does not end in a FULLY_CONNECTED layer of 10 classes")
    src, dst, beta = softmax
    s_in, _ = _single(src, "softmax input")
    s_out, zp_out = _single(dst, "softmax output")
    mantissa, exponent = math.frexp(s_out)
    if mantissa != 0.5 or zp_out != -128:
        raise unsupported(f"The SOFTMAX output has scale {s_out} and zero point {zp_out}, not 2^-k and -128")
    if rounding == "litert":
        table = nk.exp_table(s_in, beta)[::-1].copy()  # by difference d = max - x: expf(-s_in * beta * d)
        bits = table.view(np.uint32)
        if np.any(((bits >> 23) == 0) & (bits != 0)):
            raise unsupported(
                "The SOFTMAX exp table holds subnormal floats, which the C generator does not run"
            )
        stored = bits.astype(np.int64)
    else:
        stored = np.asarray(nm.SoftmaxMicro(s_in, beta, s_out, zp_out).exp, np.int64)
    return Network(tuple(layers), stored, 1 - exponent, zp_out, rounding)


def _dense(tensors: list[Tensor], op, src: Tensor, dst: Tensor, rounding: str) -> Dense:
    if op.options is None:
        activation, weights_format = 0, 0
    else:
        activation, weights_format = int(op.options.scalar(0, "b")), int(op.options.scalar(1, "b"))
    if len(op.inputs) < 2 or tensors[op.inputs[1]].data is None or weights_format != 0:
        raise unsupported("A FULLY_CONNECTED has weights computed at run time or shuffled")
    wt = tensors[op.inputs[1]]
    w = np.asarray(wt.data)
    if w.dtype != np.int8 or w.ndim != 2 or not wt.quantized or np.any(wt.quant.zero_point != 0):
        raise unsupported("A FULLY_CONNECTED has weights other than symmetric int8")
    units, depth = w.shape
    if int(np.prod(src.shape[1:])) != depth or dst.shape[-1] != units:
        raise unsupported(
            f"A FULLY_CONNECTED maps {list(src.shape)} to {list(dst.shape)} with weights {list(w.shape)}"
        )
    return _quantized("FULLY_CONNECTED", w, wt, tensors, op, src, dst, activation, rounding)


def _conv(tensors: list[Tensor], op, src: Tensor, dst: Tensor, rounding: str) -> Conv:
    """Conv2DOptions: padding, stride_w, stride_h, fused activation, dilation_w, dilation_h."""
    options = op.options
    if options is None or len(op.inputs) < 2 or tensors[op.inputs[1]].data is None:
        raise unsupported("A CONV_2D has no options or filters computed at run time")
    wt = tensors[op.inputs[1]]
    w = np.asarray(wt.data)
    if w.dtype != np.int8 or w.ndim != 4 or not wt.quantized or np.any(wt.quant.zero_point != 0):
        raise unsupported("A CONV_2D has filters other than symmetric int8")
    stride = (int(options.scalar(2, "i")), int(options.scalar(1, "i")))
    dilation = (int(options.scalar(5, "i", 1)), int(options.scalar(4, "i", 1)))
    out_channels, kh, kw, channels = w.shape
    if len(src.shape) != 4 or len(dst.shape) != 4 or src.shape[3] != channels or dst.shape[3] != out_channels:
        raise unsupported(
            f"A CONV_2D maps {list(src.shape)} to {list(dst.shape)} with filter {list(w.shape)}"
        )
    h, wd = src.shape[1:3]
    valid = ((h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1)
    if (
        int(options.scalar(0, "b")) != VALID
        or dilation != (1, 1)
        or min(stride) < 1
        or valid != tuple(dst.shape[1:3])
    ):
        raise unsupported("A CONV_2D has SAME padding or dilation, which the C generator does not support")
    dense = _quantized(
        "CONV_2D",
        w.reshape(out_channels, -1),
        wt,
        tensors,
        op,
        src,
        dst,
        int(options.scalar(3, "b")),
        rounding,
    )
    in_shape = (int(src.shape[1]), int(src.shape[2]), int(src.shape[3]))
    conv_shape = (int(dst.shape[1]), int(dst.shape[2]), int(dst.shape[3]))
    return Conv(dense, (int(kh), int(kw)), stride, in_shape, conv_shape)


def _pool(op, src: Tensor, dst: Tensor, conv: Conv) -> Conv:
    """Pool2DOptions: padding, stride_w, stride_h, filter_width, filter_height, fused activation."""
    options = op.options
    if options is None:
        raise unsupported("A MAX_POOL_2D has no options")
    window = (int(options.scalar(4, "i")), int(options.scalar(3, "i")))
    stride = (int(options.scalar(2, "i")), int(options.scalar(1, "i")))
    if int(options.scalar(0, "b")) != VALID or window != stride or min(window) < 1:
        raise unsupported("A MAX_POOL_2D is not VALID with its stride equal to its window")
    if _single(src, "max pool input") != _single(dst, "max pool output"):
        raise unsupported("A MAX_POOL_2D changes scale or zero point")
    pooled = replace(conv, pool=window)
    if tuple(dst.shape[1:]) != pooled.out_shape:
        raise unsupported(f"A MAX_POOL_2D maps {list(src.shape)} to {list(dst.shape)}")
    scale, zp = _single(dst, "max pool output")
    low, high = nk.quantized_range(int(options.scalar(5, "b")), scale, zp, np.dtype(np.int8))
    return replace(pooled, pool_clamp=(low + 128, high + 128))


def _quantized(
    what: str, w: np.ndarray, wt: Tensor, tensors: list[Tensor], op, src: Tensor, dst: Tensor,
    activation: int, rounding: str,
) -> Dense:  # fmt: skip
    """The integer form of an int8 layer with weights ``w`` (units, depth): bias, clamp and the
    per-channel requantization of the rounding, as the numpy backend's kernels take them."""
    units = w.shape[0]
    bias = np.zeros(units, np.int64)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = tensors[op.inputs[2]]
        if b.data is None or b.dtype != np.int32 or b.shape != (units,):
            raise unsupported(f"A {what} has a bias other than constant int32")
        bias = np.asarray(b.data).astype(np.int64)
    in_scale, zp_in = _single(src, f"{what} input")
    out_scale, zp_out = _single(dst, f"{what} output")
    low, high = nk.quantized_range(activation, out_scale, zp_out, np.dtype(np.int8))
    w_scale = np.broadcast_to(np.asarray(wt.quant.scale, np.float32), (units,))
    u_max = max(abs(-128 - zp_in), abs(127 - zp_in))
    bound = int((np.abs(w.astype(np.int64)).sum(axis=1) * u_max + np.abs(bias)).max())
    if bound >= 1 << 31:
        raise unsupported(f"A {what} accumulator may overflow int32")
    if rounding == "litert":
        scale = (np.float32(in_scale) * w_scale) / np.float32(out_scale)  # float32, in XNNPACK's order
        if not np.all((scale < 256.0) & (scale > 0)):
            raise unsupported(f"A {what} requantization scale is outside (0, 256)")
        m, e = np.frexp(scale.astype(np.float64))  # scale = m * 2^e, m in [0.5, 1): exact
        mantissa = np.round(m * (1 << 24)).astype(np.int64)  # 24-bit integer, exact
        shift = (24 - e).astype(np.int64)
        if not np.all(np.ldexp(mantissa.astype(np.float64), -shift) == scale.astype(np.float64)):
            raise unsupported(f"A {what} scale is not a normal float32")
        if not np.all((shift >= 1) & (shift <= 62)):
            raise unsupported(f"A {what} requantization scale is below 2^-38")
    else:
        pairs = [nm.quantize_multiplier(float(in_scale) * float(s) / float(out_scale)) for s in w_scale]
        mantissa = np.array([p[0] for p in pairs], np.int64)
        shift = np.array([p[1] for p in pairs], np.int64)
    return Dense(w, bias, zp_in + 128, zp_out, low - zp_out, high - zp_out, mantissa, shift, bound)


# --- C text ------------------------------------------------------------------------------------------


def c_identifier(stem: str) -> str:
    name = re.sub(r"[^0-9a-zA-Z_]", "_", stem).lower()
    return name if re.match(r"[a-z_]", name) else f"m_{name}"


def _array(values: np.ndarray, per_line: int = 32) -> str:
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    lines = [",".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join("    " + line for line in lines)


def header_text(name: str, net: Network, source_desc: str) -> str:
    up = name.upper()
    scratch = net.scratch_bytes
    reference = ROUNDINGS[net.rounding]
    return f"""\
/* {name}.h: the digitkit digit classifier as dependency-free C99. Generated by digitkit {__version__}
 * from {source_desc}; do not edit (re-run `digitkit export --int8 --c`).
 *
 * Exactness: bit-identical to {reference}
 * ({up}_ROUNDING "{net.rounding}"). Integer arithmetic only: no FPU, no libm, no malloc.
 * Build without -ffast-math.
 *
 * Use: compile {name}.c with your sources (it carries this header's text, so it builds alone) and
 *   int8_t probabilities[{up}_CLASSES];
 *   int digit = {name}_predict(pixels, probabilities);
 * pixels: 784 uint8 values, 28x28 row-major, white digit (255) on black (0), as MNIST.
 * probabilities: int8, probability = (q - {up}_PROB_ZERO_POINT) * {up}_PROB_SCALE;
 * {name}_dequantize gives them as float (the only function that uses float).
 *
 * Memory: constants {net.flash_bytes} bytes (flash, const); scratch {scratch} bytes.
 * Reentrancy: by default the scratch is one static buffer, so {name}_predict is NOT reentrant
 * (one call at a time: not from two threads, or from an interrupt that may preempt a call).
 * Define {up}_SCRATCH_ON_STACK when compiling {name}.c to put the scratch on the stack instead:
 * then it is reentrant and thread-safe, and needs {scratch} bytes more stack.
 */
#ifndef {up}_H
#define {up}_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {up}_PIXELS {PIXELS}
#define {up}_CLASSES {CLASSES}
#define {up}_PROB_ZERO_POINT ({net.out_zero_point})
#define {up}_PROB_SCALE (1.0f / {1 << net.inverse_scale_log2})
#define {up}_ROUNDING "{net.rounding}"
#define {up}_FLASH_BYTES {net.flash_bytes}
#define {up}_SCRATCH_BYTES {scratch}

/* The digit (0-9) for 784 pixels; its 10 int8 probabilities in probabilities (may be NULL). */
int {name}_predict(const uint8_t pixels[{PIXELS}], int8_t probabilities[{CLASSES}]);

/* The int8 probabilities as float: (q - zero point) * scale, exact. */
void {name}_dequantize(const int8_t probabilities[{CLASSES}], float out[{CLASSES}]);

#ifdef __cplusplus
}}
#endif

#endif /* {up}_H */
"""


_COMMON = r"""
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L
#define DM_RESTRICT restrict
#else
#define DM_RESTRICT
#endif

/* One product w * v: |w| <= 128 and |v| <= 255, so it fits in 16 bits. Where a vector unit is likely,
 * the 16-bit product lets compilers use 16-bit lanes (twice as many per instruction); on scalar cores
 * the int32 product saves a sign extension. The same value either way. */
#if defined(__SSE2__) || defined(__ARM_NEON) || defined(__ARM_NEON__) || defined(__wasm_simd128__)
#define DM_MUL(w, v) ((int32_t)(int16_t)((w) * (v)))
#else
#define DM_MUL(w, v) ((int32_t)(w) * (v))
#endif
"""


def _kernel(units: int, group: int) -> str:
    """``acc[c] += sum_g rows[g][c] * vals[g]`` over ``units`` outputs, ``group`` inputs per pass: each
    pass loads and stores the accumulators once for ``group`` inputs. Integer sums: exact in any order."""
    terms = " + ".join(f"DM_MUL(w{g}[c], v{g})" for g in range(group))
    pointers = "".join(f"    const int8_t *DM_RESTRICT const w{g} = rows[{g}];\n" for g in range(group))
    values = "".join(f"    const int16_t v{g} = (int16_t)vals[{g}];\n" for g in range(group))
    return f"""
static void dm_axpy_{units}(int32_t *DM_RESTRICT acc, const int8_t *const *rows, const int32_t *vals)
{{
{pointers}{values}    int32_t c;
    for (c = 0; c < {units}; c++) {{
        acc[c] += {terms};
    }}
}}
"""


def _gather(value: str, row: str, units: int, group: int, indent: int) -> str:
    """One input of a gather loop: its weight row and value queued when the value is nonzero, and
    ``group`` queued inputs applied at once (dense and conv layers share it)."""
    return textwrap.indent(
        f"""const int32_t v = {value};
rows[n] = {row};
vals[n] = v;
n += v != 0;
if (n == {group}) {{
    dm_axpy_{units}(acc, rows, vals);
    n = 0;
}}
""",
        " " * indent,
    )


def _flush(units: int, group: int, indent: int) -> str:
    """After a gather loop: the last, partly filled group, padded with zero inputs."""
    return textwrap.indent(
        f"""if (n > 0) {{
    for (k = n; k < {group}; k++) {{ /* pad the last pass with zero inputs */
        rows[k] = rows[0];
        vals[k] = 0;
    }}
    dm_axpy_{units}(acc, rows, vals);
}}
""",
        " " * indent,
    )


def _dense_text(i: int, layer: Dense, group: int) -> str:
    """Layer ``i``'s accumulators: acc[c] = bias[c] + sum_k w[k][c] * (x[k] - offset), weights
    input-major (row k: input k's weights). Nonzero inputs are gathered ``group`` at a time without
    branching on them; zeros (black pixels, ReLU zeros) cost nothing in the inner loop."""
    units, depth = layer.w.shape
    offset = layer.in_offset
    value = "(int32_t)x[k]" if offset == 0 else f"(int32_t)x[k] - {offset}"
    return f"""
static void dm_dense{i}(const uint8_t *x, int32_t *DM_RESTRICT acc)
{{
    const int8_t *rows[{group}];
    int32_t vals[{group}];
    int32_t k, c, n = 0;
    for (c = 0; c < {units}; c++) {{
        acc[c] = DM_B{i}[c];
    }}
    for (k = 0; k < {depth}; k++) {{
{_gather(value, f"DM_W{i} + k * {units}", units, group, 8)}    }}
{_flush(units, group, 4)}}}
"""


def _requantize_expr(i: int, layer: Dense, acc: str) -> str:
    """The stored byte (q + 128) of output channel c from its accumulator, in the file's rounding."""
    expr = f"dm_requantize({acc}, DM_M{i}[c], DM_N{i}[c], {layer.qmin}, {layer.qmax}) + {layer.out_zero_point + 128}"
    if layer.qmin >= 0:  # clamped at or above zero (ReLU): acc <= 0 gives the lower bound in either rounding
        expr = f"{acc} <= 0 ? {layer.qmin + layer.out_zero_point + 128} : {expr}"
    return expr


def _conv_text(i: int, conv: Conv, group: int) -> str:
    """Layer ``i``, a direct VALID convolution: per output pixel, the accumulators of every output
    channel over its window, gathered as the dense layers' (a window row, KW * C inputs, is contiguous
    in NHWC). With a fused max pool each pixel's bytes are max-ed into its pool cell (bytes q + 128
    order as q does), then the pool's activation clamps them."""
    layer = conv.dense
    units = layer.w.shape[0]
    (kh, kw), (sh, sw) = conv.kernel, conv.stride
    _, in_w, channels = conv.in_shape
    used_h, used_w = conv.used
    out_w = conv.out_shape[1]
    offset = layer.in_offset
    value = "(int32_t)line[k]" if offset == 0 else f"(int32_t)line[k] - {offset}"
    if conv.pool is None:
        cell = f"(oy * {out_w} + ox) * {units}"
        store = "out[c] = (uint8_t)r;"
        start = ""
    else:
        ph, pw = conv.pool
        cell = f"((oy / {ph}) * {out_w} + ox / {pw}) * {units}"
        store = "out[c] = (uint8_t)r > out[c] ? (uint8_t)r : out[c];"
        start = f"    for (c = 0; c < {conv.out_size}; c++) {{\n        y[c] = 0; /* q = -128: below any value */\n    }}\n"
    finish = ""
    low, high = conv.pool_clamp
    if conv.pool is not None and (low > 0 or high < 255):
        finish = (
            f"    for (c = 0; c < {conv.out_size}; c++) {{\n"
            f"        y[c] = y[c] < {low} ? {low} : (y[c] > {high} ? {high} : y[c]);\n    }}\n"
        )
    requantize = _requantize_expr(i, layer, "acc[c]")
    return f"""
static void dm_conv{i}(const uint8_t *x, uint8_t *DM_RESTRICT y, int32_t *DM_RESTRICT acc)
{{
    const int8_t *rows[{group}];
    int32_t vals[{group}];
    int32_t oy, ox, ky, k, c, n;
{start}    for (oy = 0; oy < {used_h}; oy++) {{
        for (ox = 0; ox < {used_w}; ox++) {{
            uint8_t *const out = y + {cell};
            for (c = 0; c < {units}; c++) {{
                acc[c] = DM_B{i}[c];
            }}
            n = 0;
            for (ky = 0; ky < {kh}; ky++) {{
                const uint8_t *const line = x + ((oy * {sh} + ky) * {in_w} + ox * {sw}) * {channels};
                const int8_t *const w = DM_W{i} + ky * {kw * channels * units};
                for (k = 0; k < {kw * channels}; k++) {{
{_gather(value, f"w + k * {units}", units, group, 20)}                }}
            }}
{_flush(units, group, 12)}            for (c = 0; c < {units}; c++) {{
                const int32_t r = {requantize};
                {store}
            }}
        }}
    }}
{finish}}}
"""


_LITERT = r"""
static int dm_bit_length(uint64_t v)
{
#if defined(__GNUC__) || defined(__clang__)
    return v ? 64 - __builtin_clzll((unsigned long long)v) : 0;
#else
    int n = 0;
    while (v) {
        v >>= 1;
        n++;
    }
    return n;
#endif
}

/* v / 2^n rounded to the nearest integer, ties to even; sticky: a nonzero part below v's last bit. */
static uint64_t dm_shift_rne(uint64_t v, int n, int sticky)
{
    uint64_t q, r, half;
    if (n <= 0) {
        return v;
    }
    if (n >= 64) {
        return 0;
    }
    q = v >> n;
    r = v & ((UINT64_C(1) << n) - 1u);
    half = UINT64_C(1) << (n - 1);
    if (r > half || (r == half && (sticky || (q & 1u)))) {
        q++;
    }
    return q;
}

/* v rounded to 24 significant bits, ties to even: what storing it in a float32 does. */
static uint64_t dm_round24(uint64_t v)
{
    const int s = dm_bit_length(v) - 24;
    return s > 0 ? dm_shift_rne(v, s, 0) << s : v;
}

/* XNNPACK's fp32 requantization in integers: y = rne((float)acc * scale), clamped to [lo, hi], with
 * scale = m * 2^-n exactly (m < 2^24, 1 <= n <= 62). (float)acc rounds |acc| to 24 significant bits
 * (only above 2^24); the float32 product p = |acc| * m rounds to 24 significant bits: with t = 2p,
 * s = max(bits(t) - 24, 1) and q = rne(t / 2^s) it is q * 2^(s - 1) (s = 1 when p fits: q = p); then
 * y = rne(q / 2^(n - s + 1)). Branch-free but for the rare cases. */
static int32_t dm_requantize(int32_t acc, int32_t m, int n, int32_t lo, int32_t hi)
{
    uint64_t a = acc < 0 ? (uint64_t)(-(int64_t)acc) : (uint64_t)acc, t, q, y;
    int s, k;
    if (a >> 24) {
        a = dm_round24(a);
    }
    t = (a * (uint64_t)m) << 1;
    s = dm_bit_length(t | (UINT64_C(1) << 24)) - 24;
    q = (t + (UINT64_C(1) << (s - 1)) - 1u + ((t >> s) & 1u)) >> s;
    k = n - s + 1;
    if (k <= 0) { /* |y| >= 2^23: beyond any int8 clamp */
        return acc < 0 ? lo : hi;
    }
    y = (q + (UINT64_C(1) << (k - 1)) - 1u + ((q >> k) & 1u)) >> k;
    {
        const int32_t v = acc < 0 ? -(int32_t)y : (int32_t)y;
        return v < lo ? lo : (v > hi ? hi : v);
    }
}

/* float32 values as integer pairs: value = m * 2^e, m < 2^24 (0 for zero). */
typedef struct {
    uint64_t m;
    int e;
} dm_f32;

static dm_f32 dm_unpack(uint32_t bits)
{
    dm_f32 f;
    const int biased = (int)((bits >> 23) & 0xffu);
    f.m = biased ? (uint64_t)((bits & 0x7fffffu) | 0x800000u) : 0u; /* no subnormals in the table */
    f.e = biased - 150;
    return f;
}

/* m * 2^e with m exact (up to 2^62), rounded to a float32: 24 significant bits, ties to even. */
static dm_f32 dm_normalize(uint64_t m, int e, int sticky)
{
    dm_f32 f;
    const int s = dm_bit_length(m) - 24;
    if (s > 0) {
        m = dm_shift_rne(m, s, sticky);
        e += s;
        if (m >> 24) { /* rounding carried into a 25th bit */
            m >>= 1;
            e++;
        }
    }
    f.m = m;
    f.e = e;
    return f;
}

/* a + b in float32 (both >= 0). */
static dm_f32 dm_add(dm_f32 a, dm_f32 b)
{
    uint64_t big, small;
    int d, sticky = 0;
    if (b.m == 0) {
        return a;
    }
    if (a.m == 0) {
        return b;
    }
    if (b.e > a.e) {
        dm_f32 t = a;
        a = b;
        b = t;
    }
    d = a.e - b.e;
    big = a.m << 32;
    small = b.m << 32;
    if (d >= 64) {
        sticky = 1;
        small = 0;
    } else if (d > 0) {
        sticky = (small & ((UINT64_C(1) << d) - 1u)) != 0;
        small >>= d;
    }
    return dm_normalize(big + small, a.e - 32, sticky);
}

/* 2^k / a in float32 (a > 0). */
static dm_f32 dm_reciprocal(dm_f32 a, int k)
{
    const uint64_t q = (UINT64_C(1) << 50) / a.m;
    const int sticky = (q * a.m) != (UINT64_C(1) << 50);
    return dm_normalize(q, k - 50 - a.e, sticky);
}

/* TFLite's int8 softmax (optimized_ops.h, float table): p = table[d] * (1 / (sum * scale)) in float32,
 * q = round half away (p) + zero point. */
static void dm_softmax(const uint8_t *x, int8_t *out)
{
    int32_t i, top = 0;
    dm_f32 sum, inv;
    sum.m = 0;
    sum.e = 0;
    for (i = 0; i < DM_CLASSES; i++) {
        top = x[i] > top ? x[i] : top;
    }
    for (i = 0; i < DM_CLASSES; i++) {
        sum = dm_add(sum, dm_unpack(DM_SOFTMAX_TABLE[top - x[i]]));
    }
    inv = dm_reciprocal(sum, DM_SOFTMAX_INV_LOG2);
    for (i = 0; i < DM_CLASSES; i++) {
        const dm_f32 e = dm_unpack(DM_SOFTMAX_TABLE[top - x[i]]);
        const dm_f32 p = dm_normalize(e.m * inv.m, e.e + inv.e, 0);
        uint64_t q;
        if (p.m == 0) {
            q = 0;
        } else if (p.e >= 0) {
            q = p.e > 16 ? UINT64_C(0xffff) : p.m << p.e;
        } else if (-p.e > 40) {
            q = 0;
        } else {
            q = (p.m + (UINT64_C(1) << (-p.e - 1))) >> -p.e; /* floor(p + 0.5): half away from zero */
        }
        if (q > (uint64_t)(127 - DM_OUT_ZERO_POINT)) {
            q = (uint64_t)(127 - DM_OUT_ZERO_POINT);
        }
        out[i] = (int8_t)((int32_t)q + DM_OUT_ZERO_POINT);
    }
}
"""

_MICRO = r"""
#define DM_INT32_MIN (-2147483647 - 1)
#define DM_INT32_MAX 2147483647

static int32_t dm_wrap(int64_t v)
{
    const uint32_t u = (uint32_t)((uint64_t)v & 0xffffffffu);
    return u & 0x80000000u ? (int32_t)(u - 0x80000000u) + DM_INT32_MIN : (int32_t)u;
}

/* gemmlowp SaturatingRoundingDoublingHighMul */
static int32_t dm_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * b;
    const int64_t t = ab + (ab >= 0 ? (INT64_C(1) << 30) : 1 - (INT64_C(1) << 30));
    if (a == DM_INT32_MIN && b == DM_INT32_MIN) {
        return DM_INT32_MAX;
    }
    return (int32_t)(t >= 0 ? t / (INT64_C(1) << 31) : -((-t) / (INT64_C(1) << 31)));
}

/* gemmlowp RoundingDivideByPOT: x / 2^e, to nearest, ties away from zero */
static int32_t dm_rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << e) - 1u);
    const int32_t remainder = (int32_t)((uint32_t)x & (uint32_t)mask);
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    const int32_t down = x >= 0 ? (x >> e) : ~((~x) >> e);
    return down + (remainder > threshold ? 1 : 0);
}

static int32_t dm_shift_left_saturating(int32_t x, int e)
{
    const int32_t threshold = (int32_t)((UINT32_C(1) << (31 - e)) - 1u);
    if (x > threshold) {
        return DM_INT32_MAX;
    }
    if (x < -threshold) {
        return DM_INT32_MIN;
    }
    return dm_wrap((int64_t)x * ((int64_t)1 << e));
}

/* TFLite Micro: MultiplyByQuantizedMultiplier (double rounding), clamped to [lo, hi]. */
static int32_t dm_requantize(int32_t acc, int32_t m, int shift, int32_t lo, int32_t hi)
{
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const int32_t v = dm_rdbpot(dm_srdhm(dm_wrap((int64_t)acc * ((int64_t)1 << left)), m), right);
    return v < lo ? lo : (v > hi ? hi : v);
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31) */
static int32_t dm_one_over_one_plus_x(int32_t a)
{
    const int64_t s = (int64_t)a + DM_INT32_MAX;
    const int32_t half = (int32_t)(s >= 0 ? (s + 1) / 2 : -((-s + 1) / 2));
    int32_t x = dm_wrap((int64_t)1515870810 + dm_srdhm(half, -1010580540));
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t t = dm_wrap((int64_t)(1 << 29) - dm_srdhm(half, x));
        x = dm_wrap((int64_t)x + dm_shift_left_saturating(dm_srdhm(x, t), 2));
    }
    return dm_shift_left_saturating(x, 1);
}

/* TFLite Micro's int8 softmax (reference/softmax.h) on an embedded Q0.31 exp table by difference. */
static void dm_softmax(const uint8_t *x, int8_t *out)
{
    int32_t i, top = 0, total = 0, headroom = 0, scale;
    for (i = 0; i < DM_CLASSES; i++) {
        top = x[i] > top ? x[i] : top;
    }
    for (i = 0; i < DM_CLASSES; i++) {
        total = dm_wrap((int64_t)total + dm_rdbpot(DM_SOFTMAX_TABLE[top - x[i]], 12));
    }
    while (headroom < 31 && !(((uint32_t)total << headroom) & 0x80000000u)) {
        headroom++;
    }
    scale = dm_one_over_one_plus_x(dm_wrap((int64_t)(((uint32_t)total << headroom) & 0xffffffffu) - 2147483648LL));
    for (i = 0; i < DM_CLASSES; i++) {
        const int exponent = (12 - headroom) + 31 - DM_SOFTMAX_INV_LOG2;
        int32_t v = dm_rdbpot(dm_srdhm(scale, DM_SOFTMAX_TABLE[top - x[i]]), exponent) + DM_OUT_ZERO_POINT;
        v = v < -128 ? -128 : (v > 127 ? 127 : v);
        out[i] = (int8_t)v;
    }
}
"""


def source_text(name: str, net: Network, header: str) -> str:
    up = name.upper()
    parts = [
        f"/* {name}.c: generated by digitkit {__version__}; do not edit. See {name}.h (its text follows). */\n",
        header,
        f"\n#define DM_CLASSES {CLASSES}\n#define DM_OUT_ZERO_POINT ({net.out_zero_point})\n"
        f"#define DM_SOFTMAX_INV_LOG2 {net.inverse_scale_log2}\n",
    ]
    widest = net.widest
    m_type = "int32_t"
    for i, layer in enumerate(net.layers, 1):
        dense = _dense_of(layer)
        units, depth = dense.w.shape
        if isinstance(layer, Conv):
            (kh, kw), (h, w, ch) = layer.kernel, layer.in_shape
            pool = f", max pool {layer.pool[0]}x{layer.pool[1]}" if layer.pool else ""
            title = (
                f"layer {i}: conv {kh}x{kw}, {h}x{w}x{ch} -> {'x'.join(map(str, layer.conv_shape))}{pool}; "
                f"weights input-major (row k = (ky, kx, c): the {units} weights of window input k)"
            )
        else:
            title = (
                f"layer {i}: {depth} -> {units}; weights input-major (row k: the {units} weights of input k)"
            )
        parts.append(
            f"\n/* {title} */\n"
            f"static const int8_t DM_W{i}[{depth * units}] = {{\n{_array(dense.w.T)}\n}};\n"
            f"static const int32_t DM_B{i}[{units}] = {{\n{_array(dense.bias)}\n}};\n"
            f"static const {m_type} DM_M{i}[{units}] = {{\n{_array(dense.mantissa, 16)}\n}};\n"
            f"static const int8_t DM_N{i}[{units}] = {{\n{_array(dense.shift)}\n}};\n"
        )
    table_type = "uint32_t" if net.rounding == "litert" else "int32_t"
    what = (
        "float32 bit patterns of expf(-input_scale * beta * d)"
        if net.rounding == "litert"
        else "Q0.31 exp(-input_scale * beta * d), gemmlowp"
    )
    parts.append(
        f"\n/* softmax: by difference d = max - x, {what} */\n"
        f"static const {table_type} DM_SOFTMAX_TABLE[256] = {{\n{_array(net.softmax_table, 8)}\n}};\n"
    )
    parts.append(_COMMON)
    parts.append(_LITERT if net.rounding == "litert" else _MICRO)
    for units in sorted({_dense_of(layer).w.shape[0] for layer in net.layers}):
        parts.append(_kernel(units, GROUP))
    calls = []
    buffers = ("s->act", "s->act2")
    current = "pixels"
    for i, layer in enumerate(net.layers, 1):
        if isinstance(layer, Conv):
            parts.append(_conv_text(i, layer, GROUP))
            dst = buffers[1] if current == buffers[0] else buffers[0]
            calls.append(f"    dm_conv{i}({current}, {dst}, s->acc);\n")
            current = dst
            continue
        units = layer.w.shape[0]
        parts.append(_dense_text(i, layer, GROUP))
        dst = (
            buffers[0] if current == "pixels" else current
        )  # all inputs are read before any output is written
        calls.append(
            f"    dm_dense{i}({current}, s->acc);\n"
            f"    for (c = 0; c < {units}; c++) {{\n"
            f"        {dst}[c] = (uint8_t)({_requantize_expr(i, layer, 's->acc[c]')});\n"
            f"    }}\n"
        )
        current = dst
    act, act2 = net.buffers
    second = f"    uint8_t act2[{act2}];\n" if act2 else ""
    parts.append(
        f"""
typedef struct {{
    int32_t acc[{widest}];
    uint8_t act[{act}]; /* int8 activations as q + 128 */
{second}}} dm_scratch;

#ifndef {up}_SCRATCH_ON_STACK
static dm_scratch dm_static_scratch;
#endif

int {name}_predict(const uint8_t pixels[{PIXELS}], int8_t probabilities[{CLASSES}])
{{
#ifdef {up}_SCRATCH_ON_STACK
    dm_scratch scratch;
    dm_scratch *const s = &scratch;
#else
    dm_scratch *const s = &dm_static_scratch;
#endif
    int8_t local[{CLASSES}];
    int8_t *const p = probabilities ? probabilities : local;
    int32_t c, best = 0;
    /* the first layer's u = q - zero point = (pixel - 128) + 128 = pixel */
{"".join(calls)}    dm_softmax({current}, p);
    for (c = 1; c < {CLASSES}; c++) {{
        best = p[c] > p[best] ? c : best;
    }}
    return (int)best;
}}

void {name}_dequantize(const int8_t probabilities[{CLASSES}], float out[{CLASSES}])
{{
    int c;
    for (c = 0; c < {CLASSES}; c++) {{
        out[c] = (float)((int32_t)probabilities[c] - {up}_PROB_ZERO_POINT) * {up}_PROB_SCALE;
    }}
}}
"""
    )
    return "".join(parts)


def generate(
    model: bytes, name: str, rounding: str = "litert", source_desc: str = ""
) -> tuple[str, str, Network]:
    """(header, source, network) for the int8 TFLite ``model``; ``name`` prefixes every symbol."""
    net = read_network(model, rounding)
    name = c_identifier(name)
    desc = source_desc or f"a TFLite model (sha256 {hashlib.sha256(model).hexdigest()})"
    header = header_text(name, net, desc)
    return header, source_text(name, net, header), net


# --- TFLite Micro: the model as a C array, and its arena ---------------------------------------------


def tflite_array(
    name: str, model: bytes, arena: Optional[int], arena_min: Optional[int], convolutional: bool = False
) -> tuple[str, str]:
    """(header, source) holding ``model`` as an aligned const array, for TFLite Micro users."""
    up = name.upper()
    ops = ["FullyConnected", "Softmax"] + (["Reshape", "Conv2D", "MaxPool2D"] if convolutional else [])
    resolver = (
        f"tflite::MicroMutableOpResolver<{len(ops)}> with "
        + ", ".join(f"Add{op}()" for op in ops[:-1])
        + f" and Add{ops[-1]}()"
    )
    if arena is None:
        arena_line = (
            f"/* {up}_ARENA_BYTES: not measured (install digitkit[tflm] on the exporting machine) */\n"
        )
    else:
        arena_line = (
            f"/* measured with the tflite-micro package: minimum {arena_min} bytes, plus {ARENA_MARGIN} margin */\n"
            f"#define {up}_ARENA_BYTES {arena}\n"
        )
    header = f"""\
/* {name}.h: the int8 .tflite (sha256 {hashlib.sha256(model).hexdigest()}) as a C array for TensorFlow
 * Lite Micro. Generated by digitkit {__version__}; do not edit. Ops: {", ".join(_OP_NAMES[op] for op in ops)}
 * ({resolver}). */
#ifndef {up}_H
#define {up}_H

#ifdef __cplusplus
extern "C" {{
#endif

extern const unsigned char {name}[];
extern const unsigned int {name}_len;
{arena_line}
#ifdef __cplusplus
}}
#endif

#endif /* {up}_H */
"""
    data = np.frombuffer(model, np.uint8)
    body = ",\n".join(
        "    " + ",".join(f"0x{b:02x}" for b in data[i : i + 24].tolist()) for i in range(0, data.size, 24)
    )
    source = f"""\
/* {name}.c: generated by digitkit {__version__}; do not edit. */
#include "{name}.h"

#if defined(__GNUC__) || defined(__clang__)
#define DM_ALIGNED __attribute__((aligned(16)))
#else
#define DM_ALIGNED /* align this array to 16 bytes with your compiler's attribute */
#endif

const unsigned char {name}[{len(model)}] DM_ALIGNED = {{
{body}
}};
const unsigned int {name}_len = {len(model)}u;
"""
    return header, source


_OP_NAMES = {
    "FullyConnected": "FULLY_CONNECTED",
    "Softmax": "SOFTMAX",
    "Reshape": "RESHAPE",
    "Conv2D": "CONV_2D",
    "MaxPool2D": "MAX_POOL_2D",
}

_PROBE = """
import sys
import numpy as np
from tflite_micro import runtime
data = open(sys.argv[1], 'rb').read()
interpreter = runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2]))
interpreter.set_input(np.zeros((1, 784), np.int8), 0)
interpreter.invoke()
print('ok')
"""


def _arena_works(path: Path, size: int) -> bool:
    """In a child process: TFLite Micro crashes (rather than failing) just below its minimum."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, str(path), str(size)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and done.stdout.strip().endswith("ok")


def measure_arena(path: Path) -> Optional[int]:
    """The smallest TFLite Micro arena that runs the model (bisection, to the byte); None without tflite-micro."""
    import importlib.util

    if importlib.util.find_spec("tflite_micro") is None:
        return None
    low, high = 1024, 1 << 16
    if not _arena_works(path, high):
        return None
    while high - low > 1:
        middle = (low + high) // 2
        if _arena_works(path, middle):
            high = middle
        else:
            low = middle
    return high


def input_info() -> TensorInfo:
    return TensorInfo("pixels", (None, PIXELS), "uint8", float(np.float32(1 / 255)), 0)


def output_info(net: Network) -> TensorInfo:
    return TensorInfo(
        "probabilities", (None, CLASSES), "int8", 2.0**-net.inverse_scale_log2, net.out_zero_point
    )


def check_model(path: Path) -> bytes:
    if not path.is_file():
        raise ArtifactError(f"No int8 TFLite model at {path}", "Export with --int8 alongside --c")
    return path.read_bytes()


def export_c(ctx: ExportContext, path: Path) -> ConverterInfo:
    """The int8 TFLite model of this run as C99 (``path``, its header beside it) plus the TFLite Micro
    array, each file written once into the staging directory."""
    from .formats import TARGETS

    source_target = next(t for t in TARGETS if (t.format, t.mode) == ("tflite", "int8"))
    model_path = ctx.staged(source_target.filename)
    model = check_model(model_path)
    model_sha = hashlib.sha256(model).hexdigest()
    name = c_identifier(path.stem)
    header, source, net = generate(model, name, ctx.c_rounding, f"{model_path.name} (sha256 {model_sha})")
    header_path = path.with_suffix(".h")
    header_path.write_text(header, encoding="utf-8")
    path.write_text(source, encoding="utf-8")

    array_name = f"{name}_tflite"
    arena_min = measure_arena(model_path)
    arena = None if arena_min is None else -(-(arena_min + ARENA_MARGIN) // 16) * 16
    convolutional = any(isinstance(layer, Conv) for layer in net.layers)
    array_header, array_source = tflite_array(array_name, model, arena, arena_min, convolutional)
    array_h, array_c = path.with_name(f"{array_name}.h"), path.with_name(f"{array_name}.c")
    array_h.write_text(array_header, encoding="utf-8")
    array_c.write_text(array_source, encoding="utf-8")

    tflm = TflmArray(_ref(array_c), _ref(array_h), model_sha, arena, arena_min)
    section = CSource(
        _ref(header_path),
        FileRef(model_path.name, model_sha),
        net.rounding,
        ROUNDINGS[net.rounding],
        net.flash_bytes,
        net.scratch_bytes,
        tflm,
    )
    return ConverterInfo(
        Tool("digitkit.export.c_source", __version__),
        c=section,
        inputs=(input_info(),),
        outputs=(output_info(net),),
    )


def _ref(path: Path) -> FileRef:
    return FileRef(path.name, sha256_file(path))
