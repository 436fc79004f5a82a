"""Silence the converters' chatter (Keras prints every SavedModel endpoint; TFLite's C++ layer
writes to fd 2) while keeping it for the error message if a conversion fails."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings


@contextlib.contextmanager
def quiet_output():
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
