"""Ctrl-C the same way at every moment: exit 130 with one line, no traceback, nothing half-written.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be, and a
KeyboardInterrupt raised inside a destructor or a weakref callback (matplotlib's WeakKeyDictionary)
is only printed as "Exception ignored" while the command carries on and exits 0. So the CLI installs
its own handler first thing: the first Ctrl-C raises KeyboardInterrupt once (cleanup then runs
undisturbed; later ones are only counted), a swallowed one is remembered, and the exit code is 130
whenever a Ctrl-C arrived. Multi-step publishes (runtime/files.py ``uninterrupted``) hold the
interrupt until their renames are done.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

INTERRUPTED = 130


class _State:
    received = False  # a Ctrl-C arrived (raised, swallowed by a library, or after the work)
    reported = False  # its one line was printed
    finished = False  # the command's work is over: a late Ctrl-C only changes the exit code


state = _State()


def _on_sigint(signum: int, frame: Any) -> None:
    if state.received:
        return
    state.received = True
    if not state.finished:
        raise KeyboardInterrupt


def _unraisable(original: Any) -> Any:
    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            state.received = True  # raised where Python could only print it: remember it instead
            return
        original(unraisable)

    return hook


def install() -> None:
    """Take over Ctrl-C for the life of the process (the command line only, never the library)."""
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable(sys.unraisablehook)


def received() -> bool:
    return state.received


def finish() -> None:
    state.finished = True


def message() -> str:
    if state.finished:
        return "Interrupted after the command had finished; its output is complete"
    return "Interrupted; nothing was half-written"
