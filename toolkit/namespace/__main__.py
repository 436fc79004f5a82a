"""``python -m digitkit``: the ``digitkit`` command, for when the script is not on PATH. ``digitkit``
stays a namespace package (no __init__.py): this folder adds only this module to it."""

from digitkit.toolkit.cli import main

main()
