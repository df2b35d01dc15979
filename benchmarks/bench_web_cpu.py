"""Server cost per request with vs without otel_carbon, in one process, no network.

    python benchmarks/bench_web_cpu.py [--requests 2000] [--rounds 15] [--rounds-of-work 1000]

``bench_web.py`` drives real servers with wrk; on a 2-vCPU VM shared by wrk and the server its
rounds disagree by ±0.25, more than the whole effect it looks for. This harness removes the
network, the client and the second process: the same apps (``web_apps.py``), each instrumented
in-process by the official Flask / FastAPI instrumentation on its own tracer and meter
provider (a batch span processor over a no-op exporter), called through WSGI (Werkzeug's test
client) and ASGI (the app awaited directly on one event loop). The "carbon" variant adds
``CarbonSpanProcessor`` and the meter (``CarbonMetrics``, every request summed), as
``configure()`` does. Variants alternate each round; printed: the process's CPU time per
request (every thread: the batch processor's worker and the sampler included) and the p99 of
each request's wall time, medians over rounds, and the paired ratio (each round against the
bare run of the same round).

A server that is CPU-bound serves ``1 / (CPU per request)``: the CPU ratio is the throughput
ratio it can reach, without the client's and the network's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine  # noqa: E402
from bench_span import NoopExporter  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402


def providers(carbon: bool) -> Tuple[TracerProvider, MeterProvider]:
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(NoopExporter()))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    if carbon:
        from otel_carbon import CarbonSpanProcessor
        from otel_carbon.metrics import CarbonMetrics

        processor = CarbonSpanProcessor()
        tp.add_span_processor(processor)
        CarbonMetrics(mp, span_attribute_allowlist=["http.route"]).attach(processor)
    return tp, mp


def flask_client(carbon: bool, rounds_of_work: int) -> Callable[[], int]:
    import importlib

    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    web_apps = importlib.import_module("web_apps")
    app = web_apps.Flask(f"bench-{carbon}")
    app.get("/work")(web_apps.flask_work)
    tp, mp = providers(carbon)
    FlaskInstrumentor().instrument_app(app, tracer_provider=tp, meter_provider=mp)
    client = app.test_client()
    url = f"/work?rounds={rounds_of_work}"

    def call() -> int:
        return client.get(url).status_code

    return call


def fastapi_client(carbon: bool, rounds_of_work: int) -> Callable[[], int]:
    import web_apps
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = FastAPI()
    app.get("/work")(web_apps.fastapi_work)
    tp, mp = providers(carbon)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=tp, meter_provider=mp)
    loop = asyncio.new_event_loop()
    query = f"rounds={rounds_of_work}".encode()

    async def one() -> int:
        status: List[int] = []
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
            "path": "/work", "raw_path": b"/work", "query_string": query, "root_path": "",
            "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        sent = False

        async def receive() -> Dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: Dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        return status[0]

    def call() -> int:
        return loop.run_until_complete(one())

    return call


def measure(call: Callable[[], int], n: int) -> Tuple[float, float]:
    """(CPU seconds per request, p99 of the requests' wall time in seconds)."""
    gc.collect()
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        status = call()
        walls.append(time.perf_counter() - t)
        if status != 200:
            raise RuntimeError(f"status {status}")
    cpu = (time.process_time() - cpu0) / n
    walls.sort()
    return cpu, walls[int(0.99 * (len(walls) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rounds-of-work", type=int, default=1000, help="sha256 rounds per request (~1 ms)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{args.requests} requests x {args.rounds} rounds, /work?rounds={args.rounds_of_work}, in process")
    for name, make in (("flask (WSGI)", flask_client), ("fastapi (ASGI)", fastapi_client)):
        calls = {False: make(False, args.rounds_of_work), True: make(True, args.rounds_of_work)}
        for call in calls.values():
            measure(call, 200)  # warm-up
        runs: Dict[bool, List[Tuple[float, float]]] = {False: [], True: []}
        for r in range(args.rounds):
            for carbon in ((False, True) if r % 2 == 0 else (True, False)):
                runs[carbon].append(measure(calls[carbon], args.requests))
        cpu = {k: statistics.median(c for c, _ in v) for k, v in runs.items()}
        p99 = {k: statistics.median(p for _, p in v) for k, v in runs.items()}
        paired_cpu = statistics.median(c1 / c0 for (c0, _), (c1, _) in zip(runs[False], runs[True]))
        paired_p99 = statistics.median(p1 / p0 for (_, p0), (_, p1) in zip(runs[False], runs[True]))
        print(
            f"{name:<15} CPU/request {cpu[False] * 1e6:7.1f} -> {cpu[True] * 1e6:7.1f} us "
            f"(+{(cpu[True] - cpu[False]) * 1e6:.1f} us, x{cpu[True] / cpu[False]:.3f}, paired x{paired_cpu:.3f}); "
            f"p99 {p99[False] * 1e3:.3f} -> {p99[True] * 1e3:.3f} ms (x{p99[True] / p99[False]:.3f}, paired x{paired_p99:.3f}); "
            f"throughput a CPU-bound server reaches: x{1 / paired_cpu:.3f}"
        )


if __name__ == "__main__":
    main()
