"""The `digitkit` command. Each command lives in its own module and imports heavy libraries lazily,
so `digitkit --help`, `predict` and `verify` run without TensorFlow."""
from __future__ import annotations

import sys

try:
    import typer
except ImportError:  # the runtime installs without the CLI
    typer = None


def _build_app():
    from . import common
    from .bench import bench
    from .bundle import bundle
    from .export import export
    from .info import info
    from .predict import predict
    from .train import train
    from .verify import verify

    app = typer.Typer(
        name="digitkit",
        help="Train the MNIST MLP, export it to TFLite and ONNX (float and int8), and prove every artifact keeps its accuracy.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback()
    def main_options(
        debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    ) -> None:
        if debug:
            common.STATE["debug"] = True

    for command in (train, export, info, verify, predict, bench, bundle):
        app.command()(command)
    return app


app = _build_app() if typer is not None else None


def main() -> None:
    if app is None:
        sys.stderr.write("digitkit: error: the command line needs Typer. pip install 'digitkit[cli]'\n")
        raise SystemExit(2)
    app()
