"""`digitkit verify` (not yet built)."""
from .common import fail


def verify() -> None:
    """Not yet available."""
    raise fail("digitkit verify is not built yet")
