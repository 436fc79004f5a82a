"""The `digitkit` command. Each command lives in its own module and imports heavy libraries lazily,
so `digitkit --help`, `predict` and `verify` run without TensorFlow; device commands (predict,
verify, info, bench) never import `digitkit.export`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

try:
    import typer
except ImportError:  # the runtime installs without the CLI
    typer = None  # type: ignore[assignment]


def _build_app() -> Any:
    from .common import DigitkitGroup

    app = typer.Typer(
        name="digitkit",
        cls=DigitkitGroup,
        help="Train the MNIST MLP, export it to TFLite and ONNX (float and int8), and prove every artifact keeps its accuracy.",
        no_args_is_help=True,
        add_completion=False,
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
    ) -> None:
        """--debug is taken off the command line by DigitkitGroup wherever it stands; declared here for --help."""

    return app


app = _build_app() if typer is not None else None


def main() -> None:
    if app is None:
        sys.stderr.write("digitkit: error: the command line needs Typer. pip install 'digitkit[cli]'\n")
        raise SystemExit(2)
    app()
