"""digitkit's version, from the installed distribution's metadata."""
from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version as _version

    __version__ = _version("digitkit")
except Exception:  # running from a source tree that was never installed
    __version__ = "0+unknown"
