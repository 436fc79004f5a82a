"""digitkit's version. A constant, not read from package metadata: that read costs 30 ms at every
start-up of a device process. tests/test_cli.py checks it against pyproject.toml."""

__version__ = "0.1.0"
