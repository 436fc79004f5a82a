"""Load the model, describe it, bind the socket and run the application on uvicorn.

The socket is bound here, before uvicorn starts, so that the address printed is the one listened
on (``--port 0`` picks a free port and says which) and a port in use is a one-line error.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Optional

from digitkit.runtime.errors import InputError
from digitkit.runtime.hashing import sha256_file
from digitkit.runtime.model import DigitModel
from digitkit.runtime.version import __version__

from .app import Settings

TOKEN_ENV = "DIGITKIT_SERVE_TOKEN"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def describe(model: DigitModel, settings: Settings) -> dict[str, Any]:
    """What GET /api/info answers: the artifact, how it runs, what it takes, and the limits."""
    manifest = model.manifest
    entry = model.entry
    return {
        "artifact": model.path.name,
        "format": model.format,
        "mode": model.mode,
        "backend": model.backend,
        "sha256": entry.sha256 if entry else sha256_file(model.path),
        "digitkit_version": __version__,
        "reference": (
            {
                "framework": manifest.source_model.framework,
                "test_accuracy": manifest.source_model.test_accuracy,
                "test_images": manifest.test_set.images,
            }
            if manifest
            else None
        ),
        "input": {
            "tensor": model.input_info.to_json(),
            "preprocessing": dict(manifest.preprocessing) if manifest else None,
            "accepts": [
                "an image file as the raw body (image/png, image/jpeg, ...: what `digitkit predict` reads)",
                "multipart/form-data with one image file, or several for a batch",
                'application/json {"pixels": 784 values or 28x28} or {"batch": [...]}: integers 0-255 or floats in [0, 1]',
            ],
        },
        "limits": {
            "max_body_bytes": settings.max_body,
            "max_batch": settings.max_batch,
            "body_timeout_s": settings.body_timeout,
        },
        "auth": "bearer" if settings.token else None,
        "endpoints": {
            "GET /": "the draw-a-digit page",
            "GET /healthz": "liveness",
            "GET /api/info": "this description",
            "POST /api/predict": "digit, confidence, probabilities and timing (µs); ?image=1 adds the 28x28 seen",
        },
    }


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when the host is one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it Nagle's algorithm and delayed ACKs add 40 ms to every answer on a kept-alive connection.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InputError(
            f"Cannot listen on {host}:{port} ({exc.strerror or exc})",
            "Pick another --port, or stop what uses it",
        ) from exc
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def deadline_protocol(seconds: float) -> Any:
    """uvicorn's h11 protocol with a deadline for each request's line and headers.

    uvicorn times out idle kept-alive connections, but not a client that trickles its headers a
    byte at a time: enough of those would hold every connection slot. Here a connection whose
    request head is not complete ``seconds`` after it opened (or after its last answer) is closed.
    The body has its own limit (the application's 408)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class DeadlineH11Protocol(H11Protocol):
        _deadline: Optional[Any] = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Optional[Exception]) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _expire(self) -> None:
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # no request head yet: a slow or idle client

    return DeadlineH11Protocol


def run(
    model: DigitModel,
    settings: Settings,
    sock: socket.socket,
    access_log: bool = False,
    log_level: str = "info",
    max_connections: Optional[int] = None,
) -> None:
    """Serve until interrupted (uvicorn handles SIGINT and SIGTERM: a graceful stop)."""
    import uvicorn

    from .app import create_app

    app = create_app(model, describe(model, settings), settings)
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
        http=deadline_protocol(settings.body_timeout),
        timeout_keep_alive=5,  # idle keep-alive connections are closed after 5 s
        timeout_graceful_shutdown=5,
        # uvicorn answers 503 once the open connections, counting the one asking, reach the limit:
        # one more, so that --max-connections N serves N connections and refuses the N+1th.
        limit_concurrency=None if max_connections is None else max_connections + 1,
        h11_max_incomplete_event_size=16 * 1024,  # request line and headers
    )
    uvicorn.Server(config).run(sockets=[sock])


def model_path(model: Optional[Path], bundle: Optional[Path]) -> Path:
    """--model, or the preferred artifact of --bundle (a directory: an archive would be unpacked
    to disk, which the server never does), or of the last export."""
    from digitkit.toolkit.cli.predict import default_model

    if model is not None and bundle is not None:
        raise InputError("Pass --model or --bundle, not both", "Drop one of them")
    if model is not None:
        return model
    if bundle is None:
        return default_model()
    if not bundle.is_dir():
        raise InputError(
            f"--bundle {bundle} is not a directory",
            "Unpack the bundle first (tar xzf BUNDLE.tar.gz) and pass its directory",
        )
    from digitkit.toolkit.bundling import open_bundle

    with open_bundle(bundle) as (manifest, _):  # checks every file's hash
        return default_model(manifest.directory)
