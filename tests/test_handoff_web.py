"""Work that a request hands to other threads is charged to the request's span, in real
servers exporting to a real OTLP receiver: FastAPI under uvicorn (a plain ``def`` endpoint
on AnyIO's worker threads, ``asyncio.to_thread``, ``run_in_executor``), a Flask view that
fans out to a thread pool under gunicorn, and a Django async view calling
``sync_to_async``. Each endpoint answers with the CPU time its work used where it ran."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

try:
    from test_examples_common import BIN, PYTHON, Proc, child_env, free_port, server_spans, wait_http, wait_until
except ImportError:  # tests/ imported as a package
    from .test_examples_common import BIN, PYTHON, Proc, child_env, free_port, server_spans, wait_http, wait_until

from otel_carbon import attributes as A

HERE = Path(__file__).resolve().parent
N, WORK_MS = 20, 20


def _concurrent_gets(url: str, n: int, params: dict) -> list:
    async def main() -> list:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=n)) as client:
            replies = await asyncio.gather(*(client.get(url, params=params) for _ in range(n)))
        for r in replies:
            assert r.status_code == 200, r.text
        return [r.json()["cpu_s"] for r in replies]

    return asyncio.run(main())


def _assert_charged(spans: list, work_s: list, low_s: float, high_s: float) -> None:
    """Every request span carries its handed-off work; together, the work done."""
    assert len(spans) == len(work_s)
    for span in spans:
        a = span["attributes"]
        where = f"{span['name']}: {a}"
        assert low_s <= a[A.CPU_TIME] <= high_s, where
        assert a[A.CPU_OFFLOADED] <= a[A.CPU_TIME], where
        assert a[A.CPU_OFFLOADED] >= 0.8 * low_s, where
        assert a[A.METHOD] != A.UNAVAILABLE and a[A.ENERGY_TOTAL] > 0, where
    total_span_s = sum(s["attributes"][A.CPU_TIME] for s in spans)
    assert total_span_s == pytest.approx(sum(work_s), rel=0.20)


@pytest.mark.parametrize("endpoint", ["def", "to_thread", "executor"])
def test_fastapi_requests_carry_the_work_of_their_threads(otlp_receiver, endpoint):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "uvicorn"), "--app-dir", str(HERE), "handoff_fastapi_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--loop", "asyncio", "--no-access-log"]
    with Proc(argv, child_env(otlp_receiver), cwd=HERE) as proc:
        wait_http(proc, f"{base}/health")
        # the process's first requests pay one-time work (imports, model building): not counted
        _concurrent_gets(f"{base}/{endpoint}", 2, {"ms": 1})
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), f"/{endpoint}")) >= 2, 15, f"spans\n{proc.describe()}")
        warm_up = {s["span_id"] for s in server_spans(otlp_receiver.spans(), f"/{endpoint}")}
        work_s = _concurrent_gets(f"{base}/{endpoint}", N, {"ms": WORK_MS})
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), f"/{endpoint}")) >= N + 2, 15, f"spans\n{proc.describe()}")
    spans = [s for s in server_spans(otlp_receiver.spans(), f"/{endpoint}") if s["span_id"] not in warm_up]
    _assert_charged(spans, work_s, 0.015, 0.045)


@functools.lru_cache(maxsize=None)
def _gunicorn_options() -> tuple:
    usage = subprocess.run([str(BIN / "gunicorn"), "--help"], capture_output=True, text=True, timeout=30).stdout
    return ("--no-control-socket",) if "--no-control-socket" in usage else ()


def test_flask_fan_out_to_a_pool_is_charged_to_the_request(otlp_receiver):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "gunicorn"), "-w", "1", "--threads", "4", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "3",
            *_gunicorn_options(), "handoff_flask_app:app"]
    n = 6
    with Proc(argv, child_env(otlp_receiver, "http/protobuf"), cwd=HERE) as proc:
        wait_http(proc, f"{base}/health")
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(lambda _: client.get(f"{base}/fanout", params={"ms": 30, "parts": 4}), range(n)))
        work_s = [r.json()["cpu_s"] for r in replies]
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/fanout")) >= n, 15, f"spans\n{proc.describe()}")
    spans = server_spans(otlp_receiver.spans(), "/fanout")
    _assert_charged(spans, work_s, 0.100, 0.160)


def test_django_async_view_charges_sync_to_async_work(otlp_receiver):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "uvicorn"), "--app-dir", str(HERE), "handoff_django_app:application", "--host", "127.0.0.1",
            "--port", str(port), "--loop", "asyncio", "--no-access-log", "--lifespan", "off"]
    n = 8
    with Proc(argv, child_env(otlp_receiver), cwd=HERE) as proc:
        wait_http(proc, f"{base}/health/")
        work_s = _concurrent_gets(f"{base}/work/", n, {"ms": WORK_MS})
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/work/")) >= n, 15, f"spans\n{proc.describe()}")
    # The view's own span (on the event loop) handed its work to the request's sync thread.
    _assert_charged([s for s in otlp_receiver.spans() if s["name"] == "view"], work_s, 0.015, 0.045)
    # The server span starts and ends on that sync thread (the instrumentation's middleware
    # runs there), so its thread clock already holds the work: it must not count it twice.
    spans = server_spans(otlp_receiver.spans(), "/work/")
    assert len(spans) == n
    for span in spans:
        assert 0.015 <= span["attributes"][A.CPU_TIME] <= 0.045, span["attributes"]
    assert sum(s["attributes"][A.CPU_TIME] for s in spans) == pytest.approx(sum(work_s), rel=0.20)


def test_gunicorn_preload_workers_never_price_cpu_at_zero(otlp_receiver):
    """Three workers forked after set-up, loaded from their first request on: a span with
    CPU time either has energy or says its figure is unavailable."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "gunicorn"), "--preload", "-w", "3", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "3",
            *_gunicorn_options(), "handoff_flask_app:app"]
    n = 150
    with Proc(argv, child_env(otlp_receiver, "http/protobuf"), cwd=HERE) as proc:
        deadline = time.monotonic() + 30
        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(6) as pool:
            while True:  # the very first answers, while the workers are still starting
                try:
                    if client.get(f"{base}/inline", params={"ms": 5}).status_code == 200:
                        break
                except httpx.HTTPError:
                    assert proc.alive() and time.monotonic() < deadline, proc.describe()
                    time.sleep(0.01)
            replies = list(pool.map(lambda _: client.get(f"{base}/inline", params={"ms": 5}), range(n - 1)))
        pids = {r.json()["pid"] for r in replies}
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/inline")) >= n, 20, f"spans\n{proc.describe()}")
    spans = server_spans(otlp_receiver.spans(), "/inline")
    assert len(spans) == n and len(pids) >= 2
    for span in spans:
        a = span["attributes"]
        assert a[A.CPU_TIME] > 0, a
        if a[A.METHOD] != A.UNAVAILABLE:
            assert a[A.ENERGY_TOTAL] > 0, a
