"""What every backend provides: a session that runs a batch of already-typed inputs.

A session hands each thread a :class:`Slot` for the batch size it is running: an input buffer the
caller converts pixels straight into, an output buffer the backend writes into, and ``invoke``.
On the hot path (one image at a time on a device) that keeps the work per call to the backend's own
invoke plus one conversion in and one out: no temporaries, no extra copies.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output, as the artifact itself declares it."""

    name: str
    shape: tuple[Optional[int], ...]  # None for a dynamic dimension
    dtype: str  # numpy dtype name: float32, int8, uint8
    scale: float = 0.0  # 0.0: not quantized
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in ("int8", "uint8")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.quantized:
            data["quantization"] = {"scale": self.scale, "zero_point": self.zero_point}
        return data


class Slot:
    """One thread's buffers for one batch size.

    ``input`` is (batch, 784) in the model's input dtype and ``output`` (batch, 10) in its output
    dtype. Write ``input``, call ``invoke()``, read ``output``; both stay valid until the thread asks
    its session for another batch size. ``zero_copy`` says whether they are the backend's own memory.
    ``input_bytes`` is ``input`` seen as uint8 when it holds one byte per value (int8 or uint8), so
    a converter can write bytes without making that view on every call.
    """

    __slots__ = ("batch", "input", "input_bytes", "invoke", "output", "zero_copy")

    def __init__(
        self, batch: int, input: np.ndarray, output: np.ndarray, invoke: Callable[[], object], zero_copy: bool
    ) -> None:
        self.batch = batch
        self.input = input
        self.input_bytes = input.view(np.uint8) if input.dtype.itemsize == 1 else None
        self.output = output
        self.invoke = invoke
        self.zero_copy = zero_copy


class Session:
    """A loaded artifact on one backend, run through per-thread :class:`Slot` s."""

    backend_name: str = ""
    inputs: Sequence[TensorInfo] = ()
    outputs: Sequence[TensorInfo] = ()

    def __init__(self) -> None:
        self._local = threading.local()

    def slot(self, batch: int) -> Slot:
        """This thread's slot for ``batch`` images, reused while the batch size stays the same."""
        slot: Optional[Slot] = getattr(self._local, "slot", None)
        if slot is not None and slot.batch == batch:
            return slot
        slot = self._local.slot = (
            None  # drop the old buffers first: a TFLite interpreter cannot resize under them
        )
        slot = self._local.slot = self._open_slot(batch)
        return slot

    def runner(self, write: Callable[[np.ndarray, Slot], None]) -> Callable[[np.ndarray], np.ndarray]:
        """A function from a checked (N, 784) batch to this thread's output buffer: ``write`` the
        batch into the slot, invoke, return the slot's output. One closure over local names, so a
        call on the hot path makes no method lookups of its own."""
        local, slot_for = self._local, self.slot

        def run(batch: np.ndarray) -> np.ndarray:
            slot = getattr(local, "slot", None)
            if slot is None or slot.batch != batch.shape[0]:
                slot = None  # let the old buffers go before the interpreter resizes
                slot = slot_for(batch.shape[0])
            write(batch, slot)
            slot.invoke()
            return slot.output

        return run

    def _open_slot(self, batch: int) -> Slot:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class BackendSpec:
    """A runtime digitkit can drive: which formats it runs, which module and pip extra provide it."""

    name: str
    formats: tuple[str, ...]
    module: str  # top-level module whose presence means "installed"
    extra: str  # pip extra that installs it: digitkit[extra]
    open: Callable[[bytes, Optional[int]], Session] = field(compare=False, repr=False)
    description: str = ""
    # "auto" chooses it (in registration order) and verify/bench list it when installed; False:
    # only when named (a second rounding mode, say), never chosen for the user.
    default: bool = True
    # Runs with numpy alone: chosen by "auto" only when no native backend is installed.
    portable: bool = False
