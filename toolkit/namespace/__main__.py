"""``python -m digitkit``: the ``digitkit`` command, for when the script is not on PATH."""

from digitkit.toolkit.cli import main

main()
