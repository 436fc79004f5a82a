"""What every command shares: the one place errors become exit codes, ``--debug``, output, paths.

Commands raise; they never pick exit codes themselves. ``DigitkitGroup.invoke`` maps what a
command raised to one line on stderr and an exit code (pypa/build's ``_handle_build_error`` is the
model): a ``DigitkitError`` to its own ``exit_code`` (2 for bad input, 1 for a failed gate or
export), Ctrl-C to 130, anything else to 2 with "unexpected; report it". ``--debug`` anywhere on the
command line (before or after the subcommand) shows the traceback as well.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, TextIO

import typer
import typer.main
from typer.core import TyperGroup

from digitkit.runtime.errors import DigitkitError

DEFAULT_TRAIN_DIR = Path("runs/train")
DEFAULT_EXPORT_DIR = Path("runs/export")
DEBUG_FLAG = "--debug"
INTERRUPTED = 130


def echo(message: str = "") -> None:
    typer.echo(message)


def error_line(message: str) -> None:
    typer.echo(f"digitkit: error: {message}", err=True)


def note(message: str) -> None:
    typer.echo(f"digitkit: note: {message}", err=True)


def exit_code_for(exc: BaseException, debug: bool) -> int:
    """Say what went wrong in one line (and the traceback with --debug); return the exit code."""
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt):
        error_line("Interrupted; nothing was half-written")
        return INTERRUPTED
    if isinstance(exc, DigitkitError):
        error_line(exc.one_line())
        return exc.exit_code
    if isinstance(exc, MemoryError):
        error_line("Out of memory. Use a smaller batch or close other programs")
        return 2
    detail = str(exc).strip().splitlines()
    error_line(
        f"{type(exc).__name__}: {detail[0] if detail else ''} "
        "(unexpected; rerun with --debug for the traceback and report it)"
    )
    return 2


def _show_warning(
    message: Any,
    category: type,
    filename: str,
    lineno: int,
    file: Optional[TextIO] = None,
    line: Optional[str] = None,
) -> None:
    note(str(message))


# Each command is the function of that name in the module of that name, imported when it runs (or
# when --help lists it): `digitkit predict` imports neither the export layer nor TensorFlow.
COMMANDS = ("train", "export", "info", "verify", "predict", "bench", "bundle", "serve")


def _command(name: str) -> Any:
    import importlib

    function = getattr(importlib.import_module(f"digitkit.toolkit.cli.{name}"), name)
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name=name)(function)
    return typer.main.get_command(single)


class DigitkitGroup(TyperGroup):
    """The ``digitkit`` group: loads commands lazily, strips ``--debug`` wherever it stands, and
    maps errors to exit codes."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return _command(cmd_name) if cmd_name in COMMANDS else None

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        before_separator = args.index("--") if "--" in args else len(args)
        debug = DEBUG_FLAG in args[:before_separator]
        rest = [a for i, a in enumerate(args) if not (i < before_separator and a == DEBUG_FLAG)]
        ctx.obj = {"debug": debug or bool(os.environ.get("DIGITKIT_DEBUG"))}
        return super().parse_args(ctx, rest)

    def invoke(self, ctx: Any) -> Any:
        debug = bool((ctx.obj or {}).get("debug"))
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            try:
                return super().invoke(ctx)
            except (
                typer.Exit,
                typer.Abort,
                typer.TyperException,
            ):  # Typer's own: usage errors, --help, exits
                raise
            except (Exception, KeyboardInterrupt) as exc:  # the one place errors become exit codes
                raise typer.Exit(exit_code_for(exc, debug)) from None


def parse_sizes(text: str, option: str) -> list[int]:
    """``"1,32,1000"`` as positive integers; anything else is bad input naming the option."""
    from digitkit.runtime.errors import InputError

    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise InputError(
            f"{option} {text!r} is not a list of positive integers", f"Pass e.g. {option} 1,32,1000"
        )
    return sizes


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], title: Optional[str] = None
) -> None:
    """A rich table on stdout; wide enough off a terminal that nothing is cut in logs and tests."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(*headers, title=title, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*(cell if isinstance(cell, Text) else str(cell) for cell in row))
    console = Console(file=sys.stdout, soft_wrap=False)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=240, soft_wrap=False, color_system=None)
    console.print(table)
