"""A small, strictly bounds-checked reader for the parts of the TFLite flatbuffer the numpy backend runs.

Only the tables the digit MLP needs are read (Model, SubGraph, Tensor, Buffer, Operator, OperatorCode,
QuantizationParameters and the options of the ops the backend runs), following
tensorflow/lite/schema/schema.fbs. Every offset, length and index is checked against the file before
it is used, so a damaged or hostile file gives one :class:`ArtifactError` naming the problem: never an
IndexError, a struct.error, a hang or a huge allocation. The graph is checked too: one input and one
output, every operator input produced before use (the order is computed, so a cycle is found), and every
operator feeding the output.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import ArtifactError

FIX = "Re-export it with `digitkit export`"
MAX_ELEMENTS = 1 << 26  # per tensor (per image for activations)
MAX_RANK = 8
MAX_TENSORS = 4096
MAX_OPERATORS = 4096

# TensorType (schema.fbs) -> numpy dtype; the types the backend can meet.
DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f2"),
    2: np.dtype("<i4"),
    3: np.dtype("u1"),
    4: np.dtype("<i8"),
    6: np.dtype("?"),
    7: np.dtype("<i2"),
    9: np.dtype("i1"),
    10: np.dtype("<f8"),
}

_OP_NAMES = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONCATENATION",
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "DEPTH_TO_SPACE",
    "DEQUANTIZE",
    "EMBEDDING_LOOKUP",
    "FLOOR",
    "FULLY_CONNECTED",
    "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION",
    "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION",
    "LOGISTIC",
    "LSH_PROJECTION",
    "LSTM",
    "MAX_POOL_2D",
    "MUL",
    "RELU",
    "RELU_N1_TO_1",
    "RELU6",
    "RESHAPE",
    "RESIZE_BILINEAR",
    "RNN",
    "SOFTMAX",
    "SPACE_TO_DEPTH",
    "SVDF",
    "TANH",
    "CONCAT_EMBEDDINGS",
    "SKIP_GRAM",
    "CALL",
    "CUSTOM",
    "EMBEDDING_LOOKUP_SPARSE",
    "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN",
    "GATHER",
    "BATCH_TO_SPACE_ND",
    "SPACE_TO_BATCH_ND",
    "TRANSPOSE",
    "MEAN",
    "SUB",
    "DIV",
    "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "STRIDED_SLICE",
    "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP",
    "TOPK_V2",
    "SPLIT",
    "LOG_SOFTMAX",
    "DELEGATE",
    "BIDIRECTIONAL_SEQUENCE_LSTM",
    "CAST",
    "PRELU",
    "MAXIMUM",
    "ARG_MAX",
    "MINIMUM",
    "LESS",
    "NEG",
    "PADV2",
    "GREATER",
    "GREATER_EQUAL",
    "LESS_EQUAL",
    "SELECT",
    "SLICE",
    "SIN",
    "TRANSPOSE_CONV",
    "SPARSE_TO_DENSE",
    "TILE",
    "EXPAND_DIMS",
    "EQUAL",
    "NOT_EQUAL",
    "LOG",
    "SUM",
    "SQRT",
    "RSQRT",
    "SHAPE",
    "POW",
    "ARG_MIN",
    "FAKE_QUANT",
    "REDUCE_PROD",
    "REDUCE_MAX",
    "PACK",
    "LOGICAL_OR",
    "ONE_HOT",
    "LOGICAL_AND",
    "LOGICAL_NOT",
    "UNPACK",
    "REDUCE_MIN",
    "FLOOR_DIV",
    "REDUCE_ANY",
    "SQUARE",
    "ZEROS_LIKE",
    "FILL",
    "FLOOR_MOD",
    "RANGE",
    "RESIZE_NEAREST_NEIGHBOR",
    "LEAKY_RELU",
    "SQUARED_DIFFERENCE",
    "MIRROR_PAD",
    "ABS",
    "SPLIT_V",
    "UNIQUE",
    "CEIL",
    "REVERSE_V2",
    "ADD_N",
    "GATHER_ND",
    "COS",
    "WHERE",
    "RANK",
    "ELU",
    "REVERSE_SEQUENCE",
    "MATRIX_DIAG",
    "QUANTIZE",
    "MATRIX_SET_DIAG",
    "ROUND",
    "HARD_SWISH",
    "IF",
    "WHILE",
    "NON_MAX_SUPPRESSION_V4",
    "NON_MAX_SUPPRESSION_V5",
    "SCATTER_ND",
    "SELECT_V2",
    "DENSIFY",
    "SEGMENT_SUM",
    "BATCH_MATMUL",
)


def op_name(code: int) -> str:
    return _OP_NAMES[code] if 0 <= code < len(_OP_NAMES) else f"builtin operator {code}"


def _bad(problem: str) -> ArtifactError:
    return ArtifactError(f"The TFLite model is damaged: {problem}", FIX)


class Reader:
    """Checked little-endian reads of flatbuffer tables, vectors and strings from one byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def _check(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise _bad(f"{what} at byte {pos} lies outside the file ({self.size} bytes)")

    def scalar(self, fmt: str, pos: int, what: str) -> int | float:
        self._check(pos, struct.calcsize(fmt), what)
        value: int | float = struct.unpack_from("<" + fmt, self.data, pos)[0]
        return value

    def table(self, pos: int, what: str) -> Table:
        vtable = pos - int(self.scalar("i", pos, what))
        vsize = int(self.scalar("H", vtable, f"{what} vtable"))
        tsize = int(self.scalar("H", vtable + 2, f"{what} vtable"))
        if vsize < 4 or vsize % 2:
            raise _bad(f"{what} has a malformed vtable")
        self._check(vtable, vsize, f"{what} vtable")
        self._check(pos, max(tsize, 4), what)
        return Table(self, pos, vtable, vsize, tsize, what)

    def vector(self, pos: int, elem_size: int, what: str) -> tuple[int, int]:
        """(start, count) of the vector whose length word is at ``pos``; its elements lie in the file."""
        count = int(self.scalar("I", pos, what))
        if count * elem_size > self.size - pos - 4:
            raise _bad(f"{what} claims {count} elements, more than the file holds")
        return pos + 4, count


class Table:
    def __init__(self, reader: Reader, pos: int, vtable: int, vsize: int, tsize: int, what: str) -> None:
        self.r, self.pos, self.vtable, self.vsize, self.tsize, self.what = (
            reader,
            pos,
            vtable,
            vsize,
            tsize,
            what,
        )

    def _field(self, index: int, width: int) -> Optional[int]:
        slot = 4 + 2 * index
        if slot >= self.vsize:
            return None
        offset = int(self.r.scalar("H", self.vtable + slot, f"{self.what} vtable"))
        if offset == 0:
            return None
        if offset < 4 or offset + width > self.tsize:
            raise _bad(f"field {index} of {self.what} lies outside its table")
        return self.pos + offset

    def scalar(self, index: int, fmt: str, default: int | float = 0) -> int | float:
        pos = self._field(index, struct.calcsize(fmt))
        return default if pos is None else self.r.scalar(fmt, pos, f"field {index} of {self.what}")

    def _target(self, index: int) -> Optional[int]:
        pos = self._field(index, 4)
        if pos is None:
            return None
        return pos + int(self.r.scalar("I", pos, f"field {index} of {self.what}"))

    def table(self, index: int, what: str) -> Optional[Table]:
        target = self._target(index)
        return None if target is None else self.r.table(target, what)

    def tables(self, index: int, what: str, limit: int) -> list[Table]:
        target = self._target(index)
        if target is None:
            return []
        start, count = self.r.vector(target, 4, what)
        if count > limit:
            raise ArtifactError(
                f"The TFLite model has {count} {what}s, more than the numpy backend accepts ({limit})", FIX
            )
        out = []
        for i in range(count):
            elem = start + 4 * i
            out.append(self.r.table(elem + int(self.r.scalar("I", elem, what)), f"{what} {i}"))
        return out

    def array(self, index: int, dtype: str, what: str, limit: int = -1) -> np.ndarray:
        """A vector of scalars as a read-only numpy array (a view of the file's bytes)."""
        target = self._target(index)
        dt = np.dtype(dtype)
        if target is None:
            return np.zeros(0, dt)
        start, count = self.r.vector(target, dt.itemsize, what)
        if 0 <= limit < count:
            raise _bad(f"{what} has {count} entries, more than {limit}")
        return np.frombuffer(self.r.data, dt, count, start)

    def string(self, index: int, what: str) -> str:
        return bytes(self.array(index, "u1", what)).decode("utf-8", "replace")


@dataclass(frozen=True)
class Quantization:
    scale: np.ndarray  # float32, empty when not quantized
    zero_point: np.ndarray  # int64
    axis: int


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    signature: tuple[int, ...]  # -1 for a dynamic dimension
    quant: Quantization
    data: Optional[np.ndarray]  # constant values in ``shape``, read-only; None for activations

    @property
    def quantized(self) -> bool:
        return self.quant.scale.size > 0


@dataclass(frozen=True)
class Operator:
    index: int
    code: int  # BuiltinOperator
    version: int
    name: str
    inputs: tuple[int, ...]  # -1: optional input left out
    outputs: tuple[int, ...]
    options: Optional[Table]
    options_type: int


@dataclass(frozen=True)
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]  # in an order where every input is computed before use
    input: int
    output: int


def _buffer_bytes(reader: Reader, buffer: Table, index: int) -> Optional[np.ndarray]:
    data = buffer.array(0, "u1", f"buffer {index}")
    if data.size:
        return data
    offset = int(buffer.scalar(1, "Q"))
    size = int(buffer.scalar(2, "Q"))
    if offset > 1 and size:  # data stored after the flatbuffer (models over 2 GB)
        if offset + size > reader.size:
            raise _bad(f"buffer {index} lies outside the file")
        return np.frombuffer(reader.data, np.uint8, size, offset)
    return None


def _tensor(t: Table, index: int, buffers: list[Table], reader: Reader) -> Tensor:
    what = f"tensor {index}"
    code = int(t.scalar(1, "b"))
    if code not in DTYPES:
        raise ArtifactError(
            f"Tensor {index} of the TFLite model has type code {code}, which the numpy backend does not run",
            FIX,
        )
    dtype = DTYPES[code]
    if t.table(6, f"sparsity of {what}") is not None or t.scalar(5, "B"):
        raise ArtifactError(
            f"Tensor {index} of the TFLite model is sparse or a variable, which the numpy backend does not run",
            FIX,
        )
    shape = tuple(int(d) for d in t.array(0, "<i4", f"shape of {what}", MAX_RANK))
    signature = tuple(int(d) for d in t.array(7, "<i4", f"shape signature of {what}", MAX_RANK)) or shape
    if (
        len(signature) != len(shape)
        or any(d < 1 for d in shape)
        or any(s != d and s != -1 for s, d in zip(signature, shape))
    ):
        raise _bad(f"{what} has shape {list(shape)} (signature {list(signature)})")
    elements = 1
    for d in shape:
        elements *= d
        if elements > MAX_ELEMENTS:
            raise _bad(f"{what} has shape {list(shape)}, over {MAX_ELEMENTS} elements")
    buffer_index = int(t.scalar(2, "I"))
    if buffer_index >= len(buffers):
        raise _bad(f"{what} names buffer {buffer_index} of {len(buffers)}")
    raw = _buffer_bytes(reader, buffers[buffer_index], buffer_index) if buffer_index else None
    data = None
    if raw is not None:
        if -1 in signature or raw.size != elements * dtype.itemsize:
            raise _bad(f"{what} of shape {list(shape)} and type {dtype.name} has {raw.size} bytes of data")
        data = raw.view(dtype).reshape(shape)
    q = t.table(4, f"quantization of {what}")
    quant = Quantization(np.zeros(0, np.float32), np.zeros(0, np.int64), 0)
    if q is not None:
        scale = q.array(2, "<f4", f"scales of {what}", max(shape) if shape else 1)
        zero_point = q.array(3, "<i8", f"zero points of {what}", max(shape) if shape else 1)
        axis = int(q.scalar(6, "i"))
        if q.scalar(4, "B"):
            raise ArtifactError(
                f"Tensor {index} of the TFLite model uses custom quantization, which the numpy backend does not run",
                FIX,
            )
        if scale.size:
            if zero_point.size != scale.size or not np.all(np.isfinite(scale)) or not np.all(scale > 0):
                raise _bad(f"{what} has invalid quantization parameters")
            if scale.size > 1 and not (0 <= axis < len(shape) and shape[axis] == scale.size):
                raise _bad(f"{what} has {scale.size} scales for axis {axis} of shape {list(shape)}")
            quant = Quantization(scale.astype(np.float32), zero_point.astype(np.int64), axis)
    return Tensor(index, t.string(3, f"name of {what}"), dtype, shape, signature, quant, data)


def parse(model: bytes) -> Graph:
    """The checked graph of the first (only) subgraph of a TFLite model."""
    reader = Reader(model)
    if reader.size < 8 or model[4:8] != b"TFL3":
        raise ArtifactError("The file is not a TFLite model (no TFL3 identifier)", FIX)
    root = reader.table(int(reader.scalar("I", 0, "root offset")), "model")
    version = int(root.scalar(0, "I"))
    if version != 3:
        raise ArtifactError(
            f"The TFLite model has schema version {version}; the numpy backend reads version 3", FIX
        )
    codes = []
    for i, oc in enumerate(root.tables(1, "operator code", MAX_OPERATORS)):
        deprecated, builtin = int(oc.scalar(0, "b")), int(oc.scalar(3, "i"))
        code = max(deprecated, builtin)  # schema.fbs: the larger of the two is the real code
        name = op_name(code) if code != 32 else f"custom operator {oc.string(1, f'custom code {i}')!r}"
        codes.append((code, int(oc.scalar(2, "i", 1)), name))
    subgraphs = root.tables(2, "subgraph", 64)
    if len(subgraphs) != 1:
        raise ArtifactError(
            f"The TFLite model has {len(subgraphs)} subgraphs; the numpy backend runs models with one", FIX
        )
    buffers = root.tables(4, "buffer", MAX_TENSORS + 1)
    sub = subgraphs[0]
    tensors = [_tensor(t, i, buffers, reader) for i, t in enumerate(sub.tables(0, "tensor", MAX_TENSORS))]
    inputs = [int(i) for i in sub.array(1, "<i4", "subgraph inputs", 16)]
    outputs = [int(i) for i in sub.array(2, "<i4", "subgraph outputs", 16)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ArtifactError(
            f"The TFLite model has {len(inputs)} inputs and {len(outputs)} outputs, not one each", FIX
        )
    operators = []
    for i, op in enumerate(sub.tables(3, "operator", MAX_OPERATORS)):
        opcode = int(op.scalar(0, "I"))
        if opcode >= len(codes):
            raise _bad(f"operator {i} names operator code {opcode} of {len(codes)}")
        code, version, name = codes[opcode]
        ins = tuple(int(x) for x in op.array(1, "<i4", f"inputs of operator {i}", 64))
        outs = tuple(int(x) for x in op.array(2, "<i4", f"outputs of operator {i}", 64))
        options_type = int(op.scalar(3, "B"))
        options = op.table(4, f"options of operator {i}") if options_type else None
        operators.append(Operator(i, code, version, name, ins, outs, options, options_type))
    return Graph(tensors, _ordered(tensors, operators, inputs[0], outputs[0]), inputs[0], outputs[0])


def _ordered(
    tensors: list[Tensor], operators: list[Operator], graph_in: int, graph_out: int
) -> list[Operator]:
    """The operators that compute the output, each after the ones it reads from; errors on a bad graph."""
    n = len(tensors)
    for index in (graph_in, graph_out):
        if not 0 <= index < n:
            raise _bad(f"the graph names tensor {index} of {n}")
    if tensors[graph_in].data is not None:
        raise _bad("the graph input is a constant")
    producer: dict[int, Operator] = {}
    for op in operators:
        if not op.outputs:
            raise _bad(f"operator {op.index} ({op.name}) has no output")
        for t in op.inputs:
            if not -1 <= t < n:
                raise _bad(f"operator {op.index} ({op.name}) reads tensor {t} of {n}")
        for t in op.outputs:
            if not 0 <= t < n:
                raise _bad(f"operator {op.index} ({op.name}) writes tensor {t} of {n}")
            if t in producer or t == graph_in or tensors[t].data is not None:
                raise _bad(f"tensor {t} is written by more than one operator, or is an input or a constant")
            producer[t] = op
    # Depth-first from the output, iteratively: visits each operator once, finds cycles and missing inputs.
    order: list[Operator] = []
    state: dict[int, int] = {}  # operator index -> 1 visiting, 2 done
    stack: list[tuple[Operator, bool]] = []
    if graph_out in producer:
        stack.append((producer[graph_out], False))
    elif graph_out != graph_in:
        raise _bad("no operator computes the graph output")
    while stack:
        op, expanded = stack.pop()
        if expanded:
            state[op.index] = 2
            order.append(op)
            continue
        if state.get(op.index) == 2:
            continue
        state[op.index] = 1
        stack.append((op, True))
        for t in op.inputs:
            if t < 0 or t == graph_in or tensors[t].data is not None:
                continue
            if t not in producer:
                raise _bad(f"operator {op.index} ({op.name}) reads tensor {t}, which nothing computes")
            before = producer[t]
            if state.get(before.index) == 1:
                raise _bad(f"the graph has a cycle through operator {before.index} ({before.name})")
            if state.get(before.index) is None:
                stack.append((before, False))
    if len(order) != len(operators):
        unused = sorted(set(op.index for op in operators) - set(state))
        raise _bad(f"operator {unused[0]} does not lead to the graph output (a disconnected graph)")
    return order
