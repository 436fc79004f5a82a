"""The Starlette application: the page, its assets, /healthz, /api/info and /api/predict.

Bodies are read here with a size limit (413 from Content-Length alone, or as soon as a streamed
body passes it, never reading it whole) and a time limit (408), then decoded and run on a worker
thread so that a large photo never stalls the event loop that serves everyone else. Nothing is
written to disk: uploads are parsed in memory (requests.py), the page's assets are read at start.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Optional

import anyio
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digitkit.runtime.files import json_text
from digitkit.runtime.model import DigitModel

from .requests import Decoded, RequestProblem, decode_body, is_quick

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
COMMON_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
PAGE_HEADERS = {
    **COMMON_HEADERS,
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-cache",
}
API_HEADERS = {**COMMON_HEADERS, "Cache-Control": "no-store"}


@dataclass
class Settings:
    max_body: int = 8 * 1024 * 1024  # bytes: a phone photo fits, a flood does not
    max_batch: int = 256
    body_timeout: float = 10.0  # seconds to receive a whole body
    token: Optional[str] = None
    cors_origins: list[str] = field(default_factory=list)
    workers: int = 2  # threads decoding and predicting at once


class StrictJSONResponse(JSONResponse):
    """JSON as `--json` writes it: a non-finite float (a broken model's output) is null, not a 500."""

    def render(self, content: Any) -> bytes:
        return json_text(content, indent=None).encode("utf-8")


def _asset(name: str) -> bytes:
    return resources.files("digitkit.toolkit.serve").joinpath("static", name).read_bytes()


def _problem(problem: RequestProblem, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse(
        problem.to_json(), status_code=problem.status, headers={**API_HEADERS, **(headers or {})}
    )


def _answer(row: np.ndarray, image: Optional[np.ndarray]) -> dict[str, Any]:
    """One image's answer, rounded as `digitkit predict --json` rounds it."""
    order = np.argsort(-row, kind="stable")  # ties resolve as argmax does
    answer: dict[str, Any] = {
        "digit": int(order[0]),
        "confidence": round(float(row[order[0]]), 6),
        "probabilities": [round(float(p), 6) for p in row],
    }
    if image is not None:  # the 28x28 the model saw, 0-255, row by row
        pixels = image if image.dtype == np.uint8 else np.rint(image * 255.0).astype(np.uint8)
        answer["image"] = pixels.reshape(28, 28).tolist()
    return answer


def create_app(model: DigitModel, info: dict[str, Any], settings: Settings) -> Starlette:
    """The application for one loaded model. ``info`` is what GET /api/info answers."""
    assets = {name: _asset(name) for name in ASSETS}
    limiter = anyio.CapacityLimiter(max(1, settings.workers))
    token = settings.token.encode() if settings.token else None

    def authorized(request: Request) -> bool:
        if token is None:
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token)

    def unauthorized() -> JSONResponse:
        return _problem(
            RequestProblem(401, "This server needs a token", "Send the header Authorization: Bearer TOKEN"),
            {"WWW-Authenticate": "Bearer"},
        )

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise RequestProblem(
                    400, f"Content-Length {declared[:40]!r} is not a number", "Send a valid request"
                )
            if int(declared) > settings.max_body:
                raise _too_large(int(declared))
        chunks: list[bytes] = []
        received = 0
        try:
            with anyio.fail_after(settings.body_timeout):
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > settings.max_body:
                        raise _too_large(received)
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise RequestProblem(
                408,
                f"The body did not arrive within {settings.body_timeout:g} s",
                "Send it faster or smaller",
            ) from exc
        return b"".join(chunks)

    def _too_large(size: int) -> RequestProblem:
        return RequestProblem(
            413,
            f"The body is larger than the limit of {settings.max_body:,} bytes (at least {size:,})",
            "Send a smaller image (crop it to the digit), or start the server with a larger --max-body",
        )

    def predict_sync(body: bytes, content_type: Optional[str], with_image: bool) -> dict[str, Any]:
        decoded: Decoded = decode_body(body, content_type, settings.max_batch)
        started = time.perf_counter()
        probabilities = model.predict_proba(np.stack(decoded.images))
        inference_us = (time.perf_counter() - started) * 1e6
        answers = [
            _answer(row, image if with_image else None) for row, image in zip(probabilities, decoded.images)
        ]
        timing = {
            "decode_us": round(decoded.decode_us, 1),
            "preprocess_us": round(decoded.preprocess_us, 1),
            "inference_us": round(inference_us, 1),
        }
        if decoded.batch:
            for answer, name in zip(answers, decoded.names):
                answer["name"] = name
            return {"predictions": answers, "timing_us": timing}
        return {**answers[0], "timing_us": timing}

    async def predict(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        started = time.perf_counter()
        try:
            body = await read_body(request)
            with_image = request.query_params.get("image", "") in ("1", "true", "yes")
            content_type = request.headers.get("content-type")
            if is_quick(body, content_type):  # a thread hop would cost more than the work
                result = predict_sync(body, content_type, with_image)
            else:
                result = await anyio.to_thread.run_sync(
                    predict_sync, body, content_type, with_image, limiter=limiter
                )
        except RequestProblem as problem:
            headers = {"Connection": "close"} if problem.status in (408, 413) else None
            return _problem(problem, headers)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        result["timing_us"]["total_us"] = round((time.perf_counter() - started) * 1e6, 1)
        return StrictJSONResponse(result, headers=API_HEADERS)

    async def api_info(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        return StrictJSONResponse(info, headers=API_HEADERS)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"}, headers=API_HEADERS)

    async def page(request: Request) -> Response:
        return Response(assets["index.html"], media_type=ASSETS["index.html"], headers=PAGE_HEADERS)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSETS or name == "index.html":
            raise HTTPException(404)
        return Response(assets[name], media_type=ASSETS[name], headers=PAGE_HEADERS)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 400
        messages = {404: "No such page or endpoint", 405: "This endpoint does not take that method"}
        problem = RequestProblem(
            status, messages.get(status, "Bad request"), "See GET /api/info and the page at /"
        )
        return _problem(problem, dict(getattr(exc, "headers", None) or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        # Never a traceback to the client; the log has it (uvicorn logs the exception).
        return _problem(RequestProblem(500, "Internal error", "Report it with the server's log"))

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name}", static, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/api/info", api_info, methods=["GET"]),
        Route("/api/predict", predict, methods=["POST"]),
    ]
    middleware = []
    if settings.cors_origins:
        from starlette.middleware import Middleware
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
