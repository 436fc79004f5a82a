"""digitkit's workstation side: data, training, verification, reports and the command line."""

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    """``__version__`` read on use: importing this package (the ``digitkit`` command's first step,
    before it takes over Ctrl-C) must not import numpy through the runtime package."""
    if name == "__version__":
        from digitkit.runtime.version import __version__

        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
