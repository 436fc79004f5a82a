"""`digitkit bench` (not yet built)."""
from .common import fail


def bench() -> None:
    """Not yet available."""
    raise fail("digitkit bench is not built yet")
