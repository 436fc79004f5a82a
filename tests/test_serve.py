"""Issue 19: `digitkit serve`, a real server process on loopback.

The API and the page, the same answers as `digitkit predict` on the same files, bad input answered
400/413/415 (never a 500, the server still serving), a slow client that cannot block the others, a
token on /api/*, no CORS unless asked, nothing written to disk, a fuzz run of malformed requests with
steady memory, the page in a real Chromium, and the server on an emulated arm64 Pi.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

ARTIFACT = "digit_mlp_int8_pixels.tflite"  # what `digitkit predict` and `serve` pick by default
MAX_BODY = 2_000_000
BODY_TIMEOUT = 3.0
DIGITKIT = Path(sys.executable).with_name("digitkit")


class Server:
    """`digitkit serve` in a subprocess, on a free loopback port, in an empty working directory
    with an empty TMPDIR (so that anything it wrote would show)."""

    def __init__(
        self,
        model: Path | None,
        workdir: Path,
        *args: str,
        env: dict | None = None,
        model_flag: bool = True,
        argv: list[str] | None = None,
    ) -> None:
        """``argv``, when given, is the whole command line (to run without --port, or under a wrapper)."""
        self.workdir = workdir
        self.tmpdir = workdir / "tmp"
        self.tmpdir.mkdir(parents=True)
        self.stderr_path = workdir.parent / f"{workdir.name}.stderr"
        self.stderr = open(self.stderr_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            argv
            or [
                str(DIGITKIT),
                "serve",
                *(["--model", str(model)] if model_flag else []),
                "--port",
                "0",
                *args,
            ],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, "TMPDIR": str(self.tmpdir), **(env or {})},
        )
        self.line = line = self.process.stdout.readline().decode()  # the first line names the address
        assert "serving" in line, f"no address line: {line!r}\n{self.stderr_text()}"
        address = line.rsplit("http://", 1)[1].strip().rstrip("/")
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)

    def stderr_text(self) -> str:
        if not self.stderr.closed:
            self.stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, headers, parsed JSON or raw bytes) over a fresh connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            kind = response.getheader("content-type", "")
            return response.status, response, json.loads(data) if "json" in kind else data
        finally:
            connection.close()

    def post(self, body: bytes, content_type: str | None, path: str = "/api/predict", headers=None):
        merged = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
        return self.request("POST", path, body, merged)

    def rss_kb(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


@pytest.fixture(scope="module")
def model_path(export_dir) -> Path:
    return export_dir / ARTIFACT


@pytest.fixture(scope="module")
def server(model_path, tmp_path_factory):
    work = tmp_path_factory.mktemp("serve") / "cwd"
    work.mkdir()
    started = Server(
        model_path,
        work,
        "--max-body",
        str(MAX_BODY),
        "--body-timeout",
        str(BODY_TIMEOUT),
        "--max-batch",
        "64",
    )
    yield started
    alive = started.process.poll() is None
    started.stop()
    assert alive, "the server died during the tests:\n" + started.stderr_text()
    assert sorted(p.name for p in work.rglob("*")) == ["tmp"], "the server wrote files"
    assert "Traceback" not in started.stderr_text(), started.stderr_text()


@pytest.fixture(scope="module")
def sample_files(mnist_test, tmp_path_factory) -> list[Path]:
    """Files as `digitkit predict` reads them: MNIST digits as PNG, a photographed-style digit as PNG
    and JPEG, one as BMP."""
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from make_sample_digit import photograph

    folder = tmp_path_factory.mktemp("samples")
    x_test, _ = mnist_test
    files = []
    for i in range(6):
        path = folder / f"mnist-{i}.png"
        Image.fromarray(x_test[i]).save(path)
        files.append(path)
    for index in (0, 1, 2):
        photo = photograph(x_test[index], seed=index)
        files.append(folder / f"photo-{index}.png")
        photo.save(files[-1])
        files.append(folder / f"photo-{index}.jpg")
        photo.convert("RGB").save(files[-1], quality=85)
    files.append(folder / "photo-bmp.bmp")
    Image.fromarray(255 - x_test[7]).resize((90, 90)).save(files[-1])
    return files


def _type(path: Path) -> str:
    return {".png": "image/png", ".jpg": "image/jpeg", ".bmp": "image/bmp"}[path.suffix]


def _multipart(
    files: list[tuple[str, str, bytes, str]], boundary: str = "digitkit-test-boundary"
) -> tuple[bytes, str]:
    """(body, content type) of a form with (field, filename, data, type) file parts."""
    chunks = []
    for field, filename, data, kind in files:
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {kind}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    return b"".join(chunks) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- the API ------------------------------------------------------------------------------------


def test_info_healthz_and_the_page(server, model_path):
    from digitkit.runtime.hashing import sha256_file
    from digitkit.runtime.version import __version__

    status, _, info = server.request("GET", "/api/info")
    assert status == 200
    assert info["artifact"] == ARTIFACT and info["mode"] == "int8-pixels" and info["format"] == "tflite"
    assert info["sha256"] == sha256_file(model_path)
    assert info["digitkit_version"] == __version__
    assert 0.95 <= info["reference"]["test_accuracy"] <= 1.0
    assert info["input"]["tensor"]["shape"][-1] == 784 and info["input"]["tensor"]["dtype"] == "uint8"
    assert info["limits"]["max_body_bytes"] == MAX_BODY
    assert info["backend"] in ("litert", "tflite-runtime", "numpy")
    assert server.request("GET", "/healthz")[:3:2] == (200, {"status": "ok"})
    status, response, page = server.request("GET", "/")
    assert status == 200 and b'<canvas id="pad"' in page
    assert "default-src 'self'" in response.getheader("content-security-policy")
    for asset in (b"/static/app.js", b"/static/style.css", b"/static/icon.svg"):
        assert asset in page
        assert server.request("GET", asset.decode())[0] == 200
    assert b"http://" not in page and b"https://" not in page  # no CDN: an offline Pi works


def test_the_same_answers_as_digitkit_predict(server, model_path, sample_files):
    """Each file posted as a raw body, and all of them as one multipart batch, give exactly the
    digit and probabilities `digitkit predict --json` prints for them."""
    done = subprocess.run(
        [str(DIGITKIT), "predict", *map(str, sample_files), "--model", str(model_path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    expected = {Path(row["file"]).name: row for row in map(json.loads, done.stdout.splitlines())}
    assert len(expected) == len(sample_files)
    for path in sample_files:
        status, _, answer = server.post(path.read_bytes(), _type(path))
        assert status == 200, answer
        want = expected[path.name]
        assert (answer["digit"], answer["confidence"], answer["probabilities"]) == (
            want["digit"],
            want["confidence"],
            want["probabilities"],
        ), path.name
        assert set(answer["timing_us"]) == {"decode_us", "preprocess_us", "inference_us", "total_us"}
    body, kind = _multipart([("files", p.name, p.read_bytes(), _type(p)) for p in sample_files])
    status, _, batch = server.post(body, kind)
    assert status == 200, batch
    assert [a["digit"] for a in batch["predictions"]] == [expected[p.name]["digit"] for p in sample_files]
    assert [a["probabilities"] for a in batch["predictions"]] == [
        expected[p.name]["probabilities"] for p in sample_files
    ]
    body, kind = _multipart([("file", "one.png", sample_files[0].read_bytes(), "image/png")])
    status, _, one = server.post(body, kind)
    assert status == 200 and one["probabilities"] == expected[sample_files[0].name]["probabilities"]


def test_json_pixels_single_and_batch_equal_the_runtime(server, model_path, mnist_test):
    from digitkit.runtime import load

    x_test, y_test = mnist_test
    images = x_test[10:18]
    reference = load(model_path).predict_proba(images)
    rounded = [[round(float(p), 6) for p in row] for row in reference]
    status, _, single = server.post(
        json.dumps({"pixels": images[0].ravel().tolist()}).encode(), "application/json"
    )
    assert status == 200 and single["probabilities"] == rounded[0]
    status, _, rows = server.post(json.dumps(images[1].tolist()).encode(), "application/json")  # bare 28x28
    assert status == 200 and rows["probabilities"] == rounded[1]
    status, _, floats = server.post(
        json.dumps({"pixels": (images[2] / 255.0).tolist()}).encode(), "application/json"
    )
    assert status == 200 and floats["digit"] == int(np.argmax(reference[2]))
    status, _, batch = server.post(
        json.dumps({"batch": [i.tolist() for i in images]}).encode(), "application/json"
    )
    assert status == 200
    assert [a["probabilities"] for a in batch["predictions"]] == rounded
    assert sum(a["digit"] == y for a, y in zip(batch["predictions"], y_test[10:18])) >= 7
    status, _, seen = server.post(
        json.dumps({"pixels": images[0].tolist()}).encode(), "application/json", "/api/predict?image=1"
    )
    assert status == 200 and np.array_equal(np.array(seen["image"], dtype=np.uint8), images[0])


def _png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height (a decompression bomb: no pixel data to speak of)."""
    chunk = lambda kind, data: (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


BAD_REQUESTS = [
    # (what, content type, body, expected status)
    ("plain text", "text/plain", b"seven", 415),
    ("XML", "application/xml", b"<digit>7</digit>", 415),
    ("not an image", "image/png", b"this is not a PNG", 400),
    ("empty body", "image/png", b"", 400),
    ("truncated PNG", "image/png", None, 400),
    ("blank image", "image/png", None, 400),
    ("decompression bomb", "image/png", _png(50_000, 50_000), 400),
    ("bad JSON", "application/json", b'{"pixels": [1, 2,', 400),
    ("JSON without pixels", "application/json", b'{"image": []}', 400),
    ("wrong number of pixels", "application/json", json.dumps({"pixels": [0] * 783}).encode(), 400),
    ("NaN", "application/json", ('{"pixels": [NaN' + ", 0" * 783 + "]}").encode(), 400),
    ("Infinity", "application/json", ("[Infinity" + ", 0" * 783 + "]").encode(), 400),
    ("floats above 1", "application/json", json.dumps([2.5] * 784).encode(), 400),
    ("integers above 255", "application/json", json.dumps([300] * 784).encode(), 400),
    ("strings", "application/json", json.dumps(["0"] * 784).encode(), 400),
    ("ragged rows", "application/json", json.dumps([[0] * 28] * 27 + [[0] * 27]).encode(), 400),
    ("deep nesting", "application/json", b"[" * 100_000 + b"]" * 100_000, 400),
    ("batch too large", "application/json", json.dumps({"batch": [[0] * 784] * 65}).encode(), 413),
    ("empty batch", "application/json", b'{"batch": []}', 400),
    ("multipart without boundary", "multipart/form-data", b"--x\r\n\r\n--x--", 400),
    (
        "multipart without files",
        "multipart/form-data; boundary=x",
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--x--\r\n',
        400,
    ),
    ("multipart garbage", "multipart/form-data; boundary=x", b"\x00\xff" * 500, 400),
]


@pytest.mark.parametrize(("what", "kind", "body", "expected"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_input_gets_a_json_error_never_a_500(server, sample_files, what, kind, body, expected):
    if what == "truncated PNG":
        body = sample_files[0].read_bytes()[:60]
    if what == "blank image":
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("L", (64, 64), 255).save(buffer, "PNG")
        body = buffer.getvalue()
    status, _, answer = server.post(body, kind)
    assert status == expected, answer
    assert isinstance(answer, dict) and answer["error"] and answer["fix"] and answer["status"] == status
    assert "Traceback" not in json.dumps(answer)
    assert server.request("GET", "/healthz")[0] == 200


def test_wrong_method_and_unknown_path(server):
    assert server.request("GET", "/api/predict")[0] == 405
    status, _, answer = server.request("GET", "/api/nothing")
    assert status == 404 and answer["error"]
    assert server.request("GET", "/static/../pyproject.toml")[0] == 404


def _raw(server: Server, data: bytes, read_timeout: float = 10.0) -> bytes:
    """Send bytes on a fresh socket; what comes back before the server closes or the timeout."""
    with socket.create_connection((server.host, server.port), timeout=read_timeout) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                head, _, rest = received.partition(b"\r\n\r\n")
                lengths = [
                    line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
                ]
                if _ and lengths and len(rest) >= int(lengths[0].split(b":")[1]):
                    break  # a whole answer; the connection may be kept alive
        except (TimeoutError, ConnectionResetError):
            pass
    return received


def test_an_oversized_body_gets_413_before_it_is_sent(server):
    """Content-Length over the limit: the answer comes without a byte of the body sent."""
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n"
    ).encode()
    answer = _raw(server, head)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than the limit" in answer


def test_a_chunked_body_over_the_limit_gets_413(server):
    chunk = b"\0" * 65536
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(MAX_BODY // len(chunk) + 2))
    answer = _raw(server, head + body + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_slow_client_blocks_nobody_and_times_out(server, sample_files):
    """A client that sends half its body and stalls: others are answered meanwhile; it gets 408."""
    png = sample_files[0].read_bytes()
    slow = socket.create_connection((server.host, server.port), timeout=BODY_TIMEOUT + 10)
    try:
        slow.sendall(
            f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(png)}\r\n\r\n".encode()
            + png[:20]
        )
        started = time.monotonic()
        for _ in range(5):
            status, _, answer = server.post(png, "image/png")
            assert status == 200, answer
        assert time.monotonic() - started < BODY_TIMEOUT  # answered while the slow one still waits
        answer = slow.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < BODY_TIMEOUT + 5
    finally:
        slow.close()


def test_a_client_trickling_its_headers_is_cut_off(server, sample_files):
    """A byte of request head every 0.3 s (a slowloris): the connection is closed at the deadline,
    and others are answered meanwhile."""
    head = b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nX-Slow: " + b"a" * 100
    started = time.monotonic()
    with socket.create_connection((server.host, server.port), timeout=BODY_TIMEOUT + 10) as slow:
        closed = False
        for i, byte in enumerate(head):
            try:
                slow.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if i % 5 == 0:
                assert server.post(sample_files[0].read_bytes(), "image/png")[0] == 200
            time.sleep(0.3)
            if time.monotonic() - started > BODY_TIMEOUT + 5:
                break
        if not closed:
            slow.settimeout(0.5)
            try:
                closed = slow.recv(1) == b""
            except ConnectionResetError:
                closed = True
    assert closed, "the trickling client was not cut off"
    assert time.monotonic() - started < BODY_TIMEOUT + 5


def test_token_host_warning_and_no_cors(model_path, tmp_path, sample_files):
    """--host 0.0.0.0 warns; with a token (from the environment) /api/* needs it, / and /healthz do
    not; no CORS header unless --cors-origin is given."""
    work = tmp_path / "cwd"
    work.mkdir()
    guarded = Server(model_path, work, "--host", "0.0.0.0", env={"DIGITKIT_SERVE_TOKEN": "s3cret"})
    try:
        guarded.host = "127.0.0.1"
        png = sample_files[0].read_bytes()
        assert guarded.request("GET", "/api/info")[0] == 401
        status, response, answer = guarded.post(png, "image/png", headers={"Authorization": "Bearer wrong"})
        assert status == 401 and response.getheader("www-authenticate") == "Bearer" and answer["error"]
        assert guarded.post(png, "image/png", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert guarded.request("GET", "/api/info", headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert guarded.request("GET", "/")[0] == 200 and guarded.request("GET", "/healthz")[0] == 200
        status, response, _ = guarded.request(
            "GET", "/healthz", headers={"Origin": "http://elsewhere.example"}
        )
        assert response.getheader("access-control-allow-origin") is None
        status, response, _ = guarded.request(
            "OPTIONS",
            "/api/predict",
            headers={"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"},
        )
        assert status >= 400 and status < 500 and response.getheader("access-control-allow-origin") is None
    finally:
        guarded.stop()
    warning = guarded.stderr_text()
    assert "warning: listening on 0.0.0.0" in warning and "--token" not in warning


def test_cors_only_when_asked(model_path, tmp_path):
    work = tmp_path / "cwd"
    work.mkdir()
    served = Server(model_path, work, "--cors-origin", "http://pi.local:3000")
    try:
        _, response, _ = served.request("GET", "/api/info", headers={"Origin": "http://pi.local:3000"})
        assert response.getheader("access-control-allow-origin") == "http://pi.local:3000"
        _, response, _ = served.request("GET", "/api/info", headers={"Origin": "http://elsewhere.example"})
        assert response.getheader("access-control-allow-origin") is None
    finally:
        served.stop()
    assert "warning" not in served.stderr_text()


def test_a_missing_model_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(
        [str(DIGITKIT), "serve", "--model", str(tmp_path / "none.tflite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "does not exist" in done.stderr


# --- fuzzing ------------------------------------------------------------------------------------


def _fuzz_request(rng: random.Random, seeds: list[bytes]) -> tuple[str, bytes | None, dict, bytes | None]:
    """One malformed or random request: (path, body, headers, raw bytes to send instead)."""
    kind = rng.randrange(9)
    types = [
        "image/png",
        "image/jpeg",
        "application/json",
        "application/octet-stream",
        "text/plain",
        "multipart/form-data; boundary=b",
        "multipart/form-data",
        "",
        "image/",
        "application/x-www-form-urlencoded",
        "application/json; charset=utf-16",
        "image/png; q=\x01",
    ]
    headers = {"Content-Type": rng.choice(types)}
    if kind == 0:  # random bytes
        return "/api/predict", rng.randbytes(rng.choice([0, 1, 7, 100, 5000, 70000])), headers, None
    if kind == 1:  # a real image with bytes flipped, cut or appended
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[: rng.randrange(1, len(data) + 1)] if rng.random() < 0.5 else data
        return (
            "/api/predict",
            bytes(data),
            {"Content-Type": rng.choice(["image/png", "image/jpeg", ""])},
            None,
        )
    if kind == 2:  # random JSON shapes and values
        value = rng.choice(
            [
                None,
                True,
                "x" * rng.randrange(50),
                rng.random(),
                -1,
                2**70,
                [
                    rng.choice([0, 255, 256, -1, 0.5, 1.5, "a", None, [], {}])
                    for _ in range(rng.choice([0, 1, 28, 783, 784, 785]))
                ],
                {
                    "pixels": [
                        [rng.randrange(300) for _ in range(28)] for _ in range(rng.choice([27, 28, 29]))
                    ]
                },
                {"batch": [[0] * rng.choice([783, 784])] * rng.randrange(0, 70)},
                {"batch": "nope"},
                {"pixels": {"a": 1}},
            ]
        )
        return "/api/predict", json.dumps(value).encode(), {"Content-Type": "application/json"}, None
    if kind == 3:  # multipart with broken boundaries and parts
        boundary = rng.choice(["b", "x" * 71, "", "a b", "\u00e9"])
        body = f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="{rng.choice(["a.png", "", chr(0)])}"\r\n\r\n'.encode()
        body += rng.choice(seeds)[: rng.randrange(1, 400)] + rng.choice(
            [b"\r\n--b--\r\n", b"", b"--", b"\r\n--b\r\n"]
        )
        return (
            "/api/predict",
            body,
            {"Content-Type": f"multipart/form-data; boundary={boundary}".encode().decode("latin-1")},
            None,
        )
    if kind == 4:  # lying or strange headers
        body = rng.choice(seeds)
        # (a length longer than the body is the slow client's test: each one costs the body timeout)
        length = rng.choice(["-1", "abc", "1e3", " 12", str(len(body) - 5), "99999999999999999999", "0"])
        raw = (
            f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {length}\r\n\r\n"
        ).encode() + body
        return "/api/predict", None, {}, raw
    if kind == 5:  # garbage request lines and header blocks
        raw = rng.choice(
            [
                b"GARBAGE\r\n\r\n",
                b"POST /api/predict HTTP/9.9\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                b"POST /api/predict HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n",
                b"POST /%00%ff/../api HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"H: v\r\n" * 500 + b"\r\n",
                b"POST /api/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            ]
        )
        return "/", None, {}, raw
    if kind == 6:  # odd paths, methods and query strings
        path = rng.choice(
            [
                "/api/predict?image=%ff",
                "/api/predict?image=1&image=2",
                "/api/info?x=" + "y" * 3000,
                "/static/",
                "/static/app.js%00",
                "/api/",
                "/%2e%2e/etc/passwd",
                "/healthz?",
            ]
        )
        return path, rng.randbytes(rng.randrange(0, 100)), headers, None
    if kind == 7:  # the right content, the wrong declared type (or none)
        return "/api/predict", rng.choice(seeds), {"Content-Type": rng.choice(types)}, None
    return (
        "/api/predict",
        json.dumps({"pixels": [rng.uniform(-1, 2) for _ in range(784)]}).encode(),
        {"Content-Type": "application/json"},
        None,
    )


def _status_of(raw: bytes) -> int | None:
    if raw.startswith(b"HTTP/1."):
        return int(raw[9:12])
    return None  # the server closed the connection: allowed for garbage


def test_fuzz_a_thousand_malformed_requests(server, sample_files, figures):
    rng = random.Random(19)
    seeds = [p.read_bytes() for p in sample_files if p.suffix in (".png", ".jpg")][:4]
    statuses: dict[int | None, int] = {}

    def one() -> None:
        path, body, headers, raw = _fuzz_request(rng, seeds)
        if raw is not None:
            status = _status_of(_raw(server, raw, read_timeout=5))
        else:
            method = rng.choice(["POST"] * 8 + ["GET", "PUT", "DELETE"])
            status = server.request(method, path, body, headers)[0]
        statuses[status] = statuses.get(status, 0) + 1

    for _ in range(200):  # warm up: caches, thread pool, allocator arenas
        one()
    before = server.rss_kb()
    for _ in range(1000):
        one()
    after = server.rss_kb()
    assert server.request("GET", "/healthz")[0] == 200
    status, _, answer = server.post(seeds[0], "image/png")
    assert status == 200 and answer["digit"] in range(10)
    figures.append(
        f"serve fuzz: 1,200 requests, statuses {dict(sorted(statuses.items(), key=lambda kv: str(kv[0])))}; "
        f"server RSS {before / 1024:.1f} MB after the first 200, {after / 1024:.1f} MB after 1,000 more"
    )
    assert not [s for s in statuses if s is not None and s >= 500], statuses
    assert after - before < 8 * 1024, f"RSS grew from {before} kB to {after} kB"


# --- the page in a real browser -----------------------------------------------------------------


def test_the_page_in_chromium_draws_uploads_and_logs_no_error(
    server, sample_files, mnist_test, tmp_path, figures
):
    import browser
    from PIL import Image

    reason = browser.unavailable()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url = f"http://{server.host}:{server.port}/"
    with browser.chromium(width=1100, height=820) as driver:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: ARTIFACT in d.find_element(By.ID, "model").text)
        pad = driver.find_element(By.ID, "pad")
        size = pad.size["width"]
        # A 7: a bar across the top, then a stroke down to the lower left (offsets from the centre).
        at = lambda fx, fy: (int((fx - 0.5) * size), int((fy - 0.5) * size))
        points = [
            at(0.25, 0.22),
            at(0.5, 0.22),
            at(0.75, 0.22),
            at(0.62, 0.45),
            at(0.5, 0.65),
            at(0.42, 0.82),
        ]
        actions = ActionChains(driver)
        actions.move_to_element_with_offset(pad, *points[0]).click_and_hold()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for step in range(1, 5):
                actions.move_to_element_with_offset(
                    pad, x0 + (x1 - x0) * step // 4, y0 + (y1 - y0) * step // 4
                )
        actions.release().perform()
        wait.until(
            lambda d: (
                d.find_element(By.ID, "digit").text == "7"
                and "server" in d.find_element(By.ID, "timing").text
            )
        )
        bars = driver.find_elements(By.CSS_SELECTOR, "#bars li")
        assert len(bars) == 10 and "top" in bars[7].get_attribute("class")
        lit = driver.execute_script(
            "const d = document.getElementById('seen').getContext('2d').getImageData(0, 0, 28, 28).data;"
            "let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) n++; return n;"
        )
        assert 20 < lit < 400, lit  # the 28x28 the model saw: a white digit on black
        confidence = driver.find_element(By.ID, "confidence").text
        shot = browser.screenshot(driver, tmp_path / "serve.png", full_page=False)
        figures.append(f"serve page: a drawn 7 read as 7 ({confidence}); screenshot {shot}")

        upload = driver.find_element(By.ID, "file")
        photo = next(p for p in sample_files if p.name == "photo-1.jpg")  # MNIST test image 1: a 2
        upload.send_keys(str(photo))
        wait.until(lambda d: d.find_element(By.ID, "digit").text == "2")
        # A phone photo over the server's --max-body: the page shrinks it before sending.
        big = tmp_path / "phone.jpg"
        paper = np.random.default_rng(0).normal(215, 18, size=(2400, 3200)).clip(0, 255).astype(np.uint8)
        ink = np.asarray(Image.fromarray(255 - mnist_test[0][0]).resize((1500, 1500), Image.LANCZOS))
        paper[450:1950, 850:2350] = np.minimum(paper[450:1950, 850:2350], ink)
        Image.fromarray(paper).save(big, quality=95)
        assert big.stat().st_size > MAX_BODY
        upload.send_keys(str(big))
        wait.until(lambda d: d.find_element(By.ID, "digit").text == "7")
        driver.find_element(By.ID, "clear").click()
        assert driver.find_element(By.ID, "digit").text == "–"
        assert browser.console_errors(driver) == []

    with browser.chromium(width=390, height=844, mobile=True) as phone:  # a phone's screen
        phone.get(url)
        WebDriverWait(phone, 60).until(lambda d: ARTIFACT in d.find_element(By.ID, "model").text)
        overflow = phone.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a phone's screen"
        assert phone.find_element(By.ID, "pad").size["width"] <= 390
        assert browser.console_errors(phone) == []


# --- on an emulated Raspberry Pi (arm64, Debian bookworm, Python 3.11) ---------------------------

DEVICE_EXTRAS = "serve,images,cli"  # no LiteRT: the numpy backend runs the int8 TFLite there
DEVICE_SCRIPT = """
import json, platform, subprocess, sys, urllib.request
server = subprocess.Popen([sys.argv[1], "serve", "--bundle", "/work/bundle", "--port", "0"],
                          stdout=subprocess.PIPE, stderr=open("/work/out/serve.err", "wb"))
try:
    line = server.stdout.readline().decode()
    url = line.rsplit(" at ", 1)[1].strip()
    post = urllib.request.Request(url + "api/predict", data=open("/work/sample.png", "rb").read(),
                                  headers={"Content-Type": "image/png"})
    answer = json.load(urllib.request.urlopen(post, timeout=300))
    info = json.load(urllib.request.urlopen(url + "api/info", timeout=60))
finally:
    server.terminate()
    server.wait(60)
print(json.dumps({"line": line, "answer": answer, "info": info, "machine": platform.machine(),
                  "python": platform.python_version(), "exit": server.returncode}))
"""


@pytest.fixture(scope="module")
def bundle_dir(export_dir, tmp_path_factory) -> Path:
    """`digitkit bundle --mode int8-pixels`: the artifact, its manifest, the parity set, the wheel."""
    from typer.testing import CliRunner

    from digitkit.toolkit.cli import app

    out = tmp_path_factory.mktemp("serve-bundle") / "work" / "bundle"
    made = CliRunner().invoke(app, ["bundle", str(export_dir), "--out", str(out), "--mode", "int8-pixels"])
    assert made.exit_code == 0, made.output
    return out


def test_serve_a_bundle_directory_not_an_archive(bundle_dir, model_path):
    """--bundle DIR serves its int8-pixels TFLite (checked against the bundle's hashes); an archive
    would have to be unpacked to disk, so it is refused in one line, as are --model with --bundle."""
    server = Server(
        model_path, bundle_dir.parent / "cwd-bundle", "--bundle", str(bundle_dir), model_flag=False
    )
    try:
        status, _, info = server.request("GET", "/api/info")
        assert status == 200 and info["artifact"] == ARTIFACT and info["reference"]["test_accuracy"] >= 0.95
    finally:
        server.stop()
    for args, message in (
        (["--bundle", str(bundle_dir) + ".tar.gz"], "is not a directory"),
        (["--bundle", str(bundle_dir), "--model", str(model_path)], "not both"),
    ):
        done = subprocess.run([str(DIGITKIT), "serve", *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr


@pytest.mark.slow
@pytest.mark.emulation
def test_the_server_answers_on_an_emulated_arm64_pi(bundle_dir, model_path, sample_files, figures):
    """The bundle's wheel installed with `pip install "digitkit[serve,images,cli]"` and aarch64 wheels
    (the web stack is pure Python), then `digitkit serve --bundle` starts there and answers a POST with
    the host's numpy backend's answer."""
    from emulation import aarch64 as emu
    from helpers import wheel_requirements

    from digitkit.runtime import load
    from digitkit.runtime.images import load_image

    reason = emu.emulation_unavailable_reason()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    work = bundle_dir.parent
    (work / "out").mkdir(exist_ok=True)
    photo = next(p for p in sample_files if p.name == "photo-0.png")
    (work / "sample.png").write_bytes(photo.read_bytes())
    (work / "device.py").write_text(DEVICE_SCRIPT)
    wheel = next(bundle_dir.glob("digitkit-*.whl"))
    emu.ensure_host_tools()
    cache = emu.default_cache_dir()
    root = emu.ensure_rootfs(cache, root=work.parent / "root")  # its own copy: others may use the cache's
    wheels = emu.download_wheels(
        wheel_requirements(wheel, DEVICE_EXTRAS, with_base=True), cache / "wheels-cp311-aarch64"
    )
    python = emu.prepare_venv(root, [*wheels, wheel], [f"digitkit[{DEVICE_EXTRAS}]"])
    try:
        done = emu.run_in_root(
            root,
            [python, "/work/device.py", str(Path(python).with_name("digitkit"))],
            timeout=900,
            binds={work: "/work"},
        )
    finally:
        assert emu.mounts_under(root) == [], "mounts left behind under the root file system"
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{(work / 'out' / 'serve.err').read_text()}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    host = load(model_path, backend="numpy").predict_proba(load_image(photo)[None])[0]
    assert result["machine"] == "aarch64" and result["info"]["backend"] == "numpy"
    assert result["info"]["artifact"] == ARTIFACT
    assert result["answer"]["probabilities"] == [round(float(p), 6) for p in host]
    assert result["answer"]["digit"] == 7
    figures.append(
        f"serve on emulated arm64 (Python {result['python']}, {time.monotonic() - started:.0f} s in all): "
        f"{result['line'].strip()}; POST answered digit {result['answer']['digit']}, equal to the host's numpy "
        f"backend; timing there (qemu's, not a Pi's) {result['answer']['timing_us']}"
    )
