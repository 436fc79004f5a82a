"""What every backend provides: a session that runs a batch of already-typed inputs."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class TensorInfo:
    """One model input or output, as the artifact itself declares it."""

    name: str
    shape: tuple  # None for a dynamic dimension
    dtype: str  # numpy dtype name: float32, int8, uint8
    scale: float = 0.0  # 0.0: not quantized
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in ("int8", "uint8")

    def to_json(self) -> dict:
        data = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.quantized:
            data["quantization"] = {"scale": self.scale, "zero_point": self.zero_point}
        return data


class Session:
    """A loaded artifact on one backend. ``run`` takes (N, 784) in ``inputs[0].dtype``."""

    backend_name: str = ""
    inputs: Sequence[TensorInfo] = ()
    outputs: Sequence[TensorInfo] = ()

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class BackendSpec:
    """A runtime digitkit can drive: which formats it runs, which module and pip extra provide it."""

    name: str
    formats: tuple
    module: str  # top-level module whose presence means "installed"
    extra: str  # pip extra that installs it: digitkit[extra]
    open: Callable[[bytes, Optional[int]], Session] = field(compare=False, repr=False)
    description: str = ""
    fallback: bool = False  # used only when no other backend for the format is installed
