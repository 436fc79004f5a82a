"""The `digitkit` command. Each command lives in its own module and imports heavy libraries lazily,
so `digitkit --help`, `predict` and `verify` run without TensorFlow; device commands (predict,
verify, info, bench) never import `digitkit.export`."""

import os
import sys

# Nothing else is imported before `main` takes over Ctrl-C (not even typing): see interrupts.py.


def _build_app() -> object:
    from typing import Annotated

    import typer

    from .common import DigitkitGroup

    def print_version(value: bool) -> None:
        if value:
            from digitkit.runtime.version import __version__

            typer.echo(f"digitkit {__version__}")
            raise typer.Exit(0)

    app = typer.Typer(
        name="digitkit",
        cls=DigitkitGroup,
        help="Train the MNIST MLP, export it to TFLite and ONNX (float and int8), and prove every artifact keeps its accuracy.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def main_options(
        debug: Annotated[
            bool,
            typer.Option(
                "--debug",
                help="Show full tracebacks as well as one-line errors (before or after the command).",
            ),
        ] = False,
        version: Annotated[
            bool,
            typer.Option(
                "--version", help="Print digitkit's version and exit.", is_eager=True, callback=print_version
            ),
        ] = False,
    ) -> None:
        """--debug is taken off the command line by DigitkitGroup wherever it stands; declared here for --help."""

    return app


_app = None


def __getattr__(name: str) -> object:
    """``app`` is built on first use, so that ``main`` takes over Ctrl-C before Typer is imported."""
    global _app
    if name != "app":
        raise AttributeError(name)
    if _app is None:
        _app = _build_app()
    return _app


def main() -> None:
    """The ``digitkit`` entry point: Ctrl-C handled from the first line, one exit code at the end."""
    from . import interrupts

    interrupts.install()
    code: object = 0
    try:
        from .common import use_ascii_fallback

        use_ascii_fallback()
        try:
            application = __getattr__("app")
        except ImportError:  # the runtime installs without the CLI
            sys.stderr.write("digitkit: error: the command line needs Typer. pip install 'digitkit[cli]'\n")
            code = 2
        else:
            application()  # type: ignore[operator]
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        code = interrupts.INTERRUPTED
    interrupts.finish()
    if interrupts.received():
        if not interrupts.state.reported:
            sys.stderr.write(f"digitkit: error: {interrupts.message()}\n")
        code = interrupts.INTERRUPTED
    if code is None:
        code = 0
    elif not isinstance(code, int):  # SystemExit("message"): Python prints it and exits 1
        sys.stderr.write(f"{code}\n")
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    # Straight out, without Python's finalisation: it resets the SIGINT handler to the default before
    # the process ends (with TensorFlow loaded that takes a while), so a Ctrl-C then would kill the
    # process with no message and no exit code of ours. The work is done and the streams flushed.
    os._exit(code)
