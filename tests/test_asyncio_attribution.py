"""asyncio: concurrent requests on one thread each pay for their own task's CPU time."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import burn_cpu_s as burn
from otel_carbon import attributes as A

try:
    import uvloop
except ImportError:  # only the uvloop cases skip (under CI=true a skip fails: conftest.py)
    uvloop = None

needs_uvloop = pytest.mark.skipif(uvloop is None, reason="uvloop is in the test extra; install '.[test]'")
LOOP_KINDS = ["asyncio", pytest.param("uvloop", marks=needs_uvloop)]


async def request(tracer, name: str, steps: int, step_cpu_s: float) -> None:
    with tracer.start_as_current_span(name):
        for _ in range(steps):
            burn(step_cpu_s)
            await asyncio.sleep(0)


async def many_requests(tracer, n: int, steps: int, step_cpu_s: float) -> None:
    await asyncio.gather(*(request(tracer, f"req-{i}", steps, step_cpu_s) for i in range(n)))


def run_on(loop_kind: str, coro_factory):
    if loop_kind == "uvloop":
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro_factory())
    finally:
        loop.close()


@pytest.mark.parametrize("loop_kind", LOOP_KINDS)
def test_concurrent_tasks_each_get_their_own_share(traced, loop_kind):
    tracer, exporter = traced
    n, steps, step_cpu_s = 20, 5, 0.002

    async def main():
        # On uvloop, task timing starts with tasks created after the first span on the loop.
        with tracer.start_as_current_span("warm-up"):
            await asyncio.sleep(0)
        t0 = time.thread_time()
        await many_requests(tracer, n, steps, step_cpu_s)
        return time.thread_time() - t0

    whole_s = run_on(loop_kind, main)
    spans = [s for s in exporter.get_finished_spans() if s.name.startswith("req-")]
    assert len(spans) == n
    cpu = [s.attributes[A.CPU_TIME] for s in spans]
    assert all(s.attributes[A.CPU_CLOCK] == "task" for s in spans)
    expected_s = steps * step_cpu_s
    for value in cpu:
        assert value == pytest.approx(expected_s, rel=0.25)
    # Each gets about 1/n of the whole, and together no more than the whole.
    assert sum(cpu) <= whole_s * 1.05
    energy = [s.attributes[A.ENERGY_TOTAL] for s in spans]
    for value in energy:
        assert value == pytest.approx(sum(energy) / n, rel=0.25)


def test_thread_clock_would_have_overcounted(traced):
    """The control: what a thread-clock window gives for the same load (about n times more)."""
    tracer, exporter = traced
    n, steps, step_cpu_s = 10, 4, 0.002
    windows = []

    async def request_window(i):
        t0 = time.thread_time()
        with tracer.start_as_current_span(f"req-{i}"):
            for _ in range(steps):
                burn(step_cpu_s)
                await asyncio.sleep(0)
        windows.append(time.thread_time() - t0)

    async def main():
        await asyncio.gather(*(request_window(i) for i in range(n)))

    run_on("asyncio", main)
    ours = sum(s.attributes[A.CPU_TIME] for s in exporter.get_finished_spans()) / n
    thread_window = sum(windows) / n
    assert thread_window > 3 * ours


def test_child_task_work_is_not_charged_to_the_parent(traced):
    tracer, exporter = traced

    async def child():
        burn(0.05)

    async def main():
        with tracer.start_as_current_span("parent"):
            burn(0.01)
            await asyncio.create_task(child())
            with tracer.start_as_current_span("inner"):
                burn(0.01)

    run_on("asyncio", main)
    by_name = {s.name: s.attributes for s in exporter.get_finished_spans()}
    assert by_name["parent"][A.CPU_TIME] == pytest.approx(0.02, rel=0.3)
    assert by_name["inner"][A.CPU_TIME] == pytest.approx(0.01, rel=0.3)


@needs_uvloop
def test_span_on_an_untimed_loop_task_falls_back_to_the_thread_clock(traced):
    tracer, exporter = traced

    async def main():
        with tracer.start_as_current_span("first"):
            burn(0.01)

    run_on("uvloop", main)
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.CPU_CLOCK] == "thread"
    assert span.attributes[A.CPU_TIME] == pytest.approx(0.01, rel=0.3)
