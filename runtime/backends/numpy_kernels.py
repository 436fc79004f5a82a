"""The numpy backend's kernels, rounding as LiteRT's default x86 path (the XNNPACK delegate) does.

Each kernel is built once per model (weights transposed, biases folded, scales and tables precomputed)
and then ``make(batch, x)`` gives, per slot, a closure that reads ``x`` and writes a buffer it owns.
Where a rounding step matters, the comment names the reference it follows:

- int8 FULLY_CONNECTED (XNNPACK src/operators/fully-connected-nc.c, setup_scale_params_qx8_qcyw, and
  src/qs8-qc8w-gemm/gen/*-minmax-fp32-scalar-fmagic.c): the int32 accumulator holds the bias with the
  input zero point folded in (bias - zp_in * sum w); scale[c] = (float)(in_scale * w_scale[c]) / out_scale
  in float32, in that order; out = rint_half_even(clamp((float)acc * scale[c], qmin - zp, qmax - zp)) + zp,
  where [qmin, qmax] is the fused activation's range.
- int8 SOFTMAX (TFLite tensorflow/lite/kernels/internal/optimized/optimized_ops.h, Softmax with
  params.table, filled by PopulateSoftmaxLookupTable in activations.cc): table[255 - v] =
  expf(-(in_scale * beta) * v) in float32; sum of table[255 - max + x] in float32, in order;
  inv = 1.0f / (sum * out_scale); q = round_half_away(table * inv) + zp, clamped. (On aarch64 with clang
  TFLite uses a uint16 lookup table instead, TFLITE_SOFTMAX_USE_UINT16_LUT; not followed here.)
- hybrid FULLY_CONNECTED (TFLite fully_connected.cc EvalHybrid with tensor_utils::BatchQuantizeFloats and
  MatrixBatchVectorMultiplyAccumulate): each input row is quantized to int8 (asymmetric or symmetric, as
  the op's asymmetric_quantize_inputs says), the integer dot product is scaled by row_scale * w_scale and
  added to the float bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import numpy as np

from ..errors import ArtifactError

Run = Callable[[], None]
F32 = np.float32
# float32 holds every integer below 2^24 exactly: a float32 matrix product of integers is exact while
# every partial sum stays below it. Tests lower it to 0 to force the int64 path.
FLOAT32_EXACT_LIMIT = 1 << 24


class Kernel(Protocol):
    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        """A closure reading ``x`` (batch rows) and writing the returned buffer, which it owns."""
        ...


def unsupported(problem: str) -> ArtifactError:
    return ArtifactError(problem, "Run it on the litert backend, or export it with `digitkit export`")


# Fused activations (schema.fbs ActivationFunctionType) as a real-valued range.
_ACTIVATIONS = {0: (-np.inf, np.inf), 1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


def activation_range(code: int) -> tuple[float, float]:
    if code not in _ACTIVATIONS:
        raise unsupported(f"The model uses fused activation {code}, which the numpy backend does not run")
    return _ACTIVATIONS[code]


def quantized_range(code: int, scale: float, zero_point: int, dtype: np.dtype) -> tuple[int, int]:
    """[qmin, qmax] of a fused activation on a quantized output (kernel_util.cc
    CalculateActivationRangeQuantized: the bounds quantized with round-half-away, then clamped)."""
    info = np.iinfo(dtype)
    low, high = activation_range(code)

    def q(v: float) -> int:
        r = float(np.float32(v) / np.float32(scale))
        return zero_point + int(np.copysign(np.floor(abs(r) + 0.5), r))

    return max(int(info.min), q(low) if np.isfinite(low) else int(info.min)), min(
        int(info.max), q(high) if np.isfinite(high) else int(info.max)
    )


class IntegerMatmul:
    """acc = x @ w.T + bias for integer x (|x| <= x_max), int8 w, integer bias: exact, as an int32 would.

    At load it proves, per output channel, sum|w| * x_max + |bias| < 2^24; then every partial sum of a
    float32 product is an integer below 2^24, so a float32 BLAS product is exact. Otherwise it falls
    back to int64 accumulation (wrapped to int32, as the native kernels wrap)."""

    def __init__(self, w: np.ndarray, bias: np.ndarray, x_max: int) -> None:
        w64 = w.astype(np.int64)
        self.bias64 = bias.astype(np.int64)
        bound = np.abs(w64).sum(axis=1) * x_max + np.abs(self.bias64)
        self.float32 = bool(bound.max(initial=0) < FLOAT32_EXACT_LIMIT)
        # The bias rides in the product as one more input column of ones: still exact under the bound.
        self.wt32 = np.ascontiguousarray(np.concatenate([w.T, self.bias64[None, :]]), dtype=F32)
        self.bias32 = self.bias64.astype(F32)
        self.wt64 = w64.T  # a view of the (N, K) rows: numpy's integer matmul runs far faster on it
        for array in (self.wt32, self.bias32, self.wt64, self.bias64):
            array.flags.writeable = False

    def make(self, batch: int, x: np.ndarray, offset: int = 0) -> tuple[Run, np.ndarray]:
        """A closure writing acc of (x - offset) as float32 (exact integers on the float32 path) into the
        returned buffer."""
        acc = np.empty((batch, self.wt32.shape[1]), F32)
        if self.float32:
            xf = np.ones((batch, x.shape[1] + 1), F32)
            xin = xf[:, :-1]
            wt, shift = self.wt32, F32(offset)

            def run() -> None:
                np.subtract(x, shift, out=xin)  # whole numbers: exact
                np.matmul(xf, wt, out=acc)

            return run, acc
        wt64, bias64 = self.wt64, self.bias64

        def run_int64() -> None:
            total = np.matmul(x.astype(np.int64) - offset, wt64)
            total += bias64
            total += 1 << 31
            total &= 0xFFFFFFFF
            total -= 1 << 31  # int32 wrap-around
            np.copyto(acc, total, casting="unsafe")  # int -> float32, round to nearest even

        return run_int64, acc

    def make_int(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        """The same sum as int64 values (for the fixed-point path)."""
        out = np.empty((batch, self.wt32.shape[1]), np.int64)
        if self.float32:
            run_f, acc = self.make(batch, x)

            def run() -> None:
                run_f()
                np.copyto(out, acc, casting="unsafe")

            return run, out
        wt64, bias64 = self.wt64, self.bias64

        def run_int64() -> None:
            np.matmul(x.astype(np.int64), wt64, out=out)
            np.add(out, bias64, out=out)
            np.add(out, 1 << 31, out=out)
            np.bitwise_and(out, 0xFFFFFFFF, out=out)
            np.subtract(out, 1 << 31, out=out)

        return run_int64, out


def folded_bias(w: np.ndarray, bias: Optional[np.ndarray], zp_in: int) -> np.ndarray:
    """bias - zp_in * sum_k w[c, k]: the input zero point folded into the bias (XNNPACK's packing)."""
    b = np.zeros(w.shape[0], np.int64) if bias is None else bias.astype(np.int64)
    folded: np.ndarray = b - zp_in * w.astype(np.int64).sum(axis=1)
    return folded


class FullyConnectedFloat:
    def __init__(self, w: np.ndarray, bias: Optional[np.ndarray], activation: int) -> None:
        self.wt = np.ascontiguousarray(w.T, dtype=F32)
        self.bias = None if bias is None else bias.astype(F32)
        self.low, self.high = activation_range(activation)

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty((batch, self.wt.shape[1]), F32)
        wt, bias, low, high = self.wt, self.bias, F32(self.low), F32(self.high)
        clamp_low, clamp_high = np.isfinite(low), np.isfinite(high)

        def run() -> None:
            np.matmul(x, wt, out=out)
            if bias is not None:
                np.add(out, bias, out=out)
            if clamp_low:
                np.maximum(out, low, out=out)
            if clamp_high:
                np.minimum(out, high, out=out)

        return run, out


@dataclass(frozen=True)
class QuantizedDense:
    """An int8 FULLY_CONNECTED as the file gives it; each rounding mode builds its kernel from it."""

    w: np.ndarray  # int8 (units, depth), symmetric per output channel
    w_scale: np.ndarray
    bias: Optional[np.ndarray]  # int32 (units,)
    in_scale: float
    zp_in: int
    out_scale: float
    zp_out: int
    qrange: tuple[int, int]  # the output's clamp, fused activation included


class FullyConnectedInt8:
    """int8 x int8 -> int8 with XNNPACK's fp32 requantization (see the module docstring).

    The product is taken on u = q - zp_in with the plain bias, so an input at the zero point (a black
    pixel, a ReLU zero) adds exactly 0 and may be skipped; when that sum is not provably exact in
    float32 but q with the folded bias is, it takes q. Either way it is the same integer."""

    def __init__(self, layer: QuantizedDense) -> None:
        w, bias, zp_in, zp_out = layer.w, layer.bias, layer.zp_in, layer.zp_out
        plain = np.zeros(w.shape[0], np.int64) if bias is None else bias.astype(np.int64)
        self.matmul = IntegerMatmul(w, plain, max(abs(-128 - zp_in), abs(127 - zp_in)))
        self.offset = zp_in
        if not self.matmul.float32:
            folded = IntegerMatmul(w, folded_bias(w, bias, zp_in), 128)
            if folded.float32:
                self.matmul, self.offset = folded, 0
        # Fed float32 u (with a last column of ones for the bias), rows of zero inputs may be skipped.
        self.on_u = self.matmul.float32 and self.offset == zp_in
        self.zp_in = zp_in
        scales = np.broadcast_to(np.asarray(layer.w_scale, F32), (w.shape[0],))
        self.scale = (F32(layer.in_scale) * scales) / F32(layer.out_scale)  # float32, in XNNPACK's order
        if not np.all(self.scale < 256.0):
            raise unsupported("A FULLY_CONNECTED requantization scale is 256 or more, which XNNPACK refuses")
        self.scale.flags.writeable = False
        self.low, self.high = F32(layer.qrange[0] - zp_out), F32(layer.qrange[1] - zp_out)
        self.zp_out = F32(zp_out)
        self.qrange = layer.qrange

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        run_acc, acc = self.matmul.make(batch, x, self.offset)
        out = np.empty(acc.shape, np.int8)
        scale, low, high, zp = self.scale, self.low, self.high, self.zp_out

        def run() -> None:
            run_acc()
            np.multiply(acc, scale, out=acc)
            np.clip(acc, low, high, out=acc)
            np.rint(acc, out=acc)  # half to even, as XNNPACK's magic-bias rounding
            np.add(acc, zp, out=out, casting="unsafe")  # whole numbers in [-128, 127]: exact

        return run, out


# At batch 1 a layer multiplies only the weight rows of its nonzero inputs when they are at most this
# fraction of its inputs and it has at least SPARSE_MIN_UNITS outputs: gathering a row costs about as much
# as reading it three times over, and a narrow layer gains nothing. Tests set it to 0 or 1.
SPARSE_FRACTION = 0.35
SPARSE_MIN_UNITS = 64


class Int8Chain:
    """Consecutive int8 FULLY_CONNECTED layers that all take u = q - zp_in exactly in float32.

    Between layers the values stay float32: the next layer's u is rint(clamp(acc * scale)), which is
    its q - zp (the zero point of a tensor is the same on both sides), so no int8 round trip. The input
    and the last output are int8, as in the graph. At batch 1, inputs that are zero (about 80% of MNIST
    pixels, and most ReLU outputs) are skipped: x[nz] @ W[nz], the sum taken in another order, which the
    float32 exactness proof allows."""

    def __init__(self, layers: list[FullyConnectedInt8]) -> None:
        if not layers or not all(layer.on_u for layer in layers):
            raise ValueError("every layer must take u in float32")
        self.layers = layers

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        layers = self.layers
        inputs = [
            np.ones((batch, layer.matmul.wt32.shape[0]), F32) for layer in layers
        ]  # u and a column of ones
        out = np.empty((batch, layers[-1].matmul.wt32.shape[1]), np.int8)
        first, shift = inputs[0][:, :-1], F32(layers[0].zp_in)
        steps = [
            self._step(layer, batch, inputs[i], inputs[i + 1][:, :-1] if i + 1 < len(layers) else out)
            for i, layer in enumerate(layers)
        ]

        def run() -> None:
            np.subtract(x, shift, out=first)  # u = q - zp_in, whole numbers: exact
            for step in steps:
                step()

        return run, out

    @staticmethod
    def _step(layer: FullyConnectedInt8, batch: int, xf: np.ndarray, dest: np.ndarray) -> Run:
        wt, scale, low, high, zp = layer.matmul.wt32, layer.scale, layer.low, layer.high, layer.zp_out
        depth, units = wt.shape
        acc = np.empty((batch, units), F32)
        last = dest.dtype == np.int8
        rounded = acc if last else dest

        def finish() -> None:
            np.multiply(acc, scale, out=acc)
            np.maximum(acc, low, out=acc)
            np.minimum(acc, high, out=acc)
            np.rint(acc, out=rounded)  # half to even, as XNNPACK's magic-bias rounding
            if last:
                np.add(acc, zp, out=dest, casting="unsafe")  # whole numbers in [-128, 127]: exact

        limit = int(depth * SPARSE_FRACTION) if units >= SPARSE_MIN_UNITS else 0
        if batch != 1 or limit <= 0:

            def dense() -> None:
                np.matmul(xf, wt, out=acc)
                finish()

            return dense
        u, bits, acc1 = xf[0], xf[0].view(np.int32), acc[0]
        rows = np.empty_like(wt)  # the gathered weight rows

        def sparse() -> None:
            nz = bits.nonzero()[0]  # -0.0 counts as nonzero: harmless, its row adds 0
            n = nz.size
            if n <= limit:
                np.dot(u.take(nz), wt.take(nz, axis=0, out=rows[:n], mode="clip"), out=acc1)
            else:
                np.dot(u, wt, out=acc1)
            finish()

        return sparse


def exp_table(in_scale: float, beta: float) -> np.ndarray:
    """TFLite's PopulateSoftmaxLookupTable: table[255 - v] = expf(scale * v), scale = -in_scale * beta (float32).

    expf is taken as exp in double rounded to float32, which is what glibc's expf returns for these
    arguments (numpy's float32 exp differs in the last bit on some of them)."""
    scale = F32(-F32(in_scale) * F32(beta))
    args = scale * np.arange(256, dtype=F32)
    table = np.exp(args.astype(np.float64)).astype(F32)[::-1].copy()
    table.flags.writeable = False
    return table


class SoftmaxInt8:
    """TFLite's optimized int8 softmax with its float exp table (see the module docstring)."""

    def __init__(self, in_scale: float, beta: float, out_scale: float, zp_out: int) -> None:
        self.table = exp_table(in_scale, beta)
        # Indexed by (x - max) mod 256, the byte of the int8 difference: entry 0 is table[255], entry
        # 256 - k is table[255 - k].
        self.by_difference = np.roll(self.table, 1)
        self.out_scale = F32(out_scale)
        # 1 / (sum * scale) is (1 / scale) / sum, bit for bit, when the scale is a power of two.
        mantissa = np.frexp(self.out_scale)[0]
        self.inverse_scale = F32(1.0) / self.out_scale if mantissa == 0.5 else None
        # round_half_away(p) clamped to [0, 127 - zp] is the count of the k - 0.5, k = 1 .. 127 - zp, at most p.
        self.halves = np.arange(1, 128 - zp_out, dtype=F32) - F32(0.5)
        for array in (self.by_difference, self.halves):
            array.flags.writeable = False
        self.zp_out = zp_out

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty(x.shape, np.int8)
        diff = np.empty(x.shape, np.int8)
        diff_bytes = diff.view(np.uint8)
        p = np.empty(x.shape, F32)
        table, out_scale, inverse_scale, halves, zp = (
            self.by_difference,
            self.out_scale,
            self.inverse_scale,
            self.halves,
            self.zp_out,
        )
        one = F32(1.0)

        def run() -> None:
            np.subtract(x, x.max(axis=1, keepdims=True), out=diff)  # x - max wraps in int8 to its byte
            e = table[diff_bytes]  # table[255 - max + x]
            total = np.add.accumulate(e, axis=1)[:, -1:]  # float32, left to right, as the C loop
            inv = np.divide(inverse_scale, total) if inverse_scale is not None else one / (total * out_scale)
            np.multiply(e, inv, out=p)  # float32, as the C product
            np.add(
                halves.searchsorted(p, side="right"), zp, out=out, casting="unsafe"
            )  # round half away, clamped

        return run, out


class SoftmaxFloat:
    def __init__(self, beta: float) -> None:
        self.beta = F32(beta)

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty(x.shape, F32)
        beta = self.beta

        def run() -> None:
            np.subtract(x, x.max(axis=1, keepdims=True), out=out)
            if beta != 1:
                np.multiply(out, beta, out=out)
            np.exp(out, out=out)
            np.divide(out, out.sum(axis=1, keepdims=True), out=out)

        return run, out


class Dequantize:
    """int8/uint8 -> float32: (q - zp) * scale, one rounding (XNNPACK's convert and TFLite's reference agree)."""

    def __init__(self, scale: float, zero_point: int) -> None:
        self.scale, self.zp = F32(scale), F32(zero_point)

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty(x.shape, F32)
        scale, zp = self.scale, self.zp

        def run() -> None:
            np.subtract(x, zp, out=out, dtype=F32)
            np.multiply(out, scale, out=out)

        return run, out


class Cast:
    def __init__(self, dtype: np.dtype) -> None:
        self.dtype = dtype

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty(x.shape, self.dtype)

        def run() -> None:
            np.copyto(out, x, casting="unsafe")

        return run, out


class Reshape:
    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape  # per image

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        return (lambda: None), x.reshape((batch,) + self.shape)


class QuantizeFloat:
    """float32 -> int8/uint8 as XNNPACK's f32-qs8 convert: rint_half_even(clamp(x * (1 / scale))) + zp."""

    def __init__(self, scale: float, zero_point: int, dtype: np.dtype) -> None:
        info = np.iinfo(dtype)
        self.inv, self.zp, self.dtype = F32(1.0) / F32(scale), F32(zero_point), dtype
        self.low, self.high = F32(int(info.min) - zero_point), F32(int(info.max) - zero_point)

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        tmp = np.empty(x.shape, F32)
        out = np.empty(x.shape, self.dtype)
        inv, zp, low, high = self.inv, self.zp, self.low, self.high

        def run() -> None:
            np.multiply(x, inv, out=tmp)
            np.clip(tmp, low, high, out=tmp)
            np.rint(tmp, out=tmp)
            np.add(tmp, zp, out=out, casting="unsafe")

        return run, out


class FullyConnectedHybrid:
    """float input, int8 weights, float output: TFLite's hybrid kernel (see the module docstring)."""

    def __init__(
        self,
        w: np.ndarray,
        w_scale: np.ndarray,
        bias: Optional[np.ndarray],
        activation: int,
        asymmetric: bool,
    ) -> None:
        self.matmul = IntegerMatmul(w, np.zeros(w.shape[0], np.int64), 128)
        self.row_sums = w.astype(np.int64).sum(axis=1).astype(F32)  # exact: |sum| < 2^17
        self.w_scale = np.broadcast_to(np.asarray(w_scale, F32), (w.shape[0],)).copy()
        self.bias = np.zeros(w.shape[0], F32) if bias is None else bias.astype(F32)
        self.low, self.high = activation_range(activation)
        self.asymmetric = asymmetric

    def _quantize(self, x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """q (int8 values, as float32) and per-row (scale, offset): tensor_utils' BatchQuantizeFloats."""
        lo = np.minimum(x.min(axis=1), F32(0)).astype(np.float64)
        hi = np.maximum(x.max(axis=1), F32(0)).astype(np.float64)
        flat = lo == hi
        if self.asymmetric:
            scale = np.where(flat, 1.0, (hi - lo) / 255.0)
            zp_min, zp_max = -128.0 - lo / scale, 127.0 - hi / scale
            use_min = (128.0 + np.abs(lo / scale)) < (127.0 + np.abs(hi / scale))
            zp = np.where(use_min, zp_min, zp_max)
            offset = np.where(
                zp <= -128, -128.0, np.where(zp >= 127, 127.0, np.copysign(np.floor(np.abs(zp) + 0.5), zp))
            )
            offset = np.where(flat, 0.0, offset)
            scale32 = scale.astype(F32)
            inv = (F32(1.0) / scale32)[:, None]
            v = (x * inv).astype(np.float64) + offset[:, None]  # float32 product; + offset exact in double
            qmin, qmax = -128.0, 127.0
        else:
            rng = np.maximum(np.abs(lo), np.abs(hi))
            scale32 = np.where(flat, F32(1.0), (rng / 127.0)).astype(F32)
            inv = np.where(flat, 0.0, 127.0 / np.where(flat, 1.0, rng)).astype(F32)[:, None]
            offset = np.zeros_like(lo)
            v = (x * inv).astype(np.float64)
            qmin, qmax = -127.0, 127.0
        v = np.copysign(np.floor(np.abs(v) + 0.5), v)
        np.clip(v, qmin, qmax, out=v)
        np.copyto(q, v, casting="unsafe")
        return scale32, offset.astype(F32)

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        q = np.empty(x.shape, np.int8)
        run_acc, acc = self.matmul.make(batch, q)
        out = np.empty(acc.shape, F32)
        row_sums, w_scale, bias = self.row_sums, self.w_scale, self.bias
        low, high = F32(self.low), F32(self.high)

        def run() -> None:
            scale, offset = self._quantize(x, q)
            run_acc()
            np.subtract(acc, offset[:, None] * row_sums, out=acc)  # minus offset * row sum: exact integers
            np.multiply(scale[:, None], w_scale, out=out)
            np.multiply(out, acc, out=out)
            np.add(out, bias, out=out)
            if np.isfinite(low):
                np.maximum(out, low, out=out)
            if np.isfinite(high):
                np.minimum(out, high, out=out)

        return run, out


# Convolutions run as im2col: each output pixel's KH×KW×C window (in the OHWI filter's order) is one
# row, and the row kernel (FullyConnectedFloat, FullyConnectedInt8, FullyConnectedHybrid's sums or
# the micro kernel) computes every output channel of it, with the same accumulation and rounding as
# that op: XNNPACK's int8 convolution requantizes as its fully connected does (the per-channel
# float32 scale, rint, zero point), and TFLite Micro's reference conv as its fully connected
# (MultiplyByQuantizedMultiplier per channel). Only stride/dilation 1..n with VALID padding is run.
# The batch is taken in groups of CONV_GROUP images so the window buffers stay small.
CONV_GROUP = 32


@dataclass(frozen=True)
class Window:
    """A VALID 2-D window: kernel size, strides and dilations; the input and output (H, W, C)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]

    def slices(self) -> list[tuple[slice, slice]]:
        (kh, kw), (sh, sw), (dh, dw) = self.kernel, self.stride, self.dilation
        oh, ow = self.out_shape[:2]
        return [
            (slice(i * dh, i * dh + (oh - 1) * sh + 1, sh), slice(j * dw, j * dw + (ow - 1) * sw + 1, sw))
            for i in range(kh)
            for j in range(kw)
        ]


class Conv2D:
    """CONV_2D as windows (im2col) through a row kernel built for ``KH * KW * C`` inputs."""

    def __init__(self, window: Window, rows: Kernel) -> None:
        self.window, self.rows = window, rows

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        (kh, kw), (oh, ow, oc) = self.window.kernel, self.window.out_shape
        channels = self.window.in_shape[2]
        group = min(batch, CONV_GROUP)
        patches = np.empty((group, oh, ow, kh * kw, channels), x.dtype)
        run_rows, rows_out = self.rows.make(group * oh * ow, patches.reshape(group * oh * ow, -1))
        out = np.empty((batch, oh, ow, oc), rows_out.dtype)
        grouped = rows_out.reshape(group, oh, ow, oc)
        slices = self.window.slices()

        def run() -> None:
            for start in range(0, batch, group):
                n = min(group, batch - start)
                part = x[start : start + n]
                for k, (rs, cs) in enumerate(slices):
                    patches[:n, :, :, k, :] = part[:, rs, cs, :]
                run_rows()
                out[start : start + n] = grouped[:n]

        return run, out


class MaxPool2D:
    """MAX_POOL_2D (VALID): the window's maximum, then the fused activation's clamp. int8 needs no
    rounding: the output keeps the input's scale and zero point, as TFLite requires."""

    def __init__(self, window: Window, low: float, high: float) -> None:
        self.window, self.low, self.high = window, low, high

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        oh, ow, oc = self.window.out_shape
        out = np.empty((batch, oh, ow, oc), x.dtype)
        slices = self.window.slices()
        if np.issubdtype(x.dtype, np.integer):
            info = np.iinfo(x.dtype)
            low_v, high_v = max(self.low, info.min), min(self.high, info.max)
            clamp = low_v > info.min or high_v < info.max
            low, high = x.dtype.type(low_v), x.dtype.type(high_v)
        else:
            clamp = bool(np.isfinite(self.low) or np.isfinite(self.high))
            low, high = F32(self.low), F32(self.high)
        first, rest = slices[0], slices[1:]

        def run() -> None:
            np.copyto(out, x[:, first[0], first[1], :])
            for rs, cs in rest:
                np.maximum(out, x[:, rs, cs, :], out=out)
            if clamp:
                np.clip(out, low, high, out=out)

        return run, out


class HybridConv2D:
    """float input, per-channel int8 filter, float output: TFLite's conv.cc EvalHybridPerChannel. Each
    image (all H×W×C values) is quantized asymmetrically to int8 once, the windows' integer sums are
    taken on (q - offset), and scaled by image_scale * filter_scale[c], plus the float bias."""

    def __init__(self, window: Window, dense: FullyConnectedHybrid) -> None:
        self.window, self.dense = window, dense

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        (kh, kw), (oh, ow, oc) = self.window.kernel, self.window.out_shape
        channels = self.window.in_shape[2]
        dense = self.dense
        q = np.empty(x.shape, np.int8)
        group = min(batch, CONV_GROUP)
        patches = np.empty((group, oh, ow, kh * kw, channels), np.int8)
        run_acc, acc = dense.matmul.make(group * oh * ow, patches.reshape(group * oh * ow, -1))
        out = np.empty((batch, oh, ow, oc), F32)
        slices = self.window.slices()
        low, high = F32(dense.low), F32(dense.high)

        def run() -> None:
            scale, offset = dense._quantize(x.reshape(batch, -1), q.reshape(batch, -1))
            for start in range(0, batch, group):
                n = min(group, batch - start)
                part = q[start : start + n]
                for k, (rs, cs) in enumerate(slices):
                    patches[:n, :, :, k, :] = part[:, rs, cs, :]
                run_acc()
                sums = acc.reshape(group, oh, ow, oc)[:n]
                corrected = sums - offset[start : start + n, None, None, None] * dense.row_sums
                y = (corrected * dense.w_scale) * scale[start : start + n, None, None, None]
                y += dense.bias
                out[start : start + n] = y
            if np.isfinite(low):
                np.maximum(out, low, out=out)
            if np.isfinite(high):
                np.minimum(out, high, out=out)

        return run, out
