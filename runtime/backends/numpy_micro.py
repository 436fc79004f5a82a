"""Fixed-point kernels rounding as TensorFlow Lite Micro does (the "numpy-micro" backend).

TFLite Micro builds without TFLITE_SINGLE_ROUNDING, so requantization is gemmlowp's double rounding:

- QuantizeMultiplier (tensorflow/lite/kernels/internal/quantization_util.cc): m = frexp(real) mantissa,
  q = round_half_away(m * 2^31) (2^31 -> 2^30 with shift + 1), shift < -31 -> 0.
- MultiplyByQuantizedMultiplier (tensorflow/lite/kernels/internal/common.cc, the #else branch):
  RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << max(shift, 0), q), max(-shift, 0)).
- FULLY_CONNECTED int8 (tensorflow/lite/micro/kernels/fully_connected_common.cc and
  reference/integer_ops/fully_connected.h): real = (double)in_scale * (double)w_scale[c] / (double)out_scale,
  out = clamp(MBQM(acc, q[c], shift[c]) + zp_out, act_min, act_max).
- SOFTMAX int8 (tensorflow/lite/micro/kernels/softmax_common.cc, reference/softmax.h): gemmlowp's
  fixed-point exp on Q5.26 input differences (PreprocessSoftmaxScaling, diff_min from CalculateInputRadius),
  sums in Q12.19, GetReciprocal (one_over_one_plus_x_for_x_in_0_1, Newton-Raphson), then a rounding shift.
- QUANTIZE float -> int8 (reference/quantize.h AffineQuantize): round_half_away(x / scale) + zp, clamped.

The gemmlowp primitives (fixedpoint/fixedpoint.h) work here on int64 arrays holding int32 values.
"""

from __future__ import annotations

import math

import numpy as np

from .numpy_kernels import F32, IntegerMatmul, QuantizedDense, Run, folded_bias, unsupported

I64 = np.int64
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul: (a * b + nudge) / 2^31, truncated toward zero."""
    ab = np.asarray(a, I64) * np.asarray(b, I64)
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    t = ab + nudge
    q = np.where(t >= 0, t >> 31, -((-t) >> 31))
    overflow = (np.asarray(a) == INT32_MIN) & (np.asarray(b) == INT32_MIN)
    return np.where(overflow, INT32_MAX, q).astype(I64)


def rdbpot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """RoundingDivideByPOT: arithmetic shift right, rounding to nearest, ties away from zero."""
    x = np.asarray(x, I64)
    mask = (np.left_shift(I64(1), np.asarray(exponent, I64))) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    out: np.ndarray = (x >> exponent) + (remainder > threshold)
    return out


def saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT with a positive exponent."""
    threshold = (1 << (31 - exponent)) - 1
    out = np.asarray(x, I64) << exponent
    out = np.where(x > threshold, INT32_MAX, out)
    return np.where(x < -threshold, INT32_MIN, out)


def quantize_multiplier(real: float) -> tuple[int, int]:
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    q = int(math.copysign(math.floor(abs(mantissa) * (1 << 31) + 0.5), mantissa))
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def multiply_by_quantized_multiplier(
    x: np.ndarray, q: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    shift = np.asarray(shift, I64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap32(np.asarray(x, I64) << left), q), right)


def _exp_quarter(a: np.ndarray) -> np.ndarray:
    """exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31 in and out."""
    constant_term, one_third = 1895147668, 715827883
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return wrap32(constant_term + srdhm(constant_term, wrap32(x + poly)))


def exp_on_negative_values(a: np.ndarray, integer_bits: int = 5) -> np.ndarray:
    """gemmlowp's exp for a <= 0 in Q(integer_bits).(31 - integer_bits); result in Q0.31."""
    fractional = 31 - integer_bits
    quarter = 1 << (fractional - 2)
    a_mod = wrap32((a & (quarter - 1)) - quarter)
    result = _exp_quarter(saturating_shift_left(a_mod, integer_bits))
    remainder = wrap32(a_mod - a)
    multipliers = (
        (-2, 1672461947),
        (-1, 1302514674),
        (0, 790015084),
        (1, 290630308),
        (2, 39332535),
        (3, 720401),
        (4, 242),
    )
    for exponent, multiplier in multipliers:
        if integer_bits > exponent:
            result = np.where(remainder & (1 << (fractional + exponent)), srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """one_over_one_plus_x_for_x_in_0_1: Q0.31 in, Q0.31 out."""
    s = np.asarray(a, I64) + INT32_MAX
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))  # RoundingHalfSum, truncating
    x = wrap32(1515870810 + srdhm(half_denominator, -1010580540))
    one_q2 = 1 << 29
    for _ in range(3):
        t = wrap32(one_q2 - srdhm(half_denominator, x))
        x = wrap32(x + saturating_shift_left(srdhm(x, t), 2))
    return saturating_shift_left(x, 1)


class FullyConnectedMicro:
    def __init__(self, layer: QuantizedDense) -> None:
        w = layer.w
        self.matmul = IntegerMatmul(w, folded_bias(w, layer.bias, layer.zp_in), 128)
        scales = np.broadcast_to(np.asarray(layer.w_scale, F32), (w.shape[0],))
        pairs = [
            quantize_multiplier(float(layer.in_scale) * float(s) / float(layer.out_scale)) for s in scales
        ]
        self.q = np.array([p[0] for p in pairs], I64)
        self.shift = np.array([p[1] for p in pairs], I64)
        self.zp_out, self.qrange = layer.zp_out, layer.qrange

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        run_acc, acc = self.matmul.make_int(batch, x)
        out = np.empty(acc.shape, np.int8)
        q, shift, zp, (low, high) = self.q, self.shift, self.zp_out, self.qrange

        def run() -> None:
            run_acc()
            y = multiply_by_quantized_multiplier(acc, q, shift) + zp
            np.clip(y, low, high, out=y)
            np.copyto(out, y, casting="unsafe")

        return run, out


class SoftmaxMicro:
    """TFLite Micro's int8 softmax. Every input difference d = max - x is one of 256 values, so the
    per-difference exp (Q0.31) and its Q12.19 share of the sum are tabulated at load."""

    def __init__(self, in_scale: float, beta: float, out_scale: float, zp_out: int) -> None:
        if zp_out != -128 or np.float32(out_scale) != np.float32(1.0 / 256):
            raise unsupported("An int8 SOFTMAX has an output other than scale 1/256, zero point -128")
        real = min(
            float(beta) * float(in_scale) * (1 << 26), float((1 << 31) - 1)
        )  # PreprocessSoftmaxScaling
        multiplier, left_shift = quantize_multiplier(real)
        if left_shift < 0:
            raise unsupported("An int8 SOFTMAX has an input scale TFLite Micro cannot run")
        diff_min = -int(math.floor(31.0 * (1 << 26) / (1 << left_shift)))  # CalculateInputRadius(5, shift)
        diffs = -np.arange(256, dtype=I64)
        rescaled = srdhm(wrap32(diffs << left_shift), multiplier)
        valid = diffs >= diff_min
        self.exp = np.where(valid, exp_on_negative_values(rescaled), 0)
        self.share = np.where(valid, rdbpot(self.exp, 12), 0)  # Rescale<12>: Q0.31 -> Q12.19
        self.valid = valid
        for array in (self.exp, self.share, self.valid):
            array.flags.writeable = False

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty(x.shape, np.int8)
        exp, share, valid = self.exp, self.share, self.valid

        def run() -> None:
            xi = x.astype(np.intp)
            d = xi.max(axis=1, keepdims=True) - xi
            total = wrap32(share[d].sum(axis=1))
            headroom = 32 - np.frexp(total.astype(np.float64))[1]  # count of leading zeros (total > 0)
            num_bits_over_unit = 12 - headroom
            shifted = wrap32(((total << headroom) & 0xFFFFFFFF) - (1 << 31))
            scale = one_over_one_plus_x(shifted)
            exponent = (num_bits_over_unit + 31 - 8)[:, None]
            y = rdbpot(srdhm(scale[:, None], exp[d]), exponent) - 128
            y = np.where(valid[d], y, -128)
            np.clip(y, -128, 127, out=y)
            np.copyto(out, y, casting="unsafe")

        return run, out


class QuantizeFloatMicro:
    def __init__(self, scale: float, zero_point: int, dtype: np.dtype) -> None:
        self.scale, self.zp, self.dtype = F32(scale), zero_point, dtype
        info = np.iinfo(dtype)
        self.low, self.high = int(info.min), int(info.max)

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty(x.shape, self.dtype)
        scale, zp, low, high = self.scale, self.zp, self.low, self.high

        def run() -> None:
            v = (x / scale).astype(np.float64)
            v = np.copysign(np.floor(np.abs(v) + 0.5), v) + zp
            np.clip(v, low, high, out=v)
            np.copyto(out, v, casting="unsafe")

        return run, out


class Requantize:
    """int8/uint8 -> int8/uint8 with another scale or zero point (TFLite's and TFLite Micro's quantize
    kernels: MultiplyByQuantizedMultiplier(x - zp_in, q, shift) + zp_out); a plain shift when the scales match."""

    def __init__(self, in_scale: float, zp_in: int, out_scale: float, zp_out: int, dtype: np.dtype) -> None:
        self.same = np.float32(in_scale) == np.float32(out_scale)
        self.q, self.shift = quantize_multiplier(float(in_scale) / float(out_scale))
        info = np.iinfo(dtype)
        self.zp_in, self.zp_out, self.dtype, self.low, self.high = (
            zp_in,
            zp_out,
            dtype,
            int(info.min),
            int(info.max),
        )

    def make(self, batch: int, x: np.ndarray) -> tuple[Run, np.ndarray]:
        out = np.empty(x.shape, self.dtype)
        same, q, shift, zp_in, zp_out, low, high = (
            self.same,
            self.q,
            self.shift,
            self.zp_in,
            self.zp_out,
            self.low,
            self.high,
        )

        if same and zp_in - zp_out == 128 and x.dtype == np.uint8 and self.dtype == np.int8:
            out_bytes = out.view(np.uint8)

            def flip() -> None:  # x - 128 as int8: the top bit flipped
                np.bitwise_xor(x, np.uint8(0x80), out=out_bytes)

            return flip, out

        def run() -> None:
            v = (
                x.astype(np.int32) - zp_in
                if same
                else multiply_by_quantized_multiplier(x.astype(I64) - zp_in, q, shift)
            )
            v += zp_out
            np.clip(v, low, high, out=v)
            np.copyto(out, v, casting="unsafe")

        return run, out
