"""digitkit's workstation side: data, training, verification, reports and the command line."""

from digitkit.runtime.version import __version__

__all__ = ["__version__"]
