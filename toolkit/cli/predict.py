"""`digitkit predict` (not yet built)."""
from .common import fail


def predict() -> None:
    """Not yet available."""
    raise fail("digitkit predict is not built yet")
