"""`digitkit bundle` (not yet built)."""
from .common import fail


def bundle() -> None:
    """Not yet available."""
    raise fail("digitkit bundle is not built yet")
