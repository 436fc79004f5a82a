"""`digitkit serve` under load: predictions per second and p50/p99 latency at 1, 8 and 32 concurrent
clients on loopback, for a 28x28 PNG (an MNIST digit) and for a phone-sized JPEG (a 12-megapixel
photo of a digit on paper).

The load generator is wrk (Debian's package, installed on first use): C and epoll, one thread, so it
takes a small share of the two cores and the server gets the rest; its CPU time and the server's
are measured from /proc and reported side by side. Run alone:

    python benchmarks/bench_serve.py --export-dir DIR [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from digitkit.toolkit.data import load_mnist_test

BENCH_DIR = Path(__file__).resolve().parent
DIGITKIT = str(Path(sys.executable).with_name("digitkit"))
ARTIFACT = "digit_mlp_int8_pixels.tflite"
CLIENTS = (1, 8, 32)
GOAL_RATE, GOAL_P99_MS = 1000.0, 20.0  # the issue's, at 8 clients for the PNG
TICKS = os.sysconf("SC_CLK_TCK")
# wrk's script: the body from a file, and a JSON summary (latencies in µs) on the last line.
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = os.getenv("BODY_TYPE")
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass
class Load:
    body: str  # "png" or "jpeg"
    body_bytes: int
    clients: int
    rate: float  # predictions (answered 200) per second
    p50_ms: float
    p99_ms: float
    non2xx: int
    errors: int
    server_cpu: float  # cores the server used (CPU seconds / wall seconds)
    client_cpu: float  # cores wrk used
    cpu_ms: float  # server CPU time per prediction: what a core costs, whatever else runs


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def ensure_wrk() -> str:
    if shutil.which("wrk") is None:
        sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
        from cortex_m.toolchain import ensure_packages

        ensure_packages({"wrk": "wrk"})
    return shutil.which("wrk") or "wrk"


def make_bodies(work: Path) -> dict[str, Path]:
    """A 28x28 PNG (MNIST test digit 0, a 7) and a 4032x3024 JPEG of a dark 7 on grey paper."""
    digit = load_mnist_test()[0][0]
    png = work / "digit.png"
    Image.fromarray(digit).save(png)
    rng = np.random.default_rng(0)
    paper = np.clip(rng.normal(215, 5, size=(3024, 4032)), 0, 255).astype(np.uint8)
    ink = np.asarray(Image.fromarray(255 - digit).resize((1800, 1800), Image.LANCZOS))
    paper[600:2400, 1100:2900] = np.minimum(paper[600:2400, 1100:2900], ink)
    jpeg = work / "phone.jpg"
    Image.fromarray(paper).convert("RGB").save(jpeg, quality=90)
    return {"png": png, "jpeg": jpeg}


def start_server(model: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [DIGITKIT, "serve", "--model", str(model), "--port", "0", "--max-connections", "1024"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line = process.stdout.readline().decode()
    if "serving" not in line:
        process.kill()
        raise RuntimeError(f"digitkit serve did not start: {line!r}")
    return process, line.rsplit(" at ", 1)[1].strip()


def measure(wrk: str, url: str, server_pid: int, body: Path, kind: str, clients: int, seconds: float) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    env = {**os.environ, "BODY_FILE": str(body), "BODY_TYPE": "image/png" if kind == "png" else "image/jpeg"}
    argv = [
        wrk,
        "-t1",
        f"-c{clients}",
        f"-d{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        script.name,
        url + "api/predict",
    ]
    try:
        server_before, started = _cpu_seconds(server_pid), time.monotonic()
        client_before = os.times()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
        client_after, wall = os.times(), time.monotonic() - started
        server_cpu = (_cpu_seconds(server_pid) - server_before) / wall
    finally:
        os.unlink(script.name)
    client_cpu = (
        client_after.children_user
        + client_after.children_system
        - client_before.children_user
        - client_before.children_system
    ) / wall
    result = json.loads(done.stdout.strip().splitlines()[-1])
    ok = result["requests"] - result["non2xx"]
    return Load(
        kind,
        body.stat().st_size,
        clients,
        ok / (result["duration_us"] / 1e6),
        result["p50_us"] / 1000,
        result["p99_us"] / 1000,
        result["non2xx"],
        result["errors"],
        round(server_cpu, 2),
        round(client_cpu, 2),
        round(server_cpu * wall / max(ok, 1) * 1000, 3),
    )


def run_loads(export_dir: Path, seconds: float, log=print) -> list[Load]:
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="digitkit-bench-serve-") as tmp:
        bodies = make_bodies(Path(tmp))
        process, url = start_server(export_dir / ARTIFACT)
        try:
            loads = []
            for kind, body in bodies.items():
                measure(wrk, url, process.pid, body, kind, 8, 1.0)  # warm-up
                for clients in CLIENTS:
                    log(f"[serve] {kind}, {clients} clients, {seconds:g} s")
                    loads.append(measure(wrk, url, process.pid, body, kind, clients, seconds))
            return loads
        finally:
            process.terminate()
            process.wait(timeout=30)


def run(ws, log) -> dict:
    """run_all.py's phase: the workspace's export."""
    return {"loads": [asdict(x) for x in run_loads(ws.export_dir, 3.0 if ws.quick else 10.0, log)]}


def tables(result: dict) -> list:
    from common import Table, goal

    rows = []
    for x in result["loads"]:
        target = x["body"] == "png" and x["clients"] == 8
        rows.append(
            [
                f"{x['body']} ({x['body_bytes']:,} B)"
                if x["body_bytes"] < 10240
                else f"{x['body']} ({x['body_bytes'] / 1024:,.0f} KB)",
                x["clients"],
                f"{x['rate']:,.0f}",
                ("met" if x["rate"] >= GOAL_RATE else "MISSED") if target else "",
                f"{x['p50_ms']:.2f}",
                f"{x['p99_ms']:.2f}",
                goal(x["p99_ms"], GOAL_P99_MS) if target else "",
                f"{x['server_cpu']:.2f}",
                f"{x['cpu_ms']:.2f}",
                f"{x['client_cpu']:.2f}",
                x["non2xx"] + x["errors"],
            ]
        )
    headers = (
        f"body | clients | predictions/s | goal >= {GOAL_RATE:,.0f}/s | p50 ms | p99 ms | goal p99 <= {GOAL_P99_MS:g} ms"
        " | server cores | server CPU ms / prediction | wrk cores | failed"
    )
    note = (
        "`digitkit serve` (int8-pixels TFLite, auto backend) on loopback; load from wrk (one thread, keep-alive "
        "connections); each row 10 s (3 s with --quick) after a warm-up. Cores = CPU seconds / wall seconds of each "
        "process: the load generator's share is what the server did not get. CPU ms per prediction holds when other "
        "work shares the cores; predictions/s and latency do not."
    )
    return [Table("digitkit serve under load", headers, rows, note)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="Write the results here too.")
    args = parser.parse_args()
    sys.path.insert(0, str(BENCH_DIR))
    from common import Machine, render

    machine = Machine.now()
    result = {"loads": [asdict(x) for x in run_loads(args.export_dir, args.seconds)]}
    machine.finish()
    result["machine"] = asdict(machine)
    if args.json:
        from digitkit.runtime.files import write_json_atomic

        write_json_atomic(args.json, result)
    print(render(tables(result), markdown=True))
    print(f"load average at start {machine.load_at_start}, at end {machine.load_at_end}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
