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
from typer.core import TyperCommand, TyperGroup

from digitkit.runtime.errors import DigitkitError

from . import interrupts

DEFAULT_TRAIN_DIR = Path("runs/train")
DEFAULT_EXPORT_DIR = Path("runs/export")
DEBUG_FLAG = "--debug"
INTERRUPTED = interrupts.INTERRUPTED
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a command whose reader went away


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
    if isinstance(exc, KeyboardInterrupt) or interrupts.received():  # whatever a library made of Ctrl-C
        interrupts.state.reported = True
        error_line(interrupts.message())
        return INTERRUPTED
    if isinstance(exc, BrokenPipeError):  # `digitkit ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return BROKEN_PIPE
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
COMMANDS = ("train", "export", "info", "verify", "predict", "bench", "bundle", "serve", "doctor")


def _command(name: str) -> Any:
    import importlib

    function = getattr(importlib.import_module(f"digitkit.toolkit.cli.{name}"), name)
    single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    single.command(name=name, cls=DigitkitCommand)(function)
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
        left_to_command = json_values_left(rest)
        rest = json_flag_values(rest)
        ctx.obj = {"debug": debug or bool(os.environ.get("DIGITKIT_DEBUG")), "json_left": left_to_command}
        return super().parse_args(ctx, rest)

    def invoke(self, ctx: Any) -> Any:
        debug = bool((ctx.obj or {}).get("debug"))
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            try:
                result = super().invoke(ctx)
                interrupts.finish()
                return result
            except (
                typer.Exit,
                typer.Abort,
                typer.TyperException,
            ):  # Typer's own: usage errors, --help, exits
                raise
            except (Exception, KeyboardInterrupt) as exc:  # the one place errors become exit codes
                raise typer.Exit(exit_code_for(exc, debug)) from None


class DigitkitCommand(TyperCommand):
    """A command that names the fix when a word after ``--json`` (neither ``-`` nor FILE.json, so left
    to the command by ``json_flag_values``) leaves it an argument too many: one line, exit 2, instead
    of Typer's boxed usage error."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        left = (ctx.obj or {}).get("json_left") or []
        if not left or ctx.resilient_parsing:
            return super().parse_args(ctx, args)
        ctx.allow_extra_args = True
        try:
            extra = super().parse_args(ctx, args)
        finally:
            ctx.allow_extra_args = False
        if extra:
            raise json_value_error(
                left[0],
                ctx.info_name,
                f"so `digitkit {ctx.info_name}` read {left[0]} as an argument and got "
                f"{plural(len(extra), 'argument')} too many ({' '.join(extra)})",
            )
        return extra


_ASCII = {"µ": "u", "Δ": "d", "≥": ">=", "≤": "<=", "×": "x", "→": "->", "…": "...", "±": "+/-", "—": "-"}


def _ascii_replace(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    return "".join(_ASCII.get(ch, "?") for ch in text), error.end


def use_ascii_fallback() -> None:
    """On a stdout or stderr that cannot encode µ, Δ or ≥ (cp1252, C locale), write ASCII instead of
    crashing with UnicodeEncodeError after the run."""
    import codecs

    codecs.register_error("digitkit-ascii", _ascii_replace)
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if encoding != "utf8" and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="digitkit-ascii")


JSON_FLAG = "--json"
JSON_HELP = (
    "JSON instead of the table on stdout (--json or --json -), or the table and JSON written to FILE.json."
)


def is_json_value(word: Optional[str]) -> bool:
    return word is not None and (word == "-" or word.lower().endswith(".json"))


def json_flag_values(args: list[str]) -> list[str]:
    """One ``--json`` convention for every command: alone it means stdout (``--json -``); a value is
    taken only when it is ``-`` or names a .json file, so ``predict --json a.png`` never writes to a.png."""
    before_separator = args.index("--") if "--" in args else len(args)
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if i < before_separator and arg == JSON_FLAG:
            following = args[i + 1] if i + 1 < before_separator else None
            if not is_json_value(following):
                out.append("-")
    return out


def json_values_left(args: list[str]) -> list[str]:
    """The words right after ``--json`` that ``json_flag_values`` leaves to the command (not options)."""
    before_separator = args.index("--") if "--" in args else len(args)
    return [
        args[i + 1]
        for i in range(before_separator - 1)
        if args[i] == JSON_FLAG and not is_json_value(args[i + 1]) and not args[i + 1].startswith("-")
    ]


def json_value_error(value: str, command: Optional[str], consequence: str) -> DigitkitError:
    """``--json adir``: what happened to the word, and the value that writes where the user meant."""
    from digitkit.runtime.errors import InputError

    path = Path(value)
    suggestion = path / f"{command or 'result'}.json" if path.is_dir() else path.with_suffix(".json")
    return InputError(
        f"--json takes only - or a file name ending in .json, {consequence}",
        f"Pass --json {suggestion} for a file, or --json alone for JSON on stdout",
    )


def json_output(value: Optional[str]) -> Optional[Path]:
    """``--json``'s target checked before any work: None (no JSON), Path("-") (stdout) or a file."""
    if value is None:
        return None
    if value == "-":
        return Path("-")
    if not is_json_value(value):  # `--json=adir`, which json_flag_values cannot tell apart
        raise json_value_error(value, None, f"not {value}")
    from digitkit.runtime.files import check_output_file

    return check_output_file(Path(value), JSON_FLAG)


def to_stdout(target: Optional[Path]) -> bool:
    return target is not None and str(target) == "-"


def emit_json(target: Optional[Path], data: Any) -> None:
    """Print ``data`` as JSON on stdout, or write it atomically to ``target`` and say where."""
    if target is None:
        return
    from digitkit.runtime.files import json_text, write_json_atomic

    if to_stdout(target):
        echo(json_text(data))
        return

    write_json_atomic(target, data)
    echo(f"JSON: {target}")


def resolve_artifact(path: Path, option: str = "--model") -> Path:
    """One way to name an artifact everywhere: a file as it is; an export directory means its
    preferred artifact (the int8 TFLite); a training directory or any other folder is named as such."""
    from digitkit.runtime.errors import ArtifactError
    from digitkit.runtime.manifest import MANIFEST_NAME

    path = Path(path)
    if path.is_dir():
        if (path / MANIFEST_NAME).is_file():
            return preferred_artifact(path)
        if (path / "model.keras").is_file():
            raise ArtifactError(
                f"{option} {path} is a training directory (model.keras); this command runs exported artifacts",
                f"Run `digitkit export --model {path} --int8` and pass the export directory",
            )
        raise ArtifactError(
            f"{option} {path} is a directory without {MANIFEST_NAME}",
            "Pass an artifact file (.tflite, .onnx) or an export directory",
        )
    return path  # a file, or nothing: the loader says which (and what it expected)


def preferred_artifact(export_dir: Path) -> Path:
    """An export's int8 TFLite artifact: the pixels-in one (same answers, no conversions in Python),
    else the int8-in one, else its first TFLite, else its first artifact."""
    from digitkit.runtime.errors import ArtifactError
    from digitkit.runtime.manifest import read_manifest

    manifest = read_manifest(export_dir)
    preference = ("int8-pixels", "int8")
    ranked = sorted(
        manifest.artifacts,
        key=lambda e: (
            e.format != "tflite",
            preference.index(e.mode) if e.mode in preference else len(preference),
        ),
    )
    if not ranked:
        raise ArtifactError(
            f"{manifest.name} lists no artifacts", "Run `digitkit export --int8` or pass --model PATH"
        )
    return manifest.path_of(ranked[0])


def check_threads(threads: Optional[int]) -> Optional[int]:
    if threads is not None and threads < 1:
        from digitkit.runtime.errors import InputError

        raise InputError(
            f"--threads {threads} is not a positive number of threads",
            "Pass --threads 1 or more, or leave it out for the backend's default",
        )
    return threads


def plural(count: int, word: str, many: Optional[str] = None) -> str:
    """``1 epoch``, ``4 epochs``: English, not ``1 epochs``."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


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
    """Binary units, labelled as such: 683.7 KiB, 2.6 MiB."""
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def progress_line(message: str) -> None:
    """A long step announced on stderr, at a terminal (stdout stays the result, JSON included; logs and
    pipes keep only results and errors)."""
    if sys.stderr.isatty():
        typer.echo(f"digitkit: {message} ...", err=True)


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
