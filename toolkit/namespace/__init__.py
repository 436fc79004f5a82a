"""digitkit: train the MNIST MLP, export it to TFLite and ONNX, and prove every artifact on any CPU.

``import digitkit`` imports nothing: the ``digitkit`` command takes over Ctrl-C before anything heavy
loads, and a device imports only ``digitkit.runtime``. ``digitkit.__version__`` is read from
``digitkit.runtime.version`` (a constant) on first use."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from digitkit.runtime.version import __version__

        return __version__
    raise AttributeError(f"module 'digitkit' has no attribute {name!r}")
