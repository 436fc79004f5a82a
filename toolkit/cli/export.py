"""`digitkit export` (not yet built)."""
from .common import fail


def export() -> None:
    """Not yet available."""
    raise fail("digitkit export is not built yet")
