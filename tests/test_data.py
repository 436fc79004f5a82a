"""The MNIST loader: real files, real checksums, and every way they can go wrong."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from digitkit.runtime.errors import DataError
from digitkit.toolkit import data

# From shared/mnist/README.md: digests of the parsed arrays and the label counts.
ARRAY_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_arrays_match_keras_layout_and_published_digests(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for name, array in arrays.items():
        assert hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest() == ARRAY_SHA256[name], name
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS


def copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "mnist"
    target.mkdir()
    for name in data.MNIST_SHA256:
        shutil.copy(data.PROJECT_DATA_DIR / name, target / name)
    return target


def test_altered_file_is_refused_with_the_expected_checksum(tmp_path):
    directory = copy_data(tmp_path)
    path = directory / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as info:
        data.load_mnist_test(directory)
    message = str(info.value)
    assert (
        "t10k-labels-idx1-ubyte.gz" in message and data.MNIST_SHA256["t10k-labels-idx1-ubyte.gz"] in message
    )


def test_truncated_file_is_refused(tmp_path):
    directory = copy_data(tmp_path)
    path = directory / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        data.load_mnist_test(directory)


def test_missing_directory_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load_mnist(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="lacks"):
        data.load_mnist(tmp_path / "empty")


def test_environment_variable_names_the_directory(tmp_path, monkeypatch):
    directory = copy_data(tmp_path)
    monkeypatch.setenv("DIGITKIT_DATA", str(directory))
    assert data.resolve_data_dir(None) == directory


def test_idx_parser_rejects_wrong_sizes():
    header = bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big")
    assert data.parse_idx(header + bytes(5)).tolist() == [0] * 5
    with pytest.raises(DataError, match="expected 5"):
        data.parse_idx(header + bytes(4))
    with pytest.raises(DataError, match="not an IDX"):
        data.parse_idx(b"PK\x03\x04junk")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def local_mirror(tmp_path):
    """A real HTTP mirror on 127.0.0.1 serving a copy of the files."""
    root = copy_data(tmp_path)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture
def no_local_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "PROJECT_DATA_DIR", tmp_path / "no-project-data")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DIGITKIT_DATA", raising=False)
    return tmp_path / "cache" / "digitkit" / "mnist"


def test_download_into_cache_with_checks(local_mirror, no_local_copy, monkeypatch):
    _, url = local_mirror
    monkeypatch.setenv("DIGITKIT_MNIST_MIRRORS", url)
    x_test, y_test = data.load_mnist_test()
    assert x_test.shape == (10000, 28, 28) and np.bincount(y_test).tolist() == TEST_COUNTS
    assert sorted(p.name for p in no_local_copy.iterdir()) == sorted(data.TEST_FILES)


def test_download_of_an_altered_file_is_refused_and_not_kept(local_mirror, no_local_copy, monkeypatch):
    root, url = local_mirror
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(b"not mnist")
    monkeypatch.setenv("DIGITKIT_MNIST_MIRRORS", url)
    with pytest.raises(DataError, match="expected"):
        data.load_mnist_test()
    assert not (no_local_copy / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(no_local_copy.glob(".*part"))


def test_offline_gives_one_line_saying_where_to_put_the_files(no_local_copy, monkeypatch):
    monkeypatch.setenv("DIGITKIT_MNIST_MIRRORS", "http://127.0.0.1:9/")  # the discard port: nothing listens
    with pytest.raises(DataError) as info:
        data.load_mnist_test()
    message = info.value.one_line()
    assert "\n" not in message and str(no_local_copy) in message and "--data-dir" in message
