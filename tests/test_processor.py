"""CarbonSpanProcessor: attributes reach every exporter, in any order, never break the app."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_carbon import CarbonSpanProcessor
from otel_carbon import attributes as A
from otel_carbon.sensors.cpu_model import CpuModelSensor

from conftest import burn_cpu_s, fork_and_report, make_sampler, wait_for_a_price

PRICE_J_PER_CPU_S = 4.0  # the ccf_sampler fixture's max - min watts per vCPU




def provider_with(*processors):
    provider = TracerProvider()
    for p in processors:
        provider.add_span_processor(p)
    return provider


@pytest.mark.parametrize("carbon_first", [True, False])
@pytest.mark.parametrize("export_kind", ["simple", "batch"])
def test_every_exporter_sees_the_attributes_in_any_order(ccf_sampler, carbon_first, export_kind):
    exporter = InMemorySpanExporter()
    exporting = SimpleSpanProcessor(exporter) if export_kind == "simple" else BatchSpanProcessor(exporter)
    carbon = CarbonSpanProcessor(sampler=ccf_sampler)
    provider = provider_with(*((carbon, exporting) if carbon_first else (exporting, carbon)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        used_s = burn_cpu_s(0.05)
        span.set_attribute("app.attr", "kept")
    provider.force_flush()
    (finished,) = exporter.get_finished_spans()
    attrs = finished.attributes
    assert attrs["app.attr"] == "kept"
    assert attrs[A.CPU_TIME] == pytest.approx(used_s, rel=0.1)
    assert attrs[A.ENERGY_CPU] == pytest.approx(used_s * PRICE_J_PER_CPU_S, rel=0.1)
    assert attrs[A.ENERGY_TOTAL] == pytest.approx(attrs[A.ENERGY_CPU])
    assert attrs[A.EMISSIONS] == pytest.approx(attrs[A.ENERGY_TOTAL] * 100.0 / 3.6e6)
    assert attrs[A.INTENSITY] == 100.0
    assert attrs[A.ZONE] == "TEST"
    assert attrs[A.METHOD] == A.ESTIMATED
    assert A.ENERGY_GPU not in attrs and A.ENERGY_IDLE not in attrs
    provider.shutdown()


def test_wrapping_route_forwards_an_enriched_copy(ccf_sampler):
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(SimpleSpanProcessor(exporter), sampler=ccf_sampler))
    gc.disable()  # a full collection of the test process inside the span is CPU no burn counts
    try:
        with provider.get_tracer("test").start_as_current_span("wrapped"):
            used_s = burn_cpu_s(0.03)
    finally:
        gc.enable()
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes[A.ENERGY_CPU] == pytest.approx(used_s * PRICE_J_PER_CPU_S, rel=0.1)
    assert finished.attributes[A.METHOD] == A.ESTIMATED
    provider.shutdown()


def test_nested_spans_parent_includes_children(ccf_sampler):
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=ccf_sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent"):
        burn_cpu_s(0.02)
        with tracer.start_as_current_span("child"):
            burn_cpu_s(0.04)
    spans = {s.name: s.attributes for s in exporter.get_finished_spans()}
    assert spans["parent"][A.CPU_TIME] == pytest.approx(0.06, rel=0.15)
    assert spans["child"][A.CPU_TIME] == pytest.approx(0.04, rel=0.15)
    assert spans["parent"][A.ENERGY_TOTAL] > spans["child"][A.ENERGY_TOTAL]


def test_back_to_back_spans_reuse_clock_reads_but_never_overcount(ccf_sampler):
    """A span starting right after the previous one ended reuses that clock read (plus the
    wall time since): the estimate may undercount a little, never overcount."""
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=ccf_sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    # No garbage collection in the loop: a full collection between two spans (tens of ms in
    # a big test process) is thread CPU time no span owns, and once took the sum to 67 %.
    gc.disable()
    try:
        t0_ns = time.thread_time_ns()
        for _ in range(300):
            span = tracer.start_span("short")
            end = time.perf_counter_ns() + 500_000  # 0.5 ms of work on this thread: the SDK's own
            # per-span work between spans (~0.1 ms on Python 3.9 in pure Python) stays a small part
            while time.perf_counter_ns() < end:
                pass
            span.end()
        thread_s = (time.thread_time_ns() - t0_ns) / 1e9
    finally:
        gc.enable()
    cpu = [s.attributes[A.CPU_TIME] for s in exporter.get_finished_spans()]
    assert len(cpu) == 300 and min(cpu) >= 0.0
    # never more than the thread really used; the SDK's own per-span work between the spans
    # (and time off the CPU) is all that is missing
    assert sum(cpu) <= thread_s
    assert sum(cpu) >= 0.7 * thread_s
    provider.shutdown()


def test_a_span_after_a_pause_reads_the_clock_again(ccf_sampler):
    """After the thread was off the CPU for longer than the reuse window, the start is a
    real read: the pause is not charged to the span, and its work is."""
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=ccf_sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    for _ in range(5):
        tracer.start_span("before").end()
        time.sleep(0.005)  # off the CPU: 5 ms > the reuse window
        with tracer.start_as_current_span("after"):
            used_s = burn_cpu_s(0.01)
        (last,) = [s for s in exporter.get_finished_spans() if s.name == "after"][-1:]
        assert last.attributes[A.CPU_TIME] == pytest.approx(used_s, rel=0.1, abs=2e-4)
    provider.shutdown()


def test_forked_child_uses_its_own_thread_clock(ccf_sampler):
    """The forking thread is another thread in the child (new clock id, clock near 0): a
    span the child starts there and ends on a worker thread is charged the child's work, not
    the parent thread's clock (which the parent, waiting here, barely moves)."""
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=ccf_sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    tracer.start_span("in parent").end()  # the parent thread's clock id and last read are known

    def child() -> dict:
        span = tracer.start_span("in child")
        used_s = burn_cpu_s(0.05)
        ender = threading.Thread(target=span.end)
        ender.start()
        ender.join()
        (got,) = [s for s in exporter.get_finished_spans() if s.name == "in child"]
        return {"used_s": used_s, "cpu_s": got.attributes[A.CPU_TIME], "clock": got.attributes[A.CPU_CLOCK]}

    got = fork_and_report(child)
    assert got["clock"] == "other_thread"
    assert got["cpu_s"] == pytest.approx(got["used_s"], rel=0.15)
    provider.shutdown()


def test_span_ended_on_another_thread_is_charged_the_starting_threads_cpu(ccf_sampler):
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=ccf_sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    holder = {}
    release = threading.Event()
    ended = threading.Event()

    def starter():
        holder["span"] = tracer.start_span("handoff")
        holder["used"] = burn_cpu_s(0.03)
        release.set()
        ended.wait(30)  # stays alive until the other thread has ended the span (however loaded the machine)

    t = threading.Thread(target=starter)
    t.start()
    release.wait(5)
    burn_cpu_s(0.05)  # the ending thread's own work must not count
    holder["span"].end()
    ended.set()
    t.join()
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes[A.CPU_CLOCK] == "other_thread"
    assert finished.attributes[A.CPU_TIME] == pytest.approx(holder["used"], rel=0.2)


def test_span_ended_after_its_thread_died_says_so(ccf_sampler):
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=ccf_sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    holder = {}
    t = threading.Thread(target=lambda: holder.setdefault("span", tracer.start_span("orphan")))
    t.start()
    t.join()
    # join() returns when the Python thread is done; the OS thread exits a moment later.
    task_dir = f"/proc/self/task/{t.native_id}"
    deadline = time.monotonic() + 5
    while os.path.exists(task_dir) and time.monotonic() < deadline:
        time.sleep(0.01)
    holder["span"].end()
    (finished,) = exporter.get_finished_spans()
    assert finished.attributes[A.CPU_CLOCK] == "none"
    assert finished.attributes[A.CPU_TIME] == 0.0
    assert finished.attributes[A.METHOD] == A.ESTIMATED


class ExplodingSensor:
    """A sensor that works, then raises on every read once ``broken`` is set."""

    component = "cpu"
    method = "measured"
    name = "exploding"
    idle_power_w = 0.0

    def __init__(self):
        self.broken = False
        self.energy_j = 0.0

    def read(self, sample):
        if self.broken:
            raise OSError("device vanished")
        self.energy_j += 1.0
        return self.energy_j

    def info(self):
        raise NotImplementedError

    def close(self):
        pass


def test_sensor_failing_mid_run_flags_spans_and_loses_none():
    sensor = ExplodingSensor()
    sampler = make_sampler([sensor], interval_s=0.02)
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    try:
        wait_for_a_price(sampler)
        with tracer.start_as_current_span("before"):
            burn_cpu_s(0.01)
            time.sleep(0.1)
        sensor.broken = True
        deadline = time.monotonic() + 5  # until a tick has seen the failure
        while sampler.ledger.latest.method != A.UNAVAILABLE and time.monotonic() < deadline:
            time.sleep(0.02)
        for i in range(50):
            with tracer.start_as_current_span(f"after-{i}"):
                pass
    finally:
        sampler.shutdown()
    spans = exporter.get_finished_spans()
    assert len(spans) == 51
    by_name = {s.name: s.attributes for s in spans}
    assert by_name["before"][A.METHOD] == A.MEASURED
    assert all(by_name[f"after-{i}"][A.METHOD] == A.UNAVAILABLE for i in range(50))
    assert "exploding" in sampler.sensor_errors


def test_stale_ledger_marks_spans_unavailable():
    sampler = make_sampler([CpuModelSensor("ccf", 1.0, 5.0, n_vcpus=1)], interval_s=0.02, idle_interval_s=0.1)
    sampler.shutdown()  # the sampler stops: its last tick grows old
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("fresh"):
        pass
    assert sampler.stale_after_s == pytest.approx(0.3)  # 3 idle intervals > 10 ticks
    time.sleep(sampler.stale_after_s + 0.1)
    with tracer.start_as_current_span("stale"):
        pass
    by_name = {s.name: s.attributes for s in exporter.get_finished_spans()}
    assert by_name["fresh"][A.METHOD] == A.ESTIMATED
    assert by_name["stale"][A.METHOD] == A.UNAVAILABLE


def test_a_span_ending_on_a_stale_ledger_takes_the_reading_a_starved_sampler_thread_missed():
    """On a loaded host CPU-bound threads can keep the sampler thread from running for
    longer than the staleness limit. Here its loop is replaced by a wait (the scheduling a
    test cannot force): it took its first reading, then never another. The span that ends
    on the stale ledger takes the reading itself and is priced over its own window; the
    next span finds the ledger fresh and takes none."""
    sampler = make_sampler([CpuModelSensor("ccf", 1.0, 5.0, n_vcpus=1)], interval_s=0.02, idle_interval_s=0.1, start=False)
    never = threading.Event()
    sampler._run = lambda tick_first=False: never.wait()  # running, never ticking
    sampler.start()
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=sampler), SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("starved"):
            burn_cpu_s(0.05)
            time.sleep(sampler.stale_after_s + 0.1)
        assert sampler.catch_ups == 1 and sampler.ticks == 2
        with tracer.start_as_current_span("fresh"):
            burn_cpu_s(0.01)
        assert sampler.catch_ups == 1 and sampler.ticks == 2
    finally:
        never.set()
        sampler.shutdown()
    for span in exporter.get_finished_spans():
        attrs = span.attributes
        assert attrs[A.METHOD] == A.ESTIMATED, (span.name, dict(attrs))
        assert attrs[A.CPU_TIME] > 0
        # the ccf line: max - min = 4 W per busy vCPU, whatever else the host ran
        assert attrs[A.ENERGY_TOTAL] == pytest.approx(PRICE_J_PER_CPU_S * attrs[A.CPU_TIME], rel=1e-9)


def test_leaked_spans_are_capped_and_counted(ccf_sampler):
    exporter = InMemorySpanExporter()
    carbon = CarbonSpanProcessor(sampler=ccf_sampler, max_open_spans=100)
    provider = provider_with(carbon, SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    leaked = [tracer.start_span(f"leak-{i}") for i in range(1000)]
    assert carbon.open_spans == 100
    assert carbon.dropped_open_spans == 900
    leaked[0].end()  # evicted long ago: still exported, flagged
    leaked[-1].end()  # still tracked
    by_name = {s.name: s.attributes for s in exporter.get_finished_spans()}
    assert by_name["leak-0"][A.METHOD] == A.UNAVAILABLE
    assert by_name["leak-999"][A.METHOD] == A.ESTIMATED
    assert carbon.open_spans == 99


def test_idle_policy_cpu_adds_a_separate_idle_share():
    sensor = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=1)
    sampler = make_sampler([sensor], interval_s=0.02)
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=sampler, idle_policy="cpu"), SimpleSpanProcessor(exporter))
    try:
        burn_cpu_s(1.2)  # a trailing price window with busy time in it (an idle host has no price)
        with provider.get_tracer("t").start_as_current_span("w"):
            burn_cpu_s(0.05)
    finally:
        sampler.shutdown()
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes
    assert attrs[A.ENERGY_IDLE] > 0
    assert attrs[A.ENERGY_TOTAL] == pytest.approx(attrs[A.ENERGY_CPU] + attrs[A.ENERGY_IDLE])
    assert attrs[A.ENERGY_CPU] == pytest.approx(attrs[A.CPU_TIME] * 4.0, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"idle_policy": "all"}, "idle_policy"),
        ({"max_open_spans": 0}, "max_open_spans"),
        ({"max_open_spans": "10"}, "max_open_spans"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(ccf_sampler, kwargs, word):
    with pytest.raises(ValueError, match=word):
        CarbonSpanProcessor(sampler=ccf_sampler, **kwargs)


def test_wrapped_must_be_processors(ccf_sampler):
    with pytest.raises(ValueError, match="processors"):
        CarbonSpanProcessor("not a processor", sampler=ccf_sampler)  # type: ignore[arg-type]


def test_shutdown_and_flush_are_safe_twice(ccf_sampler):
    exporter = InMemorySpanExporter()
    carbon = CarbonSpanProcessor(BatchSpanProcessor(exporter), sampler=ccf_sampler)
    provider = provider_with(carbon)
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    assert carbon.force_flush(1000) is True
    assert len(exporter.get_finished_spans()) == 1
    provider.shutdown()
    provider.shutdown()
    carbon.shutdown()


def test_embodied_carbon_follows_the_spans_share_of_host_cpu_time():
    """Each span's embodied carbon is its CPU-seconds x the host's wall seconds per busy
    CPU-second (over the trailing price window) x the rate. Checked against the run's own
    ratio, so it holds while the host's other load stays steady: when the trailing ratio at
    the end of the run differs from the run's by more than 10 %, other processes changed the
    load meanwhile and the run is measured again (at most three times)."""
    rate_g_per_hour = 3600.0  # 1 g per second of host time
    for attempt in range(3):
        sensor = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=1)
        sampler = make_sampler([sensor], interval_s=0.02)
        exporter = InMemorySpanExporter()
        provider = provider_with(
            CarbonSpanProcessor(sampler=sampler, embodied_g_per_hour=rate_g_per_hour), SimpleSpanProcessor(exporter)
        )
        tracer = provider.get_tracer("t")
        try:
            burn_cpu_s(1.2)  # a trailing window of steady load
            first = sampler.ledger.latest
            for i in range(10):
                with tracer.start_as_current_span(f"w-{i}"):
                    burn_cpu_s(0.1)
            time.sleep(0.05)
            last = sampler.ledger.latest
        finally:
            sampler.shutdown()
        spans = exporter.get_finished_spans()
        embodied_g = sum(s.attributes[A.EMBODIED] for s in spans)
        span_cpu_s = sum(s.attributes[A.CPU_TIME] for s in spans)
        # The spans' share of the host's busy CPU time over the run, times the host time elapsed.
        host_s = (last.t_ns - first.t_ns) / 1e9
        share = span_cpu_s / (last.busy_s - first.busy_s)
        steady = abs(last.wall_s_per_busy_s / (host_s / (last.busy_s - first.busy_s)) - 1) <= 0.10
        if steady or attempt == 2:
            break
    assert all(s.attributes[A.EMBODIED] > 0 for s in spans)
    assert embodied_g == pytest.approx(rate_g_per_hour / 3600 * host_s * share, rel=0.15)


def test_embodied_is_absent_unless_configured(ccf_sampler):
    exporter = InMemorySpanExporter()
    provider = provider_with(CarbonSpanProcessor(sampler=ccf_sampler), SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("s"):
        pass
    assert A.EMBODIED not in exporter.get_finished_spans()[0].attributes
    with pytest.raises(ValueError, match="embodied_g_per_hour"):
        CarbonSpanProcessor(sampler=ccf_sampler, embodied_g_per_hour=-1)


def on_route(route, sampler):
    """(our processor, a provider, its in-memory exporter) on the drop-in or wrapping route."""
    exporter = InMemorySpanExporter()
    if route == "wrapping":
        carbon = CarbonSpanProcessor(SimpleSpanProcessor(exporter), sampler=sampler)
        return carbon, provider_with(carbon), exporter
    carbon = CarbonSpanProcessor(sampler=sampler)
    return carbon, provider_with(carbon, SimpleSpanProcessor(exporter)), exporter


@pytest.mark.parametrize("route", ["drop-in", "wrapping"])
def test_a_disabled_processor_passes_spans_through_untouched_and_can_be_turned_on_again(ccf_sampler, route):
    """A provider cannot drop a processor: ``enabled = False`` is how the instrumentor's
    uninstrument stops our work. Spans still reach the exporter (through the wrapped
    processors on the wrapping route), without figures; on again, they get figures."""
    carbon, provider, exporter = on_route(route, ccf_sampler)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("on"):
        burn_cpu_s(0.002)
    carbon.enabled = False
    with tracer.start_as_current_span("off"):
        assert carbon.open_spans == 0  # not tracked
        burn_cpu_s(0.002)
    assert not carbon.enabled and carbon.open_spans == 0
    open_while_off = tracer.start_span("opened-while-off")
    carbon.enabled = True
    open_while_off.end()  # never tracked: unavailable, still exported
    with tracer.start_as_current_span("on-again"):
        burn_cpu_s(0.002)
    by_name = {s.name: s.attributes for s in exporter.get_finished_spans()}
    assert set(by_name) == {"on", "off", "opened-while-off", "on-again"}
    assert not any(key.startswith("carbon.") for key in by_name["off"])
    for name in ("on", "on-again"):
        assert by_name[name][A.METHOD] == A.ESTIMATED and by_name[name][A.ENERGY_TOTAL] > 0
    assert by_name["opened-while-off"][A.METHOD] == A.UNAVAILABLE
    provider.shutdown()
    assert not carbon.enabled
    with pytest.raises(ValueError, match="shut down"):
        carbon.enable()


@pytest.mark.parametrize("route", ["drop-in", "wrapping"])
def test_a_listener_for_local_roots_is_not_called_for_children(ccf_sampler, route):
    """The meter sums one span per request (no parent, or a remote one): its listener says
    so, and a child span then costs no listener call; the child still gets its figures. A
    listener for every span beside it gets every span, and the first one still only roots."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    carbon, provider, exporter = on_route(route, ccf_sampler)
    roots, every = [], []
    carbon.add_listener(lambda span, figures: roots.append(span.name), local_roots_only=True)
    tracer = provider.get_tracer("test")
    remote = set_span_in_context(NonRecordingSpan(SpanContext(0xAB, 0xCD, is_remote=True, trace_flags=TraceFlags(1))))

    def run():
        with tracer.start_as_current_span("root"):
            with tracer.start_as_current_span("child"):
                burn_cpu_s(0.001)
        with tracer.start_as_current_span("remote-child", context=remote):
            pass

    run()
    assert roots == ["root", "remote-child"]
    every_listener = lambda span, figures: every.append(span.name)  # noqa: E731
    carbon.add_listener(every_listener)
    run()
    assert roots == ["root", "remote-child", "root", "remote-child"]
    assert every == ["child", "root", "remote-child"]
    carbon.remove_listener(every_listener)
    run()
    assert roots[-2:] == ["root", "remote-child"] and len(every) == 3
    for span in exporter.get_finished_spans():
        assert span.attributes[A.METHOD] == A.ESTIMATED, span.name
    provider.shutdown()
