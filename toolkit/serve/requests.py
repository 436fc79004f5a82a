"""Request bodies in, MNIST-form digits out: the framework-free half of `digitkit serve`.

A body is an image file in any format `digitkit predict` reads (raw, or as multipart file parts),
or JSON pixels (784 values or 28x28, integers 0-255 or floats in [0, 1]), one image or a batch.
Image bytes go through ``read_gray_bytes`` and ``to_mnist``, the functions ``load_image`` uses,
so the server's answers are `digitkit predict`'s. Every problem is a ``RequestProblem`` carrying
its HTTP status (400, 413, 415), never an exception the client would see as a 500.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from digitkit.runtime.errors import BackendUnavailableError, ImageError
from digitkit.runtime.images import read_gray_bytes, to_mnist

FIELD = 28
PIXELS = FIELD * FIELD
IMAGE_TYPES = ("image/", "application/octet-stream")
JSON_TYPES = ("application/json",)
MULTIPART = "multipart/form-data"
_PIXELS_FIX = 'Send {"pixels": [784 values]} or 28 rows of 28: integers 0-255 or floats in [0, 1]'


class RequestProblem(Exception):
    """What was wrong with a request: an HTTP status, the problem and the fix (as DigitkitError)."""

    def __init__(self, status: int, problem: str, fix: str = "") -> None:
        super().__init__(problem)
        self.status = status
        self.problem = problem
        self.fix = fix

    def to_json(self) -> dict[str, Any]:
        return {"error": self.problem, "fix": self.fix, "status": self.status}


@dataclass
class Decoded:
    """The digits of one request, each 28x28 (uint8, or float32 in [0, 1] for JSON floats), with the
    microseconds spent decoding (bytes to pixels) and preprocessing (the MNIST transform)."""

    images: list[np.ndarray] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    batch: bool = False
    decode_us: float = 0.0
    preprocess_us: float = 0.0


def media_type(content_type: Optional[str]) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(body: bytes, content_type: Optional[str], max_batch: int) -> Decoded:
    """The digits in a request body, by its Content-Type (none: taken as an image file)."""
    kind = media_type(content_type)
    if kind in JSON_TYPES or kind.endswith("+json"):
        return _decode_json(body, max_batch)
    if kind == MULTIPART:
        return _decode_multipart(body, content_type or "", max_batch)
    if kind == "" or kind.startswith(IMAGE_TYPES):
        decoded = Decoded()
        _add_image(decoded, body, "The request body")
        return decoded
    raise RequestProblem(
        415,
        f"Content-Type {kind!r} is not supported",
        "Send an image (image/png, image/jpeg, ...), multipart/form-data with image files, or application/json pixels",
    )


INLINE_BYTES = 32 * 1024
INLINE_PIXELS = 512 * 512


def is_quick(body: bytes, content_type: Optional[str]) -> bool:
    """Whether decoding and predicting this body costs well under a millisecond: a small JSON body,
    or a small image whose header declares few pixels (a tiny PNG can declare 40 million). Those
    run on the event loop; anything else on a worker thread, where a slow decode blocks nobody."""
    if len(body) > INLINE_BYTES:
        return False
    kind = media_type(content_type)
    if kind in JSON_TYPES:
        return True
    if kind == MULTIPART:
        return False  # its files could declare millions of pixels
    if kind != "" and not kind.startswith(IMAGE_TYPES):
        return True  # refused at once (415)
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(body)) as img:
            width, height = img.size
    except Exception:  # not an image, or no Pillow: let the worker say why
        return False
    return width * height <= INLINE_PIXELS


def _add_image(decoded: Decoded, data: bytes, name: str) -> None:
    started = time.perf_counter()
    try:
        gray = read_gray_bytes(data, name)
        decoded_at = time.perf_counter()
        image = to_mnist(gray)
    except BackendUnavailableError as exc:  # Pillow missing on this device
        raise RequestProblem(
            415,
            "This server cannot read image files (Pillow is not installed)",
            "Send JSON pixels, or install digitkit[images]",
        ) from exc
    except ImageError as exc:
        raise RequestProblem(400, exc.problem.replace("The image", name), exc.fix) from exc
    except MemoryError as exc:
        raise RequestProblem(
            413, f"{name} needs more memory than this device has", "Send a smaller image"
        ) from exc
    done = time.perf_counter()
    decoded.decode_us += (decoded_at - started) * 1e6
    decoded.preprocess_us += (done - decoded_at) * 1e6
    decoded.images.append(image)
    decoded.names.append(name)


# --- JSON pixels --------------------------------------------------------------------------------


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _decode_json(body: bytes, max_batch: int) -> Decoded:
    started = time.perf_counter()
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise RequestProblem(400, "The JSON body is nested too deeply", _PIXELS_FIX) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise RequestProblem(400, f"The body is not valid JSON ({detail})", _PIXELS_FIX) from exc
    decoded = Decoded()
    if isinstance(data, dict) and "batch" in data:
        items = data["batch"]
        if not isinstance(items, list) or not items:
            raise RequestProblem(400, '"batch" must be a non-empty list of images', _PIXELS_FIX)
        if len(items) > max_batch:
            raise RequestProblem(
                413, f"The batch holds {len(items)} images; the limit is {max_batch}", "Split it"
            )
        decoded.batch = True
        for index, item in enumerate(items):
            decoded.images.append(_pixels(item, f"batch[{index}]"))
            decoded.names.append(f"batch[{index}]")
    else:
        pixels = data.get("pixels") if isinstance(data, dict) else data
        if isinstance(data, dict) and "pixels" not in data:
            raise RequestProblem(400, 'The JSON object has neither "pixels" nor "batch"', _PIXELS_FIX)
        decoded.images.append(_pixels(pixels, "pixels"))
        decoded.names.append("pixels")
    decoded.decode_us = (time.perf_counter() - started) * 1e6
    return decoded


def _pixels(value: object, name: str) -> np.ndarray:
    """784 values or 28 rows of 28: integers 0-255 as uint8, floats in [0, 1] as float32."""
    if not isinstance(value, list):
        raise RequestProblem(400, f"{name} is not a list of pixel values", _PIXELS_FIX)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:  # ragged rows and the like
        raise RequestProblem(400, f"{name} is not a rectangular array of numbers", _PIXELS_FIX) from exc
    if array.dtype.kind not in "iuf":
        raise RequestProblem(400, f"{name} holds values that are not numbers", _PIXELS_FIX)
    if array.shape not in ((PIXELS,), (FIELD, FIELD)):
        raise RequestProblem(
            400, f"{name} has shape {list(array.shape)}, not 784 values or 28 rows of 28", _PIXELS_FIX
        )
    array = array.reshape(FIELD, FIELD)
    if array.dtype.kind in "iu":
        if array.min() < 0 or array.max() > 255:
            raise RequestProblem(400, f"{name} holds integers outside 0-255", _PIXELS_FIX)
        return array.astype(np.uint8)
    if not np.isfinite(array).all():  # never from standard JSON; json.loads is refused NaN above
        raise RequestProblem(400, f"{name} holds NaN or infinite values", _PIXELS_FIX)
    if array.min() < 0.0 or array.max() > 1.0:
        raise RequestProblem(
            400, f"{name} holds floats outside [0, 1]", "Send floats in [0, 1] or integers 0-255"
        )
    return array.astype(np.float32)


# --- multipart ----------------------------------------------------------------------------------


def _boundary(content_type: str) -> bytes:
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.strip().partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip().strip('"')
            if 0 < len(value) <= 70:
                return value.encode("latin-1", "replace")
    raise RequestProblem(
        400, "The multipart/form-data body has no valid boundary", "Let the HTTP client build the form"
    )


def _decode_multipart(body: bytes, content_type: str, max_batch: int) -> Decoded:
    """Every file part (a part with a filename, or of an image type) is an image; other fields are
    ignored. One file is a single answer, more a batch."""
    from python_multipart.multipart import MultipartParser

    parts: list[dict[str, Any]] = []
    header: dict[str, bytearray] = {"field": bytearray(), "value": bytearray()}

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header["value"] += data[start:end]

    def on_header_end() -> None:
        key = bytes(header["field"]).decode("latin-1").strip().lower()
        parts[-1]["headers"][key] = bytes(header["value"]).decode("latin-1").strip()
        header["field"], header["value"] = bytearray(), bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"] += data[start:end]

    callbacks: dict[str, Callable[..., None]] = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
    }
    try:
        parser = MultipartParser(_boundary(content_type), callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except RequestProblem:
        raise
    except Exception as exc:  # python-multipart raises its own errors (and ValueError) on bad forms
        raise RequestProblem(
            400,
            f"The multipart/form-data body is malformed ({str(exc)[:200]})",
            "Let the HTTP client build the form",
        ) from exc
    files = [p for p in parts if _is_file(p["headers"])]
    if not files:
        raise RequestProblem(
            400, "The form holds no file", "Send the image as a file field (e.g. file=@digit.png)"
        )
    if len(files) > max_batch:
        raise RequestProblem(
            413, f"The form holds {len(files)} files; the limit is {max_batch}", "Send fewer"
        )
    decoded = Decoded(batch=len(files) > 1)
    for index, part in enumerate(files):
        _add_image(decoded, bytes(part["data"]), _file_name(part["headers"], index))
    return decoded


def _disposition(headers: dict[str, str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in headers.get("content-disposition", "").split(";")[1:]:
        key, _, value = item.strip().partition("=")
        found[key.strip().lower()] = value.strip().strip('"')
    return found


def _is_file(headers: dict[str, str]) -> bool:
    return "filename" in _disposition(headers) or media_type(headers.get("content-type")).startswith(
        IMAGE_TYPES
    )


def _file_name(headers: dict[str, str], index: int) -> str:
    name = _disposition(headers).get("filename") or f"file {index + 1}"
    printable = "".join(c for c in name if c.isprintable())[:100]
    return f"File {printable!r}"
