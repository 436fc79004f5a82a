"""The README's claims about `digitkit serve` that tests/test_serve.py leaves open (issue 20).

The defaults (port 8000, an 8 MB body limit, a 10 s body timeout) on a server started without
those options; /api/info's preprocessing; keep-alive, the access log, a graceful stop on SIGTERM
with a request in flight, on a file system mounted read-only; the connection limit; the page asking
for the token once and drawing with a finger in Chromium; the systemd unit; the pure-Python web
stack. Servers, helpers and fixtures are test_serve.py's.
"""

from __future__ import annotations

import configparser
import http.client
import io
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import test_serve
from test_serve import ARTIFACT, DIGITKIT, Server, _raw

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "examples" / "systemd" / "digitkit-serve.service"
EIGHT_MB = 8 * 1024 * 1024

model_path = test_serve.model_path  # test_serve's fixtures: the served artifact, the sample files
sample_files = test_serve.sample_files


def launched(argv: list[str], workdir: Path, env: dict | None = None) -> Server:
    """A `digitkit serve` started from a whole command line: to run it without --port, or under `unshare`."""
    return Server(None, workdir, env=env, argv=argv)


def _serve_command():
    """The click command behind `digitkit serve`, as the CLI builds it."""
    import typer

    from digitkit.toolkit.cli import app

    group = typer.main.get_command(app)
    return group.get_command(None, "serve")


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- the defaults ---------------------------------------------------------------------------------


def test_the_defaults_port_8000_an_8_mb_body_and_a_10_s_body_timeout(model_path, tmp_path, figures):
    """Started without --port, --max-body or --body-timeout: it listens on 127.0.0.1:8000 (when
    8000 is taken here, the CLI's own default is checked instead and the server takes a free port),
    /api/info reports 8 MB and 10 s with the manifest's preprocessing, a body of exactly 8 MB is not
    refused for its size and one byte more is (by Content-Length, or chunked)."""
    defaults = {p.name: p.default for p in _serve_command().params}
    assert defaults["port"] == 8000 and defaults["host"] == "127.0.0.1"
    assert defaults["max_body"] == EIGHT_MB and defaults["body_timeout"] == 10.0
    assert defaults["max_connections"] == 256
    work = tmp_path / "cwd"
    work.mkdir()
    free = _port_free(8000)
    argv = [str(DIGITKIT), "serve", "--model", str(model_path), *([] if free else ["--port", "0"])]
    server = launched(argv, work)
    try:
        if free:
            assert server.line.strip().endswith("at http://127.0.0.1:8000/"), server.line
        status, _, info = server.request("GET", "/api/info")
        assert status == 200
        assert info["limits"]["max_body_bytes"] == EIGHT_MB and info["limits"]["body_timeout_s"] == 10.0
        manifest = json.loads((model_path.parent / "manifest.json").read_text())
        assert info["input"]["preprocessing"] == manifest["preprocessing"]
        assert "28x28" in info["input"]["preprocessing"]["image"]

        head = (
            "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n"
        )
        over = _raw(server, head.format(EIGHT_MB + 1).encode())
        assert over.startswith(b"HTTP/1.1 413"), over[:200]
        status, _, answer = server.post(b"\0" * EIGHT_MB, "image/png")
        assert status == 400 and "not" in answer["error"].lower(), answer  # read in full: not an image
        chunk = b"\0" * (1024 * 1024)
        chunked = (
            b"".join(b"%x\r\n" % len(chunk) + chunk + b"\r\n" for _ in range(8)) + b"1\r\n\0\r\n0\r\n\r\n"
        )
        over = _raw(
            server,
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked,
        )
        assert over.startswith(b"HTTP/1.1 413"), over[:200]
    finally:
        server.stop()
    figures.append(
        "serve defaults: "
        + (
            "started without --port, it listened on 127.0.0.1:8000"
            if free
            else "port 8000 was taken: the CLI's default port (8000) checked, served on a free port"
        )
        + f"; /api/info limits {info['limits']}"
    )


# --- a read-only file system: keep-alive, the access log, a graceful stop -------------------------


def _read_only_wrapper() -> list[str]:
    """A command prefix that runs what follows in its own mount namespace where every file system
    (all but /proc and /sys) is remounted read-only; skips the test when this machine refuses."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare (util-linux) here")
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if not (point in ("/proc", "/sys") or point.startswith(("/proc/", "/sys/"))):
            points.append(point)
    script = "set -e; " + "".join(f"mount -o remount,bind,ro {shlex.quote(p)}; " for p in points)
    namespace = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        namespace[1:1] = ["--user", "--map-root-user"]
    probe = subprocess.run(
        [*namespace, "sh", "-c", script + "exec true"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot remount read-only here: {probe.stderr.strip()[:200]}")
    return [*namespace, "sh", "-c", script + 'exec "$@"', "sh"]


def _writable_mounts(pid: int) -> list[str]:
    """The mount points writable to process `pid` (where two are stacked, the top one counts)."""
    visible = {m[4]: m[5] for m in map(str.split, Path(f"/proc/{pid}/mountinfo").read_text().splitlines())}
    return [
        point
        for point, options in visible.items()
        if "rw" in options.split(",")
        and not (point in ("/proc", "/sys") or point.startswith(("/proc/", "/sys/")))
    ]


def test_on_a_read_only_file_system_keep_alive_access_log_and_a_graceful_sigterm(
    model_path, sample_files, tmp_path, figures
):
    """Every file system read-only to it (model, venv, working directory, TMPDIR): it serves, keeps
    a connection alive across requests, logs each request with --access-log, and on SIGTERM stops
    taking connections, finishes the request in flight, and exits by the SIGTERM it was sent
    (uvicorn re-raises it after the graceful stop: systemd counts that a clean exit)."""
    wrapper = _read_only_wrapper()
    work = tmp_path / "cwd"
    work.mkdir()
    argv = [*wrapper, str(DIGITKIT), "serve", "--model", str(model_path), "--port", "0", "--access-log"]
    server = launched(argv, work)
    sent: list[tuple[str, str, int]] = []
    try:
        assert _writable_mounts(server.process.pid) == [], "the server's file systems are not all read-only"
        png = sample_files[0].read_bytes()
        kept = http.client.HTTPConnection(server.host, server.port, timeout=30)
        kept.request("POST", "/api/predict", body=png, headers={"Content-Type": "image/png"})
        first = kept.getresponse()
        answer = json.loads(first.read())
        local = kept.sock.getsockname()
        kept.request("GET", "/api/info")
        second = kept.getresponse()
        info = json.loads(second.read())
        assert first.status == 200 and answer["digit"] in range(10) and second.status == 200
        assert kept.sock is not None and kept.sock.getsockname() == local, "a new connection was opened"
        assert info["artifact"] == ARTIFACT
        kept.close()
        sent += [("POST", "/api/predict", 200), ("GET", "/api/info", 200)]
        for method, path, expected in (("GET", "/healthz", 200), ("GET", "/nothing", 404), ("GET", "/", 200)):
            assert server.request(method, path)[0] == expected
            sent.append((method, path, expected))

        # A request in flight at SIGTERM: its head and part of its body are in, the rest comes after.
        body = json.dumps({"pixels": [0] * 783 + [255]}).encode()
        inflight = socket.create_connection((server.host, server.port), timeout=30)
        inflight.sendall(
            b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:10]
        )
        assert server.request("GET", "/healthz")[0] == 200  # the server has read that head by now
        sent.append(("GET", "/healthz", 200))
        server.process.send_signal(signal.SIGTERM)
        refused = False
        for _ in range(50):  # the listening socket closes at once; wait for it, no time asserted
            try:
                socket.create_connection((server.host, server.port), timeout=2).close()
            except ConnectionRefusedError:
                refused = True
                break
            time.sleep(0.1)
        assert refused, "new connections are still accepted after SIGTERM"
        inflight.sendall(body[10:])
        reply = b""
        while chunk := inflight.recv(65536):
            reply += chunk
        inflight.close()
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert json.loads(reply.partition(b"\r\n\r\n")[2])["digit"] in range(10)
        sent.append(("POST", "/api/predict", 200))
        code = server.process.wait(timeout=30)
    finally:
        server.stop()
    assert code == -signal.SIGTERM, code
    log = server.stderr_text()
    assert "Traceback" not in log and "Finished server process" in log, log
    assert sorted(p.name for p in work.rglob("*")) == ["tmp"], "the server wrote files"
    access = [line for line in server.process.stdout.read().decode().splitlines() if '" ' in line]
    assert len(access) == len(sent), access
    for line, (method, path, status) in zip(access, sent):
        assert f'"{method} {path} HTTP/1.1" {status}' in line, (line, method, path, status)
    figures.append(
        f"serve on a read-only file system: {len(sent)} requests answered and logged by --access-log, "
        f"two on one kept-alive connection; on SIGTERM the request in flight answered 200, exit {code}"
    )


# --- the connection limit -------------------------------------------------------------------------


def test_at_most_max_connections_connections(model_path, tmp_path):
    """--max-connections 3: with three connections open each is served; a fourth is answered 503;
    once one closes, a new one is served again."""
    work = tmp_path / "cwd"
    work.mkdir()
    server = Server(model_path, work, "--max-connections", "3", "--body-timeout", "60")
    idle: list[socket.socket] = []
    try:
        kept = http.client.HTTPConnection(server.host, server.port, timeout=30)

        def healthz(connection: http.client.HTTPConnection) -> int:
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            return response.status

        assert healthz(kept) == 200
        idle = [socket.create_connection((server.host, server.port), timeout=30) for _ in range(2)]
        assert healthz(kept) == 200  # three open, this one of them: within the limit

        def fresh_status(wanted: int) -> int:
            """A new connection's status, retried until it is ``wanted`` (the server takes connections
            in asynchronously: a wait, not asserted), at most 5 s."""
            status = 0
            for _ in range(50):
                fresh = http.client.HTTPConnection(server.host, server.port, timeout=30)
                status = healthz(fresh)
                fresh.close()
                if status == wanted:
                    break
                time.sleep(0.1)
            return status

        assert fresh_status(503) == 503, "a fourth connection was served"
        assert healthz(kept) == 200
        idle.pop().close()
        assert fresh_status(200) == 200
        kept.close()
    finally:
        for sock in idle:
            sock.close()
        server.stop()
    assert "Exceeded concurrency limit" in server.stderr_text()


# --- the page: a token asked once, drawing with a finger ------------------------------------------


def _draw_a_seven(driver, pad, touch: bool) -> None:
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    size = pad.size["width"]
    at = lambda fx, fy: (int((fx - 0.5) * size), int((fy - 0.5) * size))
    points = [at(0.25, 0.22), at(0.5, 0.22), at(0.75, 0.22), at(0.62, 0.45), at(0.5, 0.65), at(0.42, 0.82)]
    kind = interaction.POINTER_TOUCH if touch else interaction.POINTER_MOUSE
    builder = ActionBuilder(driver, mouse=PointerInput(kind, "finger" if touch else "mouse"))
    builder.pointer_action.move_to(pad, *points[0]).pointer_down()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for step in range(1, 5):
            builder.pointer_action.move_to(pad, x0 + (x1 - x0) * step // 4, y0 + (y1 - y0) * step // 4)
    builder.pointer_action.pointer_up()
    builder.perform()


def test_the_page_asks_for_the_token_once_and_draws_with_a_finger(model_path, tmp_path, figures):
    """With --token the page asks for it on load; once given, a finger-drawn 7 (touch pointer
    events) and a second, mouse-drawn one are read as 7 without asking again, nor after a reload."""
    import browser

    reason = browser.unavailable()
    if reason:
        pytest.skip(reason)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    work = tmp_path / "cwd"
    work.mkdir()
    server = Server(model_path, work, "--token", "s3cret-page")
    try:
        with browser.chromium(width=1100, height=820) as driver:
            driver.get(f"http://{server.host}:{server.port}/")
            wait = WebDriverWait(driver, 60)
            wait.until(lambda d: d.find_element(By.ID, "token-row").is_displayed())  # asked on load
            assert "needs a token" in driver.find_element(By.ID, "model").text
            driver.execute_script(
                "window.asked = 0; window.kinds = [];"
                "const row = document.getElementById('token-row');"
                "new MutationObserver(() => { if (!row.hidden) window.asked++; })"
                "  .observe(row, {attributes: true, attributeFilter: ['hidden']});"
                "document.getElementById('pad').addEventListener('pointerdown',"
                "  (e) => window.kinds.push(e.pointerType), true);"
            )
            driver.find_element(By.ID, "token").send_keys("s3cret-page")
            driver.find_element(By.ID, "token-save").click()
            wait.until(lambda d: ARTIFACT in d.find_element(By.ID, "model").text)
            pad = driver.find_element(By.ID, "pad")
            _draw_a_seven(driver, pad, touch=True)
            wait.until(lambda d: d.find_element(By.ID, "digit").text == "7")
            finger = driver.find_element(By.ID, "confidence").text
            driver.find_element(By.ID, "clear").click()
            _draw_a_seven(driver, pad, touch=False)
            wait.until(
                lambda d: (
                    d.find_element(By.ID, "digit").text == "7"
                    and "server" in d.find_element(By.ID, "timing").text
                )
            )
            assert driver.execute_script("return window.kinds") == ["touch", "mouse"]
            assert driver.execute_script("return window.asked") == 0
            assert not driver.find_element(By.ID, "token-row").is_displayed()
            driver.refresh()
            wait.until(lambda d: ARTIFACT in d.find_element(By.ID, "model").text)  # the stored token
            assert not driver.find_element(By.ID, "token-row").is_displayed()
            assert browser.console_errors(driver) == [] or all(
                "401" in message for message in browser.console_errors(driver)
            )
    finally:
        server.stop()
    figures.append(f"serve page with --token: asked once, a finger-drawn 7 read as 7 ({finger})")


# --- the systemd unit ------------------------------------------------------------------------------


def test_the_systemd_unit_runs_as_pi_from_the_venv_on_the_bundle_read_only(tmp_path):
    """The unit: user pi, ~pi/digitkit-env's digitkit on ~pi/bundle (options the real CLI parses),
    restarted on failure, the file system read-only to it and nothing made writable; and
    `systemd-analyze verify` (where systemd is installed) finds nothing to say."""
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert service["User"] == "pi"
    argv = shlex.split(service["ExecStart"])
    assert argv[:2] == ["/home/pi/digitkit-env/bin/digitkit", "serve"]
    params = _serve_command().make_context("serve", argv[2:]).params
    assert str(params["bundle"]) == "/home/pi/bundle" and params["model"] is None
    assert service["Restart"] == "on-failure"
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "read-only"
    assert service["PrivateTmp"] == "true"
    assert not [key for key in service if key.startswith(("ReadWrite", "StateDirectory", "CacheDirectory"))]
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    if not shutil.which("systemd-analyze"):
        return
    root = tmp_path / "root"  # the unit's paths exist there, as on a Pi
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc" / "systemd" / "system" / UNIT.name)
    program = root / argv[0].lstrip("/")
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    units = Path("/usr/lib/systemd/system")
    if units.is_dir():
        shutil.copytree(units, root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    done = subprocess.run(
        ["systemd-analyze", "verify", f"--root={root}", UNIT.name], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr.strip() == "", done.stdout + done.stderr


# --- the web stack: pure Python, uvicorn without its compiled extras ---------------------------


def _closure(extra: str) -> dict[str, object]:
    """The distributions the `extra` of digitkit brings (and theirs), as installed here."""
    from importlib.metadata import distribution, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    def wanted(requirement: Requirement, extras: set[str]) -> bool:
        if requirement.marker is None:
            return True
        return any(requirement.marker.evaluate({"extra": e}) for e in extras or {""})

    own = [Requirement(r) for r in requires("digitkit") or []]
    todo = [(r, set(r.extras)) for r in own if wanted(r, {extra}) and not wanted(r, {""})]
    found: dict[str, object] = {}
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        dist = distribution(requirement.name)
        assert requirement.specifier.contains(dist.version, prereleases=True), (requirement, dist.version)
        found[name] = dist
        for sub in map(Requirement, dist.requires or []):
            if wanted(sub, extras):
                todo.append((sub, set(sub.extras)))
    return found


def test_the_serve_extra_is_pure_python_without_uvloop_or_httptools():
    """Every distribution `serve` installs here is a pure-Python wheel (py3-none-any, no compiled
    file), and uvicorn comes without its `standard` extra (uvloop, httptools)."""
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    stack = _closure("serve")
    assert {"starlette", "uvicorn", "python-multipart", "anyio", "h11", "click", "idna"} <= set(stack), stack
    assert not {"uvloop", "httptools", "websockets", "watchfiles"} & set(stack)
    uvicorn = [Requirement(r) for r in requires("digitkit") or [] if r.startswith("uvicorn")]
    assert uvicorn and all(not r.extras for r in uvicorn)
    compiled = {}
    for name, dist in stack.items():
        wheel = dist.read_text("WHEEL") or ""  # type: ignore[attr-defined]
        tags = [line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")]
        assert tags and all(tag.endswith("-none-any") for tag in tags), (name, tags)
        assert "Root-Is-Purelib: true" in wheel, name
        binaries = [str(f) for f in dist.files or [] if f.suffix in (".so", ".pyd", ".dylib")]  # type: ignore[attr-defined]
        if binaries:
            compiled[name] = binaries
    assert compiled == {}


def test_the_readme_install_line_names_extras_that_exist_and_resolve():
    """`pip install "digitkit[litert,cli,images,serve]"`: each extra exists, and what it requires
    for this platform is installed here at a version it accepts."""
    from importlib.metadata import metadata

    provided = set(metadata("digitkit").get_all("Provides-Extra") or [])
    assert {"litert", "cli", "images", "serve"} <= provided
    for extra in ("litert", "cli", "images", "serve"):
        assert _closure(extra), extra


# --- which requests skip the thread pool ---------------------------------------------------------


def test_small_json_and_images_declaring_at_most_512x512_run_inline():
    """The rule that keeps a thread hop off the quick requests: a small JSON body, or an image whose
    header declares at most 512x512 pixels, runs inline; a larger image, a multipart form or a
    large body goes to the worker threads."""
    from PIL import Image

    from digitkit.toolkit.serve.requests import is_quick

    def png(width: int, height: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("L", (width, height), 255).save(buffer, "PNG")
        return buffer.getvalue()

    assert is_quick(json.dumps({"pixels": [0] * 784}).encode(), "application/json")
    assert is_quick(png(28, 28), "image/png") and is_quick(png(512, 512), "image/png")
    assert not is_quick(png(513, 512), "image/png") and not is_quick(png(512, 513), None)
    assert not is_quick(b"--b\r\n\r\n--b--\r\n", "multipart/form-data; boundary=b")
    assert not is_quick(json.dumps({"batch": [[0] * 784] * 20}).encode(), "application/json")
