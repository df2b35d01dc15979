"""The compiled span path (otel_carbon._speedups) against the pure-Python reference.

Whether the extension is used follows ``OTEL_CARBON_SPEEDUPS``; the last test runs the
span-path tests again in a child pytest with the compiled path off, so both are tested in
every run.
"""

from __future__ import annotations

import collections
import importlib.util
import inspect
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_carbon import CarbonSpanProcessor, cpu_clock
from otel_carbon import attributes as A
from otel_carbon.sensors.cpu_model import CpuModelSensor

from conftest import burn_cpu_s, make_sampler

COMPILED_OFF = os.environ.get("OTEL_CARBON_SPEEDUPS", "").strip().lower() == "off"
needs_compiled = pytest.mark.skipif(COMPILED_OFF, reason="OTEL_CARBON_SPEEDUPS=off: the pure-Python run")
ROOT = Path(__file__).resolve().parent.parent
NOT_BUILT = "otel_carbon._speedups was not built (no C compiler at install?): " + cpu_clock.span_path


def ccf_sensor() -> CpuModelSensor:
    return CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=os.cpu_count() or 1)


class PythonPath(CarbonSpanProcessor):
    """Overrides a hook, so it keeps the Python span path whatever the build."""

    def on_start(self, span, parent_context=None):  # type: ignore[no-untyped-def]
        super().on_start(span, parent_context)


def pipeline(processor):
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter, provider


@pytest.fixture
def manual_sampler():
    """A sampler ticked by hand, not quiet (a span stays open across its ticks)."""
    sampler = make_sampler([ccf_sensor()], start=False)
    sampler.tick()
    yield sampler
    sampler.shutdown()


@pytest.fixture
def python_calls(monkeypatch):
    """Counts the calls that reach the processor's Python ``on_start`` / ``_on_ending``
    (the compiled hooks hand them what they do not do themselves)."""
    assert cpu_clock.speedups is not None, NOT_BUILT
    calls = collections.Counter()
    on_start, on_ending = CarbonSpanProcessor.on_start, CarbonSpanProcessor._on_ending

    def counting_on_start(self, span, parent_context=None):
        calls["on_start"] += 1
        return on_start(self, span, parent_context)

    def counting_on_ending(self, span):
        calls["_on_ending"] += 1
        return on_ending(self, span)

    monkeypatch.setattr(CarbonSpanProcessor, "on_start", counting_on_start)
    monkeypatch.setattr(CarbonSpanProcessor, "_on_ending", counting_on_ending)
    return calls


def busy_tick(sampler, tracer):
    """Tick while a span is open, so the sampler is not in its idle back-off."""
    keep = tracer.start_span("keep-awake")
    sampler.tick()
    return keep


def test_the_span_path_follows_OTEL_CARBON_SPEEDUPS(manual_sampler):
    processor = CarbonSpanProcessor(sampler=manual_sampler)
    if COMPILED_OFF:
        assert cpu_clock.speedups is None and "OTEL_CARBON_SPEEDUPS=off" in cpu_clock.span_path
        assert processor._hooks is None and inspect.ismethod(processor.on_start)
    else:
        assert cpu_clock.speedups is not None, NOT_BUILT
        assert cpu_clock.span_path.startswith("compiled")
        assert processor.on_start == processor._hooks.on_start
        assert processor._on_ending == processor._hooks.on_ending
    assert PythonPath(sampler=manual_sampler)._hooks is None
    processor.shutdown()


def test_both_paths_give_the_same_attributes(manual_sampler):
    compiled, python = CarbonSpanProcessor(sampler=manual_sampler), PythonPath(sampler=manual_sampler)
    results = []
    for processor in (compiled, python):
        tracer, exporter, provider = pipeline(processor)
        keep = busy_tick(manual_sampler, tracer)
        with tracer.start_as_current_span("work"):
            used_s = burn_cpu_s(0.02)
        results.append((exporter.get_finished_spans()[0].attributes, used_s, manual_sampler.ledger.latest))
        keep.end()
        provider.shutdown()
    (c, _, _), (p, _, _) = results
    assert list(c) == list(p)  # same names, same order
    for attrs, used_s, tick in results:
        assert attrs[A.CPU_TIME] == pytest.approx(used_s, rel=0.05)
        assert attrs[A.CPU_CLOCK] == "thread"
        # priced by the one tick the span lived in, exactly as the ledger says
        assert attrs[A.ENERGY_CPU] == attrs[A.CPU_TIME] * tick.price_j_per_cpu_s[0]
        assert attrs[A.ENERGY_TOTAL] == attrs[A.ENERGY_CPU]
        assert attrs[A.EMISSIONS] == attrs[A.ENERGY_TOTAL] * tick.g_per_j
        assert (attrs[A.INTENSITY], attrs[A.ZONE], attrs[A.METHOD]) == (100.0, "TEST", A.ESTIMATED)


@needs_compiled
def test_common_spans_never_reach_the_python_methods(manual_sampler, python_calls):
    calls = python_calls
    tracer, exporter, provider = pipeline(CarbonSpanProcessor(sampler=manual_sampler))
    keep = busy_tick(manual_sampler, tracer)  # the first span: resource and layout, in Python
    calls.clear()
    for _ in range(50):
        with tracer.start_as_current_span("a"):
            with tracer.start_as_current_span("b"):
                pass
    assert calls == {}
    # a span that lives across a tick is priced over its window by the Python path
    with tracer.start_as_current_span("across"):
        manual_sampler.tick()
    assert calls == {"_on_ending": 1}
    keep.end()
    spans = exporter.get_finished_spans()
    assert len(spans) == 102 and all(s.attributes[A.METHOD] == A.ESTIMATED for s in spans)
    provider.shutdown()


@needs_compiled
def test_asyncio_task_spans_take_the_compiled_path_too(manual_sampler, python_calls):
    import asyncio

    calls = python_calls
    tracer, exporter, provider = pipeline(CarbonSpanProcessor(sampler=manual_sampler))
    keep = busy_tick(manual_sampler, tracer)
    calls.clear()

    async def request(burn_s: float) -> float:
        with tracer.start_as_current_span("request"):
            used = burn_cpu_s(burn_s / 2)
            await asyncio.sleep(0)  # the other requests run here
            with tracer.start_as_current_span("inner"):
                used += burn_cpu_s(burn_s / 2)
            return used

    async def main() -> list:
        return await asyncio.gather(*(request(0.004 * (i + 1)) for i in range(4)))

    used = asyncio.run(main())
    assert calls == {}
    keep.end()  # started before the tick: the Python path
    spans = [s for s in exporter.get_finished_spans() if s.name == "request"]
    assert [s.attributes[A.CPU_CLOCK] for s in spans] == ["task"] * 4
    # each request is charged its own steps, not the others' work interleaved with it
    got = sorted(s.attributes[A.CPU_TIME] for s in spans)
    assert got == pytest.approx(sorted(used), rel=0.2, abs=0.0005)
    tick = manual_sampler.ledger.latest
    assert all(s.attributes[A.ENERGY_CPU] == s.attributes[A.CPU_TIME] * tick.price_j_per_cpu_s[0] for s in spans)
    provider.shutdown()


@needs_compiled
def test_after_the_span_that_wakes_an_idle_sampler_the_next_ones_are_compiled(python_calls):
    calls = python_calls
    sampler = make_sampler([ccf_sensor()], start=False)
    sampler.tick()
    tracer, exporter, provider = pipeline(CarbonSpanProcessor(sampler=sampler))
    with tracer.start_as_current_span("first"):  # first span: resource, in Python
        pass
    for _ in range(5):  # no span open, the process idle: the sampler backs off
        time.sleep(0.5)
        sampler.tick()
        if sampler.quiet:
            break  # (another test's threads may have kept the process over 1 % of a CPU)
    assert sampler.quiet
    calls.clear()
    for name in ("wakes it", "next", "next again"):
        with tracer.start_as_current_span(name):
            pass
    assert calls == {"on_start": 1}  # only the span that found the sampler idle
    assert not sampler.quiet
    assert all(s.attributes[A.METHOD] == A.ESTIMATED for s in exporter.get_finished_spans())
    provider.shutdown()
    sampler.shutdown()


def test_a_stale_ledger_marks_spans_unavailable(monkeypatch):
    # ticks stamped 1000 s in the past: the ledger is stale for every span
    sampler = make_sampler([ccf_sensor()], start=False)
    monkeypatch.setattr(sampler, "_clock_ns", lambda: time.monotonic_ns() - 10**12)
    sampler.tick()
    tracer, exporter, provider = pipeline(CarbonSpanProcessor(sampler=sampler))
    keep = busy_tick(sampler, tracer)
    for _ in range(3):
        with tracer.start_as_current_span("stale"):
            burn_cpu_s(0.002)
    keep.end()
    spans = exporter.get_finished_spans()
    assert [s.attributes[A.METHOD] for s in spans] == [A.UNAVAILABLE] * 4
    assert all(s.attributes[A.ENERGY_CPU] > 0 for s in spans)  # figures still given, flagged
    sampler._clock_ns = time.monotonic_ns
    sampler.tick()  # a fresh tick: the tick's own method again
    with tracer.start_as_current_span("fresh"):
        pass
    assert exporter.get_finished_spans()[-1].attributes[A.METHOD] == A.ESTIMATED
    provider.shutdown()
    sampler.shutdown()


def test_listeners_keep_figures_that_later_spans_do_not_change(manual_sampler):
    processor = CarbonSpanProcessor(sampler=manual_sampler)
    seen = []
    processor.add_listener(lambda span, figures: seen.append((span.name, figures, dict(figures))))
    tracer, exporter, provider = pipeline(processor)
    keep = busy_tick(manual_sampler, tracer)
    for i in range(20):
        with tracer.start_as_current_span(f"s{i}"):
            burn_cpu_s(0.0005 * (i + 1))
    keep.end()
    assert len(seen) == 21 and len({id(f) for _, f, _ in seen}) == 21  # one dict each
    exported = {s.name: s.attributes for s in exporter.get_finished_spans()}
    for name, figures, snapshot in seen:
        assert figures == snapshot  # not changed by the spans after it
        assert {k: exported[name][k] for k in figures} == figures
    provider.shutdown()


def test_attributes_that_are_not_a_plain_dict_get_the_figures_through_setitem(manual_sampler):
    tracer, exporter, provider = pipeline(CarbonSpanProcessor(sampler=manual_sampler))
    keep = busy_tick(manual_sampler, tracer)
    span = tracer.start_span("ordered", attributes={"app": 1})
    span._attributes._dict = collections.OrderedDict(span._attributes._dict)
    span.end()
    keep.end()
    attrs = exporter.get_finished_spans()[0].attributes
    assert list(attrs)[0] == "app" and attrs[A.METHOD] == A.ESTIMATED and A.ENERGY_CPU in attrs
    assert list(span._attributes._dict.items()) == list(attrs.items())  # the OrderedDict is whole
    provider.shutdown()


def test_a_span_the_fast_path_cannot_write_to_is_reported_not_raised(manual_sampler, caplog):
    processor = CarbonSpanProcessor(sampler=manual_sampler)
    tracer, exporter, provider = pipeline(processor)
    keep = busy_tick(manual_sampler, tracer)

    class Odd:
        pass

    odd = Odd()
    processor.on_start(odd, parent_context=None)
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        processor._on_ending(odd)  # no _attributes: must not raise
        processor.on_end(odd)
    assert processor.open_spans == 1  # only the keep-awake span
    keep.end()
    assert processor.open_spans == 0
    provider.shutdown()


@needs_compiled
def test_no_reference_is_leaked_per_span(manual_sampler):
    tracer, exporter, provider = pipeline(CarbonSpanProcessor(sampler=manual_sampler))
    keep = busy_tick(manual_sampler, tracer)
    with tracer.start_as_current_span("warm"):
        pass
    exporter.clear()
    tick = manual_sampler.ledger.latest
    watched = [tick, tick.intensity.zone, tick.method, A.CPU_TIME, "thread"]
    before = [sys.getrefcount(x) for x in watched]
    for _ in range(2000):
        tracer.start_span("s").end()
    exporter.clear()
    after = [sys.getrefcount(x) for x in watched]
    # 2000 spans: a reference kept per span would show as +2000 (they may drop: the
    # last spans before the loop are released meanwhile)
    assert all(a - b < 50 for a, b in zip(after, before)), (before, after)
    keep.end()
    provider.shutdown()


@needs_compiled
def test_swap_owner_keeps_one_reference_per_thread():
    swap, current = cpu_clock.swap_owner, cpu_clock.current_owner
    owner = object()
    base = sys.getrefcount(owner)
    assert current() is None
    assert swap(owner) is None
    assert current() is owner
    assert sys.getrefcount(owner) == base + 1
    seen = []
    worker = threading.Thread(target=lambda: seen.append(current()))
    worker.start()
    worker.join()
    assert seen == [None]  # per thread
    assert swap(None) is owner
    assert current() is None
    assert sys.getrefcount(owner) == base


@pytest.mark.skipif(COMPILED_OFF, reason="OTEL_CARBON_SPEEDUPS=off: this is the nested pure-Python run")
def test_the_pure_python_span_path_passes_the_span_path_tests():
    tests = [
        "tests/test_processor.py", "tests/test_asyncio_attribution.py", "tests/test_speedups.py", "tests/test_sampler.py",
        "tests/test_handoff.py", "tests/test_attribution.py", "tests/test_metrics_table.py",
    ]  # fmt: skip
    env = dict(os.environ, OTEL_CARBON_SPEEDUPS="off")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


@pytest.mark.parametrize("setting", ["on", "off"])
def test_otel_carbon_sensors_says_which_span_path_runs(setting):
    import json

    env = dict(os.environ, OTEL_CARBON_SPEEDUPS=setting, OTEL_CARBON_NVML="off")
    result = subprocess.run(
        [sys.executable, "-m", "otel_carbon.cli", "sensors", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    span_path = report["span_path"]
    if setting == "off":
        assert span_path == "pure Python (OTEL_CARBON_SPEEDUPS=off)"
    elif importlib.util.find_spec("otel_carbon._speedups") is None:  # installed without a compiler
        assert span_path.startswith("pure Python: the compiled span path was not built")
    else:
        assert span_path == "compiled (otel_carbon._speedups)", NOT_BUILT
    text = subprocess.run(
        [sys.executable, "-m", "otel_carbon.cli", "sensors"], env=env, capture_output=True, text=True, timeout=60
    ).stdout
    assert f"Span path: {span_path}" in text


def test_an_open_span_cap_beyond_a_c_size_is_accepted(manual_sampler):
    # found by the hypothesis test over OTEL_CARBON_MAX_OPEN_SPANS: the cap is a C size in
    # the compiled hooks, and a bigger one must not raise OverflowError from deep inside
    processor = CarbonSpanProcessor(sampler=manual_sampler, max_open_spans=10**100)
    tracer, exporter, provider = pipeline(processor)
    with tracer.start_as_current_span("s"):
        pass
    assert exporter.get_finished_spans()[0].attributes[A.METHOD] == A.ESTIMATED
    provider.shutdown()
