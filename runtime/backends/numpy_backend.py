"""The numpy backend: digitkit's .tflite artifacts run with numpy alone.

``open_numpy`` rounds as LiteRT's default x86 path (XNNPACK) does, bit for bit on the int8 models;
``open_numpy_micro`` rounds as TensorFlow Lite Micro does (fixed-point multipliers and shifts). The file
is read by numpy_flatbuffer (checked), the kernels live in numpy_kernels and numpy_micro. The graph is a
chain: each operator reads one computed tensor (and constants). Everything that does not depend on the
input is computed at load; a slot (one per thread and batch size) owns every buffer its run writes, so
sessions are thread-safe. ``threads`` is accepted and ignored: numpy's BLAS has its own thread pool.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from . import numpy_kernels as nk
from . import numpy_micro as nm
from .base import Session, Slot, TensorInfo
from .numpy_flatbuffer import Graph, Operator, Table, Tensor, parse

FULLY_CONNECTED, SOFTMAX, RESHAPE, QUANTIZE, DEQUANTIZE = 9, 25, 22, 114, 6
CONV_2D, MAX_POOL_2D = 3, 17
# BuiltinOptions union member of each op
OPTIONS = {FULLY_CONNECTED: 8, SOFTMAX: 9, RESHAPE: 17, CONV_2D: 1, MAX_POOL_2D: 5}
VALID = 1  # schema.fbs Padding
QUANT_TYPES = ("int8", "uint8")
MAX_IMAGE_ELEMENTS = 1 << 20  # per image, for computed tensors: keeps a slot's buffers small


def _info(t: Tensor) -> TensorInfo:
    scale = float(t.quant.scale[0]) if t.quant.scale.size == 1 else 0.0
    zero_point = int(t.quant.zero_point[0]) if t.quant.zero_point.size == 1 else 0
    return TensorInfo(
        t.name, tuple(None if d < 0 else d for d in t.signature), t.dtype.name, scale, zero_point
    )


def _per_tensor(t: Tensor, what: str) -> tuple[float, int]:
    if t.quant.scale.size != 1:
        raise nk.unsupported(f"The {what} tensor {t.name!r} has no single scale and zero point")
    zp = int(t.quant.zero_point[0])
    info = np.iinfo(t.dtype)
    if not info.min <= zp <= info.max:
        raise nk.unsupported(f"The {what} tensor {t.name!r} has zero point {zp} outside {t.dtype.name}")
    return float(t.quant.scale[0]), zp


class _Planner:
    """Turns the checked graph into one kernel per operator, for one rounding mode."""

    def __init__(self, graph: Graph, micro: bool) -> None:
        self.graph, self.micro = graph, micro
        self.consts: dict[int, np.ndarray] = {t.index: t.data for t in graph.tensors if t.data is not None}
        self.kernels: list[nk.Kernel] = []
        self.matmuls: list[nk.IntegerMatmul] = []

    def plan(self) -> list[nk.Kernel]:
        g = self.graph
        current = g.input
        for op in g.operators:
            if all(i < 0 or i in self.consts for i in op.inputs) and op.code == DEQUANTIZE:
                self._fold_dequantize(op)
                continue
            computed = [i for i in op.inputs if i >= 0 and i not in self.consts]
            if computed != [current] or len(op.outputs) != 1:
                raise nk.unsupported(
                    f"Operator {op.index} ({op.name}) is not part of a single chain from input to output"
                )
            x, y = g.tensors[current], g.tensors[op.outputs[0]]
            self.kernels.append(self._kernel(op, x, y))
            current = y.index
        if current != g.output or not self.kernels:
            raise nk.unsupported("The model's operators do not compute its output from its input")
        return self.kernels

    def _fold_dequantize(self, op: Operator) -> None:
        t, y = self.graph.tensors[op.inputs[0]], self.graph.tensors[op.outputs[0]]
        data = self.consts[t.index]
        if y.dtype != np.float32 or y.shape != t.shape:
            raise nk.unsupported(f"DEQUANTIZE of {t.name!r} gives {y.dtype.name} {list(y.shape)}")
        if t.dtype == np.float16:
            values = data.astype(np.float32)
        elif t.dtype.name in QUANT_TYPES and t.quantized:
            shape = [1] * data.ndim
            if t.quant.scale.size > 1:
                shape[t.quant.axis] = t.quant.scale.size
            values = (
                data.astype(np.float32) - t.quant.zero_point.reshape(shape).astype(np.float32)
            ) * t.quant.scale.reshape(shape)
        else:
            raise nk.unsupported(f"DEQUANTIZE of a {t.dtype.name} tensor is not run by the numpy backend")
        values.flags.writeable = False
        self.consts[y.index] = values

    def _options(self, op: Operator) -> Optional[Table]:
        if op.options is not None and op.options_type != OPTIONS.get(op.code):
            raise nk.unsupported(f"Operator {op.index} ({op.name}) carries options of another kind")
        return op.options

    def _kernel(self, op: Operator, x: Tensor, y: Tensor) -> nk.Kernel:
        features_in, features_out = x.shape[1:], y.shape[1:]
        if len(x.shape) < 1 or len(y.shape) < 1:
            raise nk.unsupported(f"Operator {op.index} ({op.name}) works on scalars")
        if int(np.prod(features_out)) > MAX_IMAGE_ELEMENTS:
            raise nk.unsupported(
                f"Operator {op.index} ({op.name}) computes {list(y.shape)}, over {MAX_IMAGE_ELEMENTS} values an image"
            )
        if op.code == FULLY_CONNECTED:
            return self._fully_connected(op, x, y)
        if op.code == CONV_2D:
            return self._conv(op, x, y)
        if op.code == MAX_POOL_2D:
            return self._max_pool(op, x, y)
        if op.code == SOFTMAX:
            options = self._options(op)
            beta = float(options.scalar(0, "f", 0.0)) if options is not None else 0.0
            if len(x.shape) != 2 or features_in != features_out:
                raise nk.unsupported(f"SOFTMAX of shape {list(x.shape)} is not run by the numpy backend")
            if x.dtype == np.float32 and y.dtype == np.float32:
                return nk.SoftmaxFloat(beta)
            if x.dtype == np.int8 and y.dtype == np.int8:
                in_scale, _ = _per_tensor(x, "softmax input")
                out_scale, zp_out = _per_tensor(y, "softmax output")
                if self.micro:
                    return nm.SoftmaxMicro(in_scale, beta, out_scale, zp_out)
                if zp_out != -128 or abs(out_scale * 256 - 1) > 0.001:
                    raise nk.unsupported(
                        "An int8 SOFTMAX has an output other than scale 1/256, zero point -128"
                    )
                return nk.SoftmaxInt8(in_scale, beta, out_scale, zp_out)
        elif op.code == QUANTIZE and y.dtype.name in QUANT_TYPES and x.shape == y.shape:
            out_scale, zp_out = _per_tensor(y, "quantize output")
            if x.dtype == np.float32:
                q = nm.QuantizeFloatMicro if self.micro else nk.QuantizeFloat
                return q(out_scale, zp_out, y.dtype)
            if x.dtype.name in QUANT_TYPES:
                in_scale, zp_in = _per_tensor(x, "quantize input")
                return nm.Requantize(in_scale, zp_in, out_scale, zp_out, y.dtype)
        elif op.code == DEQUANTIZE and y.dtype == np.float32 and x.shape == y.shape:
            if x.dtype == np.float16:
                return nk.Cast(np.dtype(np.float32))
            if x.dtype.name in QUANT_TYPES:
                return nk.Dequantize(*_per_tensor(x, "dequantize input"))
        elif op.code == RESHAPE and x.dtype == y.dtype:
            if int(np.prod(features_in)) != int(np.prod(features_out)):
                raise nk.unsupported(
                    f"RESHAPE from {list(x.shape)} to {list(y.shape)} changes the batch size"
                )
            self._options(op)
            return nk.Reshape(features_out)
        else:
            raise nk.unsupported(f"The model uses {op.name}, which the numpy backend does not run")
        raise nk.unsupported(
            f"The model uses {op.name} from {x.dtype.name} to {y.dtype.name}, which the numpy backend does not run"
        )

    def _window(
        self, op: Operator, x: Tensor, y: Tensor, kernel: tuple[int, int], fields: tuple[int, int, int, int]
    ) -> nk.Window:
        """The op's VALID window, checked against its input and output shapes. ``fields``: the option
        indices of padding, stride_w, stride_h and the first dilation (-1: none)."""
        options = self._options(op)
        if options is None:
            raise nk.unsupported(f"Operator {op.index} ({op.name}) has no options")
        padding, stride_w, stride_h, dilation = fields
        stride = (int(options.scalar(stride_h, "i")), int(options.scalar(stride_w, "i")))
        dil = (
            (int(options.scalar(dilation + 1, "i", 1)), int(options.scalar(dilation, "i", 1)))
            if dilation >= 0
            else (1, 1)
        )
        if len(x.shape) != 4 or len(y.shape) != 4 or min(stride + dil + kernel) < 1:
            raise nk.unsupported(
                f"{op.name} from {list(x.shape)} to {list(y.shape)}, which the numpy backend does not run"
            )
        h, w = x.shape[1:3]
        out = tuple((size - (k - 1) * d - 1) // s + 1 for size, k, d, s in zip((h, w), kernel, dil, stride))
        if int(options.scalar(padding, "b")) != VALID or out != y.shape[1:3]:
            raise nk.unsupported(
                f"{op.name} with SAME padding (or {list(x.shape)} to {list(y.shape)}) is not run by the numpy backend"
            )
        return nk.Window(kernel, stride, dil, x.shape[1:], y.shape[1:])

    def _conv(self, op: Operator, x: Tensor, y: Tensor) -> nk.Kernel:
        if len(op.inputs) < 2 or op.inputs[1] not in self.consts:
            raise nk.unsupported(
                "A CONV_2D has filters computed at run time, which the numpy backend does not run"
            )
        w_tensor = self.graph.tensors[op.inputs[1]]
        w = self.consts[w_tensor.index]
        if w.ndim != 4 or len(x.shape) != 4 or w.shape[3] != x.shape[3] or y.shape[3:] != w.shape[:1]:
            raise nk.unsupported(
                f"CONV_2D from {list(x.shape)} with filter {list(w.shape)}, which the numpy backend does not run"
            )
        window = self._window(op, x, y, (int(w.shape[1]), int(w.shape[2])), (0, 1, 2, 4))
        options = self._options(op)
        activation = int(options.scalar(3, "b")) if options is not None else 0
        rows = w.reshape(w.shape[0], -1)  # OHWI: the window's order
        units = w.shape[0]
        bias = None
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            if op.inputs[2] not in self.consts or self.consts[op.inputs[2]].shape != (units,):
                raise nk.unsupported("A CONV_2D has a bias computed at run time or of another shape")
            bias = self.consts[op.inputs[2]]
        wq = w_tensor.quant
        if x.dtype == np.float32 and y.dtype == np.float32 and w.dtype == np.float32:
            return nk.Conv2D(window, nk.FullyConnectedFloat(rows, bias, activation))
        if w.dtype != np.int8 or not w_tensor.quantized or np.any(wq.zero_point != 0) or wq.axis != 0:
            raise nk.unsupported("A CONV_2D has weights without symmetric per-channel int8 quantization")
        if x.dtype == np.float32 and y.dtype == np.float32:
            if bias is not None and bias.dtype != np.float32:
                raise nk.unsupported("A hybrid CONV_2D has a non-float bias")
            hybrid = nk.FullyConnectedHybrid(rows, wq.scale, bias, activation, asymmetric=True)
            self.matmuls.append(hybrid.matmul)
            return nk.HybridConv2D(window, hybrid)
        if x.dtype == np.int8 and y.dtype == np.int8:
            return nk.Conv2D(
                window, self._int8_matmul("CONV_2D", "conv", rows, wq.scale, bias, x, y, activation)
            )
        raise nk.unsupported(f"The model uses CONV_2D from {x.dtype.name} to {y.dtype.name}")

    def _int8_matmul(
        self,
        op_name: str,
        what: str,
        w: np.ndarray,
        scale: np.ndarray,
        bias: Optional[np.ndarray],
        x: Tensor,
        y: Tensor,
        activation: int,
    ) -> nk.Kernel:
        """The int8 matrix product a FULLY_CONNECTED or a CONV_2D (over its windows) runs, in this
        backend's rounding (LiteRT's or TFLite Micro's)."""
        if bias is not None and bias.dtype != np.int32:
            raise nk.unsupported(f"An int8 {op_name} has a {bias.dtype.name} bias, not int32")
        in_scale, zp_in = _per_tensor(x, f"{what} input")
        out_scale, zp_out = _per_tensor(y, f"{what} output")
        qrange = nk.quantized_range(activation, out_scale, zp_out, y.dtype)
        fc = nm.FullyConnectedMicro if self.micro else nk.FullyConnectedInt8
        kernel = fc(nk.QuantizedDense(w, scale, bias, in_scale, zp_in, out_scale, zp_out, qrange))
        self.matmuls.append(kernel.matmul)
        return kernel

    def _max_pool(self, op: Operator, x: Tensor, y: Tensor) -> nk.Kernel:
        options = self._options(op)
        if options is None:
            raise nk.unsupported("A MAX_POOL_2D has no options")
        kernel = (int(options.scalar(4, "i")), int(options.scalar(3, "i")))
        window = self._window(op, x, y, kernel, (0, 1, 2, -1))
        activation = int(options.scalar(5, "b"))
        if x.shape[3] != y.shape[3] or x.dtype != y.dtype:
            raise nk.unsupported(
                f"MAX_POOL_2D from {list(x.shape)} to {list(y.shape)}, which the numpy backend does not run"
            )
        if x.dtype == np.float32:
            return nk.MaxPool2D(window, *nk.activation_range(activation))
        if x.dtype == np.int8:
            if _per_tensor(x, "max pool input") != _per_tensor(y, "max pool output"):
                raise nk.unsupported("An int8 MAX_POOL_2D changes scale or zero point")
            scale, zp = _per_tensor(y, "max pool output")
            low, high = nk.quantized_range(activation, scale, zp, y.dtype)
            return nk.MaxPool2D(window, float(low), float(high))
        raise nk.unsupported(f"The model uses MAX_POOL_2D on {x.dtype.name}")

    def _fully_connected(self, op: Operator, x: Tensor, y: Tensor) -> nk.Kernel:
        if len(op.inputs) < 2 or op.inputs[1] not in self.consts:
            raise nk.unsupported(
                "A FULLY_CONNECTED has weights computed at run time, which the numpy backend does not run"
            )
        options = self._options(op)
        activation = int(options.scalar(0, "b")) if options is not None else 0
        weights_format = int(options.scalar(1, "b")) if options is not None else 0
        asymmetric = bool(options.scalar(3, "B")) if options is not None else False
        w_tensor = self.graph.tensors[op.inputs[1]]
        w = self.consts[w_tensor.index]
        if weights_format != 0 or w.ndim != 2:
            raise nk.unsupported(
                "A FULLY_CONNECTED has shuffled or non-2-D weights, which the numpy backend does not run"
            )
        units, depth = w.shape
        if len(x.shape) != 2 or x.shape[1] != depth or y.shape[1:] != (units,) or len(y.shape) != 2:
            raise nk.unsupported(
                f"FULLY_CONNECTED from {list(x.shape)} with weights {list(w.shape)} to {list(y.shape)} is not run"
            )
        bias = None
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            if op.inputs[2] not in self.consts:
                raise nk.unsupported("A FULLY_CONNECTED has a bias computed at run time")
            bias = self.consts[op.inputs[2]]
            if bias.shape != (units,):
                raise nk.unsupported(f"A FULLY_CONNECTED bias has shape {list(bias.shape)}, not [{units}]")
        wq = w_tensor.quant
        if x.dtype == np.float32 and y.dtype == np.float32 and w.dtype == np.float32:
            if bias is not None and bias.dtype != np.float32:
                raise nk.unsupported("A float FULLY_CONNECTED has a non-float bias")
            return nk.FullyConnectedFloat(w, bias, activation)
        if w.dtype != np.int8 or not w_tensor.quantized or np.any(wq.zero_point != 0) or wq.axis != 0:
            raise nk.unsupported(
                f"A FULLY_CONNECTED has {w.dtype.name} weights without symmetric per-channel int8 quantization"
            )
        if x.dtype == np.float32 and y.dtype == np.float32:
            if bias is not None and bias.dtype != np.float32:
                raise nk.unsupported("A hybrid FULLY_CONNECTED has a non-float bias")
            kernel = nk.FullyConnectedHybrid(w, wq.scale, bias, activation, asymmetric)
            self.matmuls.append(kernel.matmul)
            return kernel
        if x.dtype == np.int8 and y.dtype == np.int8:
            return self._int8_matmul(
                "FULLY_CONNECTED", "fully connected", w, wq.scale, bias, x, y, activation
            )
        raise nk.unsupported(
            f"The model uses FULLY_CONNECTED from {x.dtype.name} to {y.dtype.name}, which the numpy backend does not run"
        )


class NumpySession(Session):
    """A TFLite model on numpy: per-thread slots whose buffers the slot owns."""

    def __init__(self, model: bytes, micro: bool = False) -> None:
        super().__init__()
        self.backend_name = "numpy-micro" if micro else "numpy"
        self._graph = parse(model)
        planner = _Planner(self._graph, micro)
        self._kernels = planner.plan() if micro else _fuse(planner.plan())
        x, y = self._graph.tensors[self._graph.input], self._graph.tensors[self._graph.output]
        for t in (x, y):
            if t.dtype.name not in ("float32", "int8", "uint8"):
                raise nk.unsupported(
                    f"The model's {t.name!r} tensor is {t.dtype.name}; digitkit runs float32, int8 or uint8"
                )
        self.inputs = [_info(x)]
        self.outputs = [_info(y)]
        self._input_shape, self._input_dtype = x.shape[1:], x.dtype
        # Which accumulation each integer matrix product proved exact at load: "float32" or "int64".
        self.accumulation = tuple("float32" if m.float32 else "int64" for m in planner.matmuls)

    def tensor_details(self) -> list[dict[str, object]]:
        """Every tensor of the model, as TFLite interpreters list them."""
        return [
            {
                "index": t.index,
                "name": t.name,
                "dtype": t.dtype,
                "shape": np.array(t.shape, np.int32),
                "shape_signature": np.array(t.signature, np.int32),
                "quantization": (float(t.quant.scale[0]), int(t.quant.zero_point[0]))
                if t.quant.scale.size == 1
                else (0.0, 0),
                "quantization_parameters": {
                    "scales": t.quant.scale.copy(),
                    "zero_points": t.quant.zero_point.copy(),
                    "quantized_dimension": t.quant.axis,
                },
            }
            for t in self._graph.tensors
        ]

    def _open_slot(self, batch: int) -> Slot:
        x = np.zeros((batch,) + self._input_shape, self._input_dtype)
        buffer, runs = x, []
        for kernel in self._kernels:
            run, buffer = kernel.make(batch, buffer)
            runs.append(run)
        return Slot(batch, x, buffer, _chain(tuple(runs)), zero_copy=True)


def _fuse(kernels: list[nk.Kernel]) -> list[nk.Kernel]:
    """Each run of int8 FULLY_CONNECTED layers that take u = q - zp exactly in float32 as one Int8Chain."""
    fused: list[nk.Kernel] = []
    run: list[nk.FullyConnectedInt8] = []
    for kernel in [*kernels, None]:
        if isinstance(kernel, nk.FullyConnectedInt8) and kernel.on_u:
            run.append(kernel)
            continue
        if run:
            fused.append(nk.Int8Chain(run))
            run = []
        if kernel is not None:
            fused.append(kernel)
    return fused


def _chain(runs: tuple[Callable[[], None], ...]) -> Callable[[], None]:
    def invoke() -> None:
        for run in runs:
            run()

    return invoke


def open_numpy(model: bytes, threads: Optional[int]) -> Session:
    return NumpySession(model)


def open_numpy_micro(model: bytes, threads: Optional[int]) -> Session:
    return NumpySession(model, micro=True)
