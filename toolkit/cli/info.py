"""`digitkit info` (not yet built)."""
from .common import fail


def info() -> None:
    """Not yet available."""
    raise fail("digitkit info is not built yet")
