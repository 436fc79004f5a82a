"""Run `digitkit.runtime.load` or the `digitkit predict` command on many files, each in its own
forked child process, and report how each child ended.

Forking from a parent that has already imported numpy and the backends costs milliseconds per file,
where a fresh interpreter costs a third of a second. The parent loads no model and starts no thread
before forking. A child killed by a signal is a crash; one stopped by its alarm is a hang.

    python tests/fuzz_forkserver.py load|cli IMAGE FILE... > outcomes.json
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile

import ai_edge_litert.interpreter  # noqa: F401  imported once, before forking
import numpy as np
import onnxruntime  # noqa: F401
from helpers import UNEXPECTED

from digitkit.runtime import load
from digitkit.runtime.errors import DigitkitError
from digitkit.toolkit.cli import app

HANG_SECONDS = 30


def child(mode: str, image: str, path: str) -> int:
    signal.alarm(HANG_SECONDS)
    if mode == "load":
        try:
            load(path).predict(np.zeros((3, 784), np.uint8))
            return 0
        except DigitkitError as exc:
            sys.stderr.write(f"digitkit: error: {exc.one_line()}\n")
            return 2
    try:
        app(["predict", image, "--model", path], standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def outcome(status: int, stderr: str) -> str:
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return "hang" if sig == signal.SIGALRM else f"crash (signal {sig})"
    code = os.WEXITSTATUS(status)
    if "Traceback" in stderr:
        return "traceback"
    if code == 0:
        return "ok"
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("INFO: ")]
    if any(UNEXPECTED in line for line in lines):  # the CLI's catch-all: an exception nobody typed, a bug
        return f"unexpected error: {lines[-1][:200]}"
    if code == 2 and len(lines) == 1 and lines[0].startswith("digitkit: error: "):
        return "one-line error"
    return f"exit {code}: {stderr[-200:]}"


def main() -> None:
    mode, image, files = sys.argv[1], sys.argv[2], sys.argv[3:]
    results = {}
    for path in files:
        with tempfile.TemporaryFile(mode="w+") as err:
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                os.dup2(err.fileno(), 2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                try:
                    code = child(mode, image, path)
                except BaseException:
                    import traceback

                    traceback.print_exc()
                    code = 1
                sys.stderr.flush()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            err.seek(0)
            results[path] = outcome(status, err.read())
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
