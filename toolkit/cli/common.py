"""What every command shares: one-line errors with exit code 2, --debug tracebacks, default paths."""
from __future__ import annotations

import functools
import os
from pathlib import Path

import typer

from digitkit.runtime.errors import DigitkitError

DEFAULT_TRAIN_DIR = Path("runs/train")
DEFAULT_EXPORT_DIR = Path("runs/export")
STATE = {"debug": bool(os.environ.get("DIGITKIT_DEBUG"))}


def fail(message: str, code: int = 2) -> "typer.Exit":
    typer.echo(f"digitkit: error: {message}", err=True)
    return typer.Exit(code)


def friendly_errors(command):
    """Turn a DigitkitError (or an unexpected crash) into one line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except DigitkitError as exc:
            if STATE["debug"]:
                raise
            raise fail(exc.one_line(), exc.exit_code)
        except KeyboardInterrupt:
            raise fail("Interrupted; nothing was half-written", 130)
        except MemoryError:
            raise fail("Out of memory. Use a smaller batch or close other programs")
        except Exception as exc:  # a bug, or an environment we did not foresee
            if STATE["debug"]:
                raise
            detail = str(exc).strip().splitlines()
            raise fail(
                f"{type(exc).__name__}: {detail[0] if detail else ''} (unexpected; rerun with --debug for the traceback and report it)"
            )

    return wrapper


def echo(message: str = "") -> None:
    typer.echo(message)
