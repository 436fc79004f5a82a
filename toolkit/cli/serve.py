"""`digitkit serve`: the model behind an HTTP API and a draw-a-digit page, on the device runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from .predict import BACKEND_HELP


def serve(
    model: Annotated[
        Optional[Path],
        typer.Option(help="A .tflite or .onnx artifact (default: the int8 TFLite of the last export)."),
    ] = None,
    bundle: Annotated[
        Optional[Path],
        typer.Option(
            help="A bundle directory from `digitkit bundle`: serve its int8-pixels (else int8) TFLite."
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on. 0.0.0.0 opens it to the network (use --token).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free one, printed at start).")] = 8000,
    backend: Annotated[str, typer.Option(help=BACKEND_HELP)] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="Threads the backend may use.")] = None,
    workers: Annotated[
        int, typer.Option(help="Requests decoded and predicted at once (threads).", min=1)
    ] = max(2, os.cpu_count() or 1),
    token: Annotated[
        Optional[str],
        typer.Option(
            help="Require `Authorization: Bearer TOKEN` on /api/* (better: set DIGITKIT_SERVE_TOKEN, which `ps` does not show).",
            envvar="DIGITKIT_SERVE_TOKEN",
            show_envvar=False,
        ),
    ] = None,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes (413 above).", min=1024)] = 8
    * 1024
    * 1024,
    max_batch: Annotated[int, typer.Option(help="Most images in one request.", min=1)] = 256,
    body_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a client has to send its headers (else closed), then its body (408).", min=0.1
        ),
    ] = 10.0,
    max_connections: Annotated[
        int, typer.Option(help="Open connections at most (503 beyond: a flood cannot exhaust memory).", min=1)
    ] = 256,
    cors_origin: Annotated[
        Optional[List[str]],
        typer.Option(
            "--cors-origin", help="Allow browser pages from this origin (repeatable; default none)."
        ),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the model: a draw-a-digit page at /, GET /api/info, POST /api/predict, GET /healthz.
    Nothing is written to disk; Ctrl-C (or SIGTERM) stops it."""
    import sys

    from digitkit.runtime import load
    from digitkit.toolkit.serve.app import Settings
    from digitkit.toolkit.serve.server import LOOPBACK, bind, model_path, run, url_of

    settings = Settings(
        max_body=max_body,
        max_batch=max_batch,
        body_timeout=body_timeout,
        token=token or None,
        cors_origins=list(cors_origin or []),
        workers=workers,
    )
    path = model_path(model, bundle)
    runtime_model = load(path, backend=backend, threads=threads)
    sock = bind(host, port)
    if host not in LOOPBACK:
        typer.echo(
            f"digitkit: warning: listening on {host}: anyone who can reach this machine can use the model"
            + ("" if settings.token else "; pass --token (or set DIGITKIT_SERVE_TOKEN) to require a token"),
            err=True,
        )
    # The first line, flushed: a supervisor or a test reads the address from it.
    typer.echo(
        f"digitkit: serving {runtime_model.path.name} ({runtime_model.mode}, {runtime_model.backend}) "
        f"at {url_of(sock)}"
    )
    sys.stdout.flush()
    run(runtime_model, settings, sock, access_log=access_log, max_connections=max_connections)
