"""digitkit's workstation side: data, training, verification, reports and the command line."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__`` read on use: importing this package (the ``digitkit`` command's first step,
    before it takes over Ctrl-C) imports nothing, numpy and typing included."""
    if name == "__version__":
        from digitkit.runtime.version import __version__

        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
