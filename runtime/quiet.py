"""Silence native chatter written straight to file descriptors 1 and 2 (TensorFlow's and LiteRT's
start-up notices, Keras listing SavedModel endpoints), keeping it so that a failure can quote it.
Python warnings raised meanwhile are dropped, except digitkit's own, which are raised again after."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import warnings
from typing import IO, Iterator


class Captured:
    """What was written while silenced; ``tail()`` gives its last lines for an error message."""

    def __init__(self, sink: IO[bytes]) -> None:
        self._sink = sink
        self.text = ""

    def _collect(self) -> None:
        self._sink.seek(max(0, self._sink.seek(0, os.SEEK_END) - 65536))  # the tail is what gets quoted
        self.text = self._sink.read().decode("utf-8", "replace")

    def tail(self, lines: int = 5) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()][-lines:]


def _scratch_file() -> IO[bytes]:
    """An anonymous file to hold captured output: in memory (memfd) where the OS offers it, so that
    loading a model needs no writable directory (`digitkit serve` runs on a read-only file system)."""
    if hasattr(os, "memfd_create"):
        try:
            return os.fdopen(os.memfd_create("digitkit-output", os.MFD_CLOEXEC), "w+b")
        except OSError:  # refused (a sandbox's seccomp filter): a temporary file then
            pass
    return tempfile.TemporaryFile(mode="w+b")


@contextlib.contextmanager
def quiet_output() -> Iterator[Captured]:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with _scratch_file() as sink:
        captured = Captured(sink)
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always")
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                os.close(saved[0])
                os.close(saved[1])
                captured._collect()
        for warning in recorded:  # the libraries' warnings stay silenced; digitkit's own pass through
            if warning.category.__module__.startswith("digitkit"):
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)


_NOTICES = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)
_FD2 = threading.Lock()


@contextlib.contextmanager
def without_notices() -> Iterator[None]:
    """fd 2 held while a native runtime starts, its start-up notice (LiteRT's "INFO: Created
    TensorFlow Lite XNNPACK delegate for CPU.") dropped and anything else written again: the library
    stays silent for API users too. Unlike ``quiet_output`` it leaves fd 1 and warnings alone."""
    with _FD2, _scratch_file() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [
                line
                for line in sink.read().decode("utf-8", "replace").splitlines(keepends=True)
                if line.strip() not in _NOTICES
            ]
            if kept:
                os.write(2, "".join(kept).encode("utf-8"))
