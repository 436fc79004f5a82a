"""Image files in, 28x28 MNIST-form digits out.

The model only knows MNIST, so a photo of a digit must be made to look like MNIST before it is
classified: a white digit on black, its ink scaled into a 20x20 box and placed in a 28x28 field with
its centre of mass at the centre, which is how LeCun et al. made MNIST from the NIST scans.

Only the standard library and numpy are imported here; Pillow is imported when a file is read, so
a device that never reads image files does not need it. Every failure is an ``ImageError`` naming
the file: a CLI prints one line per bad file and carries on with the good ones.
"""

from __future__ import annotations

import io
import os
import threading
import warnings
from pathlib import Path
from typing import IO, Any, Iterable, List, Optional, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike

from .errors import BackendUnavailableError, ImageError

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".pbm", ".pnm", ".gif", ".tif", ".tiff", ".webp"}
)
# Refused before decoding: a tiny file can claim billions of pixels and exhaust a device's memory.
MAX_PIXELS = 40_000_000
# JPEGs decode reduced (Pillow's draft mode: 1/2, 1/4 or 1/8 of each side, in the decoder itself),
# so a phone photo of up to 200 megapixels costs at most a few megapixels of memory.
MAX_JPEG_PIXELS = 200_000_000
_PILLOW_LIMIT = threading.Lock()  # Pillow's bomb limit is a module global: changed under this lock

FIELD = 28  # MNIST's field ...
BOX = 20  # ... and the box its digits were scaled into.
# Larger images are box-averaged down to this side first: a phone photo holds far more pixels than
# a 20-pixel digit needs, and a device has little memory to spare for float copies of them.
WORK_SIDE = 1024
# Ink is what lies above this fraction of the darkest stroke; fainter pixels are paper texture.
INK_FRACTION = 0.2
# Below this contrast (on 0-255, after the paper is removed) an image holds no digit.
MIN_CONTRAST = 24.0

PathLike = Union[str, "os.PathLike[str]"]
_FIX_IMAGE = "Pass a PNG, JPEG, BMP, GIF, TIFF, WebP or PNM image of one digit"


def _pillow() -> tuple[Any, Any]:
    """Pillow's modules, imported on first use so the runtime itself needs only numpy."""
    try:
        from PIL import Image, ImageOps
    except ImportError as exc:
        raise BackendUnavailableError(
            "Reading image files needs Pillow", "pip install 'digitkit[images]'"
        ) from exc
    return Image, ImageOps


def expand_image_paths(paths: Union[PathLike, Iterable[PathLike]]) -> List[Path]:
    """Files as given, directories replaced by the image files beneath them (recursive, sorted).

    A file is kept whatever its suffix, so a misnamed image still loads and a non-image gets a
    clear error from ``load_image``; in directories only image suffixes count, so stray notes and
    manifests are skipped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: List[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
            if not images:
                raise ImageError(
                    f"{path} contains no image files", f"Put {', '.join(sorted(IMAGE_SUFFIXES))} files in it"
                )
            found.extend(images)
        elif path.exists():
            found.append(path)
        else:
            raise ImageError(f"{path} does not exist", "Pass image files or directories of them")
    return found


ImageSource = Union[PathLike, bytes, bytearray, memoryview, IO[bytes]]


def load_image(source: ImageSource) -> np.ndarray:
    """The digit in an image, uint8 (28, 28), white on black as in MNIST: a file's path, its bytes,
    or a binary file object (``open(..., "rb")``, ``io.BytesIO``, ``sys.stdin.buffer``)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _to_mnist(_read_gray(io.BytesIO(bytes(source)), "<bytes>"), "<bytes>")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return _to_mnist(_read_gray(path, str(path)), str(path))
    name = str(getattr(source, "name", "<stream>"))
    return _to_mnist(_read_gray(source, name), name)


def image_to_mnist(image: Any) -> np.ndarray:
    """A PIL image of a digit as uint8 (28, 28) MNIST form (what ``predict`` does with a PIL image)."""
    _, ImageOps = _pillow()
    image = ImageOps.exif_transpose(image)
    return _to_mnist(_shrink(_gray_array(image)), "The PIL image")


def load_images(
    paths: Union[PathLike, Iterable[PathLike]],
) -> List[Tuple[Path, Union[np.ndarray, ImageError]]]:
    """Each file's digit, or the ImageError that explains why it has none; never raises per file.

    Directories are expanded as by ``expand_image_paths``; a missing path yields its error in
    place. Only a missing Pillow raises, since no file can be read without it.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    _pillow()
    results: List[Tuple[Path, Union[np.ndarray, ImageError]]] = []
    for raw in paths:
        try:
            files = expand_image_paths([raw])
        except ImageError as exc:
            results.append((Path(raw), exc))
            continue
        for file in files:
            try:
                results.append((file, load_image(file)))
            except ImageError as exc:
                results.append((file, exc))
    return results


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """A 2-D grayscale array (uint8 0-255, or floats in [0, 1]) as a uint8 28x28 MNIST digit.

    An array that is already 28x28 white-on-black is returned unchanged, so MNIST itself passes
    through bit for bit.
    """
    return _to_mnist(gray, "The image")


# --- reading -------------------------------------------------------------------------------------


def read_gray_bytes(data: bytes, name: str = "The image") -> np.ndarray:
    """An image file's bytes (an upload, a request body) as ``load_image`` reads them, before the
    MNIST transform: a 2-D uint8 or float64 0-255 grayscale array. Nothing touches the disk.
    ``to_mnist`` on the result gives what ``load_image`` gives for a file holding these bytes."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)", "Send the image's bytes")
    return _read_gray(io.BytesIO(data), name)


def _open(Image: Any, source: Union[Path, IO[bytes]]) -> Any:
    """``Image.open`` with Pillow's bomb limit raised to ours for the call and its warning silenced;
    our own limits (by format, below) are checked on the size the header claims, before decoding."""
    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_JPEG_PIXELS
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _read_gray(source: Union[Path, IO[bytes]], path: Union[Path, str]) -> np.ndarray:
    """The image's first frame, upright, as a 2-D uint8 or float64 0-255 grayscale array."""
    Image, ImageOps = _pillow()
    if isinstance(source, Path):
        if not source.exists():
            raise ImageError(f"{path} does not exist", "Pass image files or directories of them")
        if source.is_dir():
            raise ImageError(f"{path} is a directory, not an image", "Pass the image files in it")
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise ImageError(
                f"{path} cannot be read ({exc.strerror})", "Check the file's permissions"
            ) from exc
        if size == 0:
            raise ImageError(f"{path} is empty (0 bytes)", "Copy the image again; the file holds no data")
    bomb = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        img = _open(Image, source)
    except bomb as exc:
        raise _too_large(path, None, MAX_JPEG_PIXELS) from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageError(f"{path} is not an image Pillow can read", _FIX_IMAGE) from exc
    except OSError as exc:
        if exc.errno is not None:  # the file system's refusal, not the image's content
            raise ImageError(
                f"{path} cannot be read ({exc.strerror})", "Check the file's permissions"
            ) from exc
        raise ImageError(
            f"{path} is truncated or corrupt ({exc})", "Copy the image again or re-save it"
        ) from exc
    except Exception as exc:  # a malformed header can raise nearly anything inside a plugin
        raise ImageError(f"{path} is corrupt ({type(exc).__name__}: {exc})", _FIX_IMAGE) from exc
    with img:
        width, height = img.size
        limit = MAX_JPEG_PIXELS if img.format == "JPEG" else MAX_PIXELS
        if width * height > limit:
            raise _too_large(path, (width, height), limit)
        if width <= 0 or height <= 0:
            raise ImageError(f"{path} has no pixels ({width}x{height})", _FIX_IMAGE)
        factor = -(-max(width, height) // WORK_SIDE)
        try:
            img.seek(0)  # animations: the first frame
            if factor > 1 and img.format == "JPEG":  # let the decoder skip detail we would discard
                img.draft(img.mode, (-(-width // factor), -(-height // factor)))
            img.load()
            img = ImageOps.exif_transpose(img)
            return _shrink(_gray_array(img))
        except bomb as exc:
            raise _too_large(path, (width, height), limit) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(
                f"{path} is truncated or corrupt ({exc})", "Copy the image again or re-save it"
            ) from exc
        except Exception as exc:  # Pillow decoders raise struct.error, IndexError, ... on bad data
            raise ImageError(f"{path} is corrupt ({type(exc).__name__}: {exc})", "Re-save the image") from exc


def _too_large(path: Union[Path, str], size: Optional[tuple[int, int]], limit: int) -> ImageError:
    claimed = f" ({size[0]}x{size[1]} pixels)" if size else ""
    return ImageError(
        f"{path} is too large to read{claimed}; the limit is {limit:,} pixels",
        "Crop or shrink the image to the digit",
    )


def _shrink(gray: np.ndarray) -> np.ndarray:
    """Box-average so the longer side is at most WORK_SIDE; ink mass, hence thin strokes, survive."""
    factor = -(-max(gray.shape) // WORK_SIDE)
    if factor <= 1:
        return gray
    height, width = (gray.shape[0] // factor) * factor, (gray.shape[1] // factor) * factor
    if height == 0 or width == 0:  # a sliver thinner than the factor: keep it whole
        return gray
    blocks = gray[:height, :width].reshape(height // factor, factor, width // factor, factor)
    shrunk: np.ndarray = blocks.mean(axis=(1, 3), dtype=np.float32).astype(np.float64)
    return shrunk


def _gray_array(img: Any) -> np.ndarray:
    """8-bit grayscale in the image's own polarity; high-depth modes scaled by their maximum."""
    mode = img.mode
    if mode == "L":
        return np.asarray(img)
    if mode.startswith("I") or mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if mode == "F" and values.size and np.nanmin(values) >= 0.0 and np.nanmax(values) <= 1.0:
            return values * 255.0  # float images in [0, 1]
        values = np.nan_to_num(np.clip(values, 0.0, None))
        peak = values.max() if values.size else 0.0
        return values * (255.0 / peak) if peak > 0 else values
    if mode == "1":
        return np.asarray(img.convert("L"))
    if "A" in mode or "a" in mode or "transparency" in img.info:
        return _composite(np.asarray(img.convert("RGBA"), dtype=np.float64))
    try:
        return np.asarray(img.convert("L"))
    except ValueError:  # modes such as LAB and HSV convert to L only by way of RGB
        return np.asarray(img.convert("RGB").convert("L"))


def _composite(rgba: np.ndarray) -> np.ndarray:
    """Flatten transparency onto the background that contrasts with the ink.

    A transparent PNG of a dark digit goes onto white and one of a light digit onto black, so the
    transparent area never reads as ink whatever colour its hidden pixels hold.
    """
    luma = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
    alpha = rgba[..., 3] / 255.0
    weight = alpha.sum()
    ink = (alpha * luma).sum() / weight if weight > 0 else 0.0
    background = 255.0 if ink < 128.0 else 0.0
    flat: np.ndarray = alpha * luma + (1.0 - alpha) * background
    return flat


# --- the MNIST transform -------------------------------------------------------------------------


def _as_levels(gray: ArrayLike) -> np.ndarray:
    """Validate and return grayscale as float64 on 0-255."""
    array = np.asarray(gray)
    if array.ndim != 2 or array.size == 0:
        raise ImageError(
            f"A grayscale image must be a non-empty 2-D array, not shape {array.shape}",
            "Convert the image to grayscale first",
        )
    if array.dtype == np.uint8:
        return array.astype(np.float64)
    if array.dtype.kind not in "fiub":
        raise ImageError(
            f"Images of dtype {array.dtype} are not supported", "Pass uint8 pixels or floats in [0, 1]"
        )
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ImageError("The image contains NaN or infinite pixels", "Replace them before converting")
    low, high = values.min(), values.max()
    if array.dtype.kind == "f" and low >= 0.0 and high <= 1.0:
        return values * 255.0
    if low < 0.0 or high > 255.0:  # 16-bit and other wide ranges: stretch to 8 bits
        values = values - min(low, 0.0)
        span = values.max()
        stretched: np.ndarray = values * (255.0 / span) if span > 0 else values
        return stretched
    return values


def _ring(values: np.ndarray) -> np.ndarray:
    """The outer ring of pixels, where the paper (not the digit) usually is."""
    if min(values.shape) <= 2:
        return values.ravel()
    return np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])


def _to_mnist(gray: ArrayLike, name: str) -> np.ndarray:
    original = gray
    values = _as_levels(gray)
    ring = _ring(values)
    background = float(np.median(ring))
    inverted = background > 127.0
    if inverted:  # dark ink on light paper: MNIST is light ink on black
        values = 255.0 - values
        ring = 255.0 - ring
        background = 255.0 - background
    # The paper's level plus its noise (a robust 3 sigma from the ring) is not ink.
    spread = 1.4826 * float(np.median(np.abs(ring - background)))
    ink = np.clip(values - (background + 3.0 * spread), 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ImageError(
            f"{name} contains no digit (blank image)",
            "Pass an image with one dark digit on light paper, or a light one on dark",
        )
    if values.shape == (FIELD, FIELD):
        if not inverted and isinstance(original, np.ndarray) and original.dtype == np.uint8:
            return original.copy()  # already MNIST form: bit for bit
        if not inverted:
            return _to_uint8(values)
        return _to_uint8(ink * (255.0 / peak))
    return _normalise(ink / peak)


def _normalise(ink: np.ndarray) -> np.ndarray:
    """Crop to the ink, fit its longer side to 20 pixels, centre its mass in 28x28 (ink in [0, 1])."""
    Image, _ = _pillow()
    rows = np.flatnonzero((ink > INK_FRACTION).any(axis=1))
    cols = np.flatnonzero((ink > INK_FRACTION).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    digit = np.asarray(
        Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS), dtype=np.float64
    )
    digit = np.clip(digit, 0.0, None)
    top_level = digit.max()
    if top_level <= 0:
        digit = np.ones_like(digit)
    else:
        digit = np.clip(digit / top_level, 0.0, 1.0)  # thin strokes lose peak when shrunk: restore it
    mass = digit.sum()
    cy = (digit.sum(axis=1) @ np.arange(digit.shape[0])) / mass
    cx = (digit.sum(axis=0) @ np.arange(digit.shape[1])) / mass
    top = int(np.clip(round(FIELD / 2 - cy), 0, FIELD - digit.shape[0]))
    left = int(np.clip(round(FIELD / 2 - cx), 0, FIELD - digit.shape[1]))
    field = np.zeros((FIELD, FIELD), dtype=np.float64)
    field[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return _to_uint8(field * 255.0)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    pixels: np.ndarray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return pixels
