"""examples/fastapi_app.py under uvicorn (uvloop and the default asyncio loop), exporting
to a real OTLP receiver: 50 requests at once each carry about the CPU time (and energy) of
one request alone, not the whole window in which the others ran."""

from __future__ import annotations

import asyncio
import importlib.util
import statistics

import httpx
import pytest

try:
    from test_examples_common import BIN, EXAMPLES, Proc, assert_carbon, child_env, free_port, server_spans, wait_http, wait_until
except ImportError:  # tests/ imported as a package
    from .test_examples_common import BIN, EXAMPLES, Proc, assert_carbon, child_env, free_port, server_spans, wait_http, wait_until

from otel_carbon import attributes as A

ROUNDS, STEPS = 4000, 10  # ~10 ms of CPU per request, in 10 steps
ALONE, CONCURRENT = 5, 50


def _max_overlap(spans):
    """Most spans open at the same instant."""
    edges = sorted([(s["start_time_unix_nano"], 1) for s in spans] + [(s["end_time_unix_nano"], -1) for s in spans])
    depth = best = 0
    for _, step in edges:
        depth += step
        best = max(best, depth)
    return best


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_concurrent_requests_each_get_their_own_share(otlp_receiver, loop):
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        pytest.skip("uvloop is not installed")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [str(BIN / "uvicorn"), "--app-dir", str(EXAMPLES), "fastapi_app:app", "--host", "127.0.0.1",
            "--port", str(port), "--loop", loop, "--no-access-log"]
    params = {"rounds": ROUNDS, "steps": STEPS}

    async def one(client):
        r = await client.get(f"{base}/work", params=params)
        assert r.status_code == 200, r.text
        return r

    async def alone():
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(ALONE):
                await one(client)

    async def at_once():
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=CONCURRENT)) as client:
            await asyncio.gather(*(one(client) for _ in range(CONCURRENT)))

    with Proc(argv, child_env(otlp_receiver, "grpc"), cwd=EXAMPLES) as proc:
        wait_http(proc, f"{base}/health")
        asyncio.run(alone())
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/work")) >= ALONE, 10, f"{ALONE} spans\n{proc.describe()}")
        first_ids = {s["span_id"] for s in server_spans(otlp_receiver.spans(), "/work")}
        asyncio.run(at_once())
        total = ALONE + CONCURRENT
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/work")) >= total, 15, f"{total} spans\n{proc.describe()}")

    spans = server_spans(otlp_receiver.spans(), "/work")
    assert len(spans) == total
    for span in spans:
        assert_carbon(span)
    single = [s for s in spans if s["span_id"] in first_ids]
    together = [s for s in spans if s["span_id"] not in first_ids]
    assert len(single) == ALONE and len(together) == CONCURRENT
    # The requests really ran interleaved: a thread clock would charge each one for the others.
    assert _max_overlap(together) >= CONCURRENT // 3

    # Each span against the CPU its own handler measured for its hashing (``app.work.cpu_time``,
    # thread clock around each step): the span adds only the framework's share of the request.
    # A per-request reference, not the median of the requests run alone: a machine whose other
    # work moved under the test once made the same hashing cost twice as much CPU in the first
    # phase as in the second.
    single_task = [s for s in single if s["attributes"][A.CPU_CLOCK] == "task"]
    assert len(single_task) >= ALONE - 1, [s["attributes"][A.CPU_CLOCK] for s in single]
    clocks = [s["attributes"][A.CPU_CLOCK] for s in together]
    assert clocks.count("task") >= 0.9 * CONCURRENT, clocks
    if loop == "asyncio":  # the default loop's handles are timed from the very first span
        assert set(clocks) == {"task"} and all(s["attributes"][A.CPU_CLOCK] == "task" for s in single)

    def own_share(spans):
        return sorted(s["attributes"][A.CPU_TIME] / s["attributes"]["app.work.cpu_time"]
                      for s in spans if s["attributes"][A.CPU_CLOCK] == "task")

    alone, shares = own_share(single_task), own_share(together)
    for ratios in (alone, shares):
        # A thread clock would charge each of the 50 with the others' work too (up to 50x).
        assert 0.9 < ratios[0] and ratios[-1] < 1.5, f"alone {alone}, 50 at once {shares}"
    print(f"{loop}: span CPU / handler's own CPU: alone {alone[0]:.2f}..{alone[-1]:.2f}, "
          f"50 at once {shares[0]:.2f}..{shares[-1]:.2f}, overlap {_max_overlap(together)}, clocks {sorted(set(clocks))}")
