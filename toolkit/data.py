"""MNIST, from the four original IDX files, verified by checksum before a byte is parsed.

Search order: an explicit directory (``data_dir`` or ``DIGITKIT_DATA``), the project's ``data/mnist``,
the user cache; missing files are downloaded into the cache from the public mirrors with the same
checks. The arrays are shaped like ``keras.datasets.mnist.load_data()``.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

import numpy as np

from digitkit.runtime.errors import DataError
from digitkit.runtime.hashing import sha256_file

# sha256 of the original gzip files (the same files whose MD5 sums are published with the data set).
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DEFAULT_MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
PROJECT_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"
_IDX_DTYPES = {0x08: np.uint8}
Progress = Callable[[str, int, int], None]


def user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digitkit" / "mnist"


def mirrors() -> list[str]:
    """Mirror base URLs; ``DIGITKIT_MNIST_MIRRORS`` (comma separated) overrides the defaults."""
    override = os.environ.get("DIGITKIT_MNIST_MIRRORS")
    urls = override.split(",") if override else list(DEFAULT_MIRRORS)
    return [u.strip().rstrip("/") + "/" for u in urls if u.strip()]


def _has_files(directory: Path, names) -> bool:
    return all((directory / name).is_file() for name in names)


def resolve_data_dir(data_dir: str | Path | None, names=tuple(MNIST_SHA256), download: bool = True) -> Path:
    """The directory holding ``names``, downloading into the user cache when no directory has them."""
    explicit = data_dir or os.environ.get("DIGITKIT_DATA")
    if explicit:
        directory = Path(explicit).expanduser()
        if not directory.is_dir():
            raise DataError(
                f"MNIST data directory {directory} does not exist",
                "Pass --data-dir (or DIGITKIT_DATA) a directory holding the four MNIST .gz files",
            )
        missing = [n for n in names if not (directory / n).is_file()]
        if missing:
            raise DataError(
                f"{directory} lacks {', '.join(missing)}",
                "Copy the four original MNIST .gz files there, or leave --data-dir unset to use the project's data/mnist",
            )
        return directory
    for directory in (PROJECT_DATA_DIR, user_cache_dir()):
        if _has_files(directory, names):
            return directory
    cache = user_cache_dir()
    if not download:
        raise DataError(
            "MNIST files not found in data/mnist or the user cache",
            f"Put {', '.join(names)} in {cache} or pass --data-dir",
        )
    for name in names:
        if not (cache / name).is_file():
            download_file(name, cache)
    return cache


def download_file(name: str, directory: Path, progress: Optional[Progress] = None) -> Path:
    """Fetch one file from the first mirror that answers; verify it before it takes its real name.
    ``progress(name, bytes_done, bytes_total)`` is called as it arrives (the library never prints)."""
    directory.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors():
        url = base + name
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                total = int(response.headers.get("Content-Length") or 0)
                fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
                try:
                    with os.fdopen(fd, "wb") as out:
                        _copy(response, out, total, name, progress)
                    _check_sha256(Path(tmp_name), name, label=url)
                    os.replace(tmp_name, directory / name)
                finally:
                    if os.path.exists(tmp_name):
                        os.unlink(tmp_name)
            return directory / name
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
        except DataError as exc:
            failures.append(str(exc))
    raise DataError(
        f"Could not download {name} ({'; '.join(failures)})",
        f"When offline, copy the four original MNIST .gz files into {directory} or pass --data-dir",
    )


def _copy(response: Any, out: BinaryIO, total: int, name: str, progress: Optional[Progress]) -> None:
    done = 0
    while True:
        chunk = response.read(1 << 16)
        if not chunk:
            break
        out.write(chunk)
        done += len(chunk)
        if progress is not None:
            progress(name, done, total)


def _check_sha256(path: Path, name: str, label: str | None = None) -> None:
    expected = MNIST_SHA256[name]
    actual = sha256_file(path)
    if actual != expected:
        raise DataError(
            f"{label or path} has sha256 {actual[:16]}…, expected {expected}",
            "The file is truncated or altered: replace it with the original MNIST file",
        )


def parse_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse an (uncompressed) IDX file: magic, dimensions, then the data, all sizes checked."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{source} is not an IDX file", "Use the original MNIST files")
    dtype = _IDX_DTYPES.get(raw[2])
    ndim = raw[3]
    if dtype is None or ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise DataError(f"{source} has an unsupported IDX header", "Use the original MNIST files")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = memoryview(raw)[4 + 4 * ndim :]
    expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(body) != expected:
        raise DataError(
            f"{source} holds {len(body)} bytes of data, expected {expected}", "Use the original MNIST files"
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).copy()


def read_idx_gz(path: Path) -> np.ndarray:
    _check_sha256(path, path.name)
    with gzip.open(path, "rb") as handle:
        return parse_idx(handle.read(), source=str(path))


def _load_pair(directory: Path, names) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (read_idx_gz(directory / n) for n in names)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or labels.shape != (images.shape[0],):
        raise DataError(f"{directory} holds arrays of unexpected shapes", "Use the original MNIST files")
    return images, labels


def load_mnist(data_dir: str | Path | None = None, download: bool = True):
    """``(x_train, y_train), (x_test, y_test)`` as uint8 arrays, like ``keras.datasets.mnist.load_data()``."""
    directory = resolve_data_dir(data_dir, download=download)
    return _load_pair(directory, TRAIN_FILES), _load_pair(directory, TEST_FILES)


def load_mnist_test(data_dir: str | Path | None = None, download: bool = True):
    """Only the 10,000 test images and labels: what verification needs, on a device too."""
    directory = resolve_data_dir(data_dir, names=TEST_FILES, download=download)
    return _load_pair(directory, TEST_FILES)


def data_checksums() -> dict[str, str]:
    return dict(MNIST_SHA256)
