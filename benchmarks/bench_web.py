"""Web throughput with vs without otel_carbon, side by side: wrk against real servers.

    python benchmarks/bench_web.py [--seconds 8] [--rounds 3] [--connections 16]

Both variants run the same app under ``opentelemetry-instrument`` with the official
Flask/FastAPI instrumentation; "without" sets ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=carbon``.
Servers: Flask under gunicorn (2 sync workers) and FastAPI under uvicorn (1 worker),
on 127.0.0.1. Variants alternate each round; medians of requests/s, p99 latency and the
server's CPU time per request (the process tree's user + system time over the timed run,
divided by the requests wrk completed: steadier than throughput when wrk and the server
share two vCPUs) are compared. Goal: with carbon, at least 0.95 of the throughput and p99
within 5 %.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(kind: str, port: int) -> List[str]:
    instrument = [str(BIN / "opentelemetry-instrument")]
    if kind == "flask-gunicorn":
        return instrument + [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(HERE), "web_apps:flask_app"]
    return instrument + [str(BIN / "uvicorn"), "--app-dir", str(HERE), "web_apps:fastapi_app", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]


def wait_ready(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


def parse_wrk(text: str) -> Tuple[float, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)  # type: ignore[union-attr]
    p99_ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return rps, p99_ms


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def run_once(kind: str, carbon: bool, seconds: int, connections: int, rounds: int) -> Tuple[float, float, float]:
    port = free_port()
    env = dict(os.environ)
    env.update(
        OTEL_SERVICE_NAME="bench",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="" if carbon else "carbon",
        OTEL_CARBON_COUNTRY="FR",
    )
    proc = subprocess.Popen(server_command(kind, port), env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        url = f"http://127.0.0.1:{port}/work?rounds={rounds}"
        subprocess.run(["wrk", "-t1", "-c", str(connections), "-d", "2s", url], capture_output=True, check=True)  # warm-up
        cpu0 = tree_cpu_s(proc.pid)
        out = subprocess.run(["wrk", "-t1", "-c", str(connections), "-d", f"{seconds}s", "--latency", url], capture_output=True, text=True, check=True).stdout
        cpu_s = tree_cpu_s(proc.pid) - cpu0
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        rps, p99_ms = parse_wrk(out)
        return rps, p99_ms, cpu_s / max(requests, 1) * 1e6
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--work", type=int, default=1000, help="sha256 rounds per request")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    print(f"machine: {machine()}")
    for kind in ("flask-gunicorn", "fastapi-uvicorn"):
        results: Dict[bool, List[Tuple[float, float, float]]] = {False: [], True: []}
        for r in range(args.rounds):
            for carbon in ((False, True) if r % 2 == 0 else (True, False)):
                results[carbon].append(run_once(kind, carbon, args.seconds, args.connections, args.work))
        base_rps = statistics.median(x[0] for x in results[False])
        base_p99 = statistics.median(x[1] for x in results[False])
        ours_rps = statistics.median(x[0] for x in results[True])
        ours_p99 = statistics.median(x[1] for x in results[True])
        base_cpu = statistics.median(x[2] for x in results[False])
        ours_cpu = statistics.median(x[2] for x in results[True])
        print(
            f"{kind:<16} without: {base_rps:8.0f} req/s p99 {base_p99:6.2f} ms {base_cpu:6.0f} us CPU/req | with carbon: "
            f"{ours_rps:8.0f} req/s p99 {ours_p99:6.2f} ms {ours_cpu:6.0f} us CPU/req | throughput x{ours_rps / base_rps:.3f}, "
            f"p99 x{ours_p99 / base_p99:.3f}, server CPU per request x{ours_cpu / base_cpu:.3f} (+{ours_cpu - base_cpu:.0f} us)"
        )
        print(
            f"{'':<16} throughput ratio per round: "
            + ", ".join(f"{o[0] / b[0]:.3f}" for b, o in zip(results[False], results[True]))
        )


if __name__ == "__main__":
    main()
