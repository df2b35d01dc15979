"""CarbonMetrics through the SDK's InMemoryMetricReader: values match the spans' attributes
and the ledger's totals; the hooks (listener, tick listener, observable callbacks) behave."""

import math
import os
import subprocess
import sys
import time
from collections import defaultdict

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_carbon import attributes as A
from otel_carbon import config
from otel_carbon.intensity import Intensity
from otel_carbon.metrics import CarbonMetrics
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.sampler import Sampler
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.memory_model import memory_model_sensor
from otel_carbon.sensors.probe import Probe

if __package__:
    from .conftest import make_sampler
else:
    from conftest import make_sampler


def points(reader):
    """{metric name: [(attributes dict, data point)]}, and {metric name: unit}."""
    out, units = defaultdict(list), {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                units[metric.name] = metric.unit
                for point in metric.data.data_points:
                    out[metric.name].append((dict(point.attributes), point))
    return out, units


def burn(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


class Pipeline:
    """Tracer provider with a CarbonSpanProcessor and an in-memory exporter, meter provider
    with an in-memory reader, CarbonMetrics attached."""

    def __init__(self, sampler, wrapping=False, **metrics_kwargs):
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        if wrapping:
            self.processor = CarbonSpanProcessor(SimpleSpanProcessor(self.exporter), sampler=sampler)
            self.tracer_provider.add_span_processor(self.processor)
        else:
            self.processor = CarbonSpanProcessor(sampler=sampler)
            self.tracer_provider.add_span_processor(self.processor)
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.metrics = CarbonMetrics(self.meter_provider, sampler=sampler, **metrics_kwargs).attach(self.processor)
        self.tracer = self.tracer_provider.get_tracer("test")

    def close(self):
        self.metrics.shutdown()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def manual_sampler():
    """The CCF CPU line (a constant price per busy CPU-second), ticked only when the test
    says so (one baseline tick now): no thread, so nothing drains behind the test's back."""
    from otel_carbon.sensors.cpu_model import CpuModelSensor

    sensor = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=os.cpu_count() or 1)
    sampler = make_sampler([sensor], start=False)
    sampler.tick()
    yield sampler
    sampler.shutdown()


@pytest.fixture
def pipeline(manual_sampler):
    p = Pipeline(manual_sampler)
    yield p
    p.close()


def run_requests(tracer, n=12):
    for i in range(n):
        for route, cost, method in (("/light", 2_000, "GET"), ("/heavy", 8_000, "POST")):
            attrs = {
                "http.route": route,
                "http.request.method": method,
                "url.full": f"http://127.0.0.1/{route}?i={i}",  # high cardinality: must not reach metrics
                "user.id": f"user-{i}",
            }
            with tracer.start_as_current_span(f"{method} {route}", attributes=attrs):
                burn(cost)


def span_sums(spans, by="http.route"):
    energy, emissions, count = defaultdict(float), defaultdict(float), defaultdict(int)
    for span in spans:
        key = span.attributes.get(by)
        energy[key] += span.attributes[A.ENERGY_TOTAL]
        emissions[key] += span.attributes[A.EMISSIONS]
        count[key] += 1
    return energy, emissions, count


def by_set(got, name, key="http.route"):
    """{value of ``key``: summed point value} of one per-span counter."""
    out = defaultdict(float)
    for attrs, point in got[name]:
        out[attrs.get(key)] += point.value
    return dict(out)


def test_per_route_sums_equal_the_spans_attributes(pipeline):
    run_requests(pipeline.tracer)
    spans = pipeline.exporter.get_finished_spans()
    energy, emissions, count = span_sums(spans)
    assert set(energy) == {"/light", "/heavy"} and all(v > 0 for v in energy.values())

    got, units = points(pipeline.reader)
    assert (units[A.SPAN_ENERGY], units[A.SPAN_EMISSIONS], units[A.SPAN_COUNT]) == ("J", "g", "{span}")
    assert by_set(got, A.SPAN_COUNT) == {route: float(n) for route, n in count.items()}
    for route, total_j in by_set(got, A.SPAN_ENERGY).items():
        assert total_j == pytest.approx(energy[route], rel=1e-9)
    for route, total_g in by_set(got, A.SPAN_EMISSIONS).items():
        assert total_g == pytest.approx(emissions[route], rel=1e-9)
    for name in (A.SPAN_ENERGY, A.SPAN_EMISSIONS, A.SPAN_COUNT):
        assert len(got[name]) == 2  # one set per route: url.full and user.id never reach a metric
        for attrs, _ in got[name]:
            assert set(attrs) <= {A.SPAN_NAME, "http.route", "http.request.method", A.METHOD}, attrs
            assert attrs[A.SPAN_NAME] == f"{attrs['http.request.method']} {attrs['http.route']}"
            assert attrs[A.METHOD] == A.ESTIMATED
    assert A.SPAN_ENERGY_DISTRIBUTION not in got  # opt-in
    assert [p.value for _, p in got[A.SPAN_OVERFLOW]] == [0]
    # the more expensive route costs more (same price, 4x the work)
    assert energy["/heavy"] > energy["/light"]
    assert pipeline.metrics.recorded_spans == len(spans) and pipeline.metrics.dropped_spans == 0


def test_wrapping_processor_route(manual_sampler):
    p = Pipeline(manual_sampler, wrapping=True)
    try:
        run_requests(p.tracer, n=5)
        energy, _, count = span_sums(p.exporter.get_finished_spans())
        got, _ = points(p.reader)
        assert by_set(got, A.SPAN_COUNT) == {"/light": 5.0, "/heavy": 5.0}
        for route, total_j in by_set(got, A.SPAN_ENERGY).items():
            assert total_j == pytest.approx(energy[route], rel=1e-9)
    finally:
        p.close()


def test_opt_in_histogram_has_one_value_per_span(manual_sampler, monkeypatch):
    monkeypatch.setenv(config.OTEL_CARBON_METRIC_HISTOGRAM, "on")
    p = Pipeline(manual_sampler)
    try:
        run_requests(p.tracer, n=4)
        energy, _, count = span_sums(p.exporter.get_finished_spans())
        assert p.metrics._spans.queued == 8  # recorded by the sampler thread or the collection
        got, units = points(p.reader)
        assert units[A.SPAN_ENERGY_DISTRIBUTION] == "J"
        for attrs, point in got[A.SPAN_ENERGY_DISTRIBUTION]:
            assert point.count == count[attrs["http.route"]] == 4
            assert point.sum == pytest.approx(energy[attrs["http.route"]], rel=1e-9)
        assert {a["http.route"] for a, _ in got[A.SPAN_ENERGY_DISTRIBUTION]} == {"/light", "/heavy"}
        assert by_set(got, A.SPAN_COUNT) == {"/light": 4.0, "/heavy": 4.0}  # the counters as ever
    finally:
        p.close()


def test_old_http_method_and_extended_allowlist(manual_sampler, monkeypatch):
    monkeypatch.setenv(config.OTEL_CARBON_METRIC_SPAN_ATTRIBUTES, " deployment.tier , user.id,, tenant")
    p = Pipeline(manual_sampler, span_attribute_allowlist=["tenant", "queue.name"])
    try:
        assert p.metrics.span_attributes == (
            "http.route", "http.request.method", "rpc.service", "rpc.method", "tenant", "queue.name", "deployment.tier",
        )  # user.id from the environment is refused (logged), duplicates dropped
        with p.tracer.start_as_current_span("GET /a", attributes={"http.route": "/a", "http.method": "GET", "tenant": "t1", "user.id": "u"}):
            burn(1000)
        with p.tracer.start_as_current_span("Check", attributes={"rpc.service": "grpc.health.v1.Health", "rpc.method": "Check", "deployment.tier": "gold"}):
            burn(1000)
        got, _ = points(p.reader)
        attrs = sorted((a for a, _ in got[A.SPAN_ENERGY]), key=lambda a: a[A.SPAN_NAME])
        assert attrs == [
            {A.SPAN_NAME: "Check", "rpc.service": "grpc.health.v1.Health", "rpc.method": "Check", "deployment.tier": "gold", A.METHOD: A.ESTIMATED},
            {A.SPAN_NAME: "GET /a", "http.route": "/a", "http.request.method": "GET", "tenant": "t1", A.METHOD: A.ESTIMATED},
        ]
    finally:
        p.close()


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"max_queue": 0}, "max_queue"),
        ({"max_queue": True}, "max_queue"),
        ({"max_queue": 1.5}, "max_queue"),
        ({"span_attribute_allowlist": "http.route"}, "span_attribute_allowlist"),
        ({"span_attribute_allowlist": [3]}, "span_attribute_allowlist"),
        ({"span_attribute_allowlist": ["url.full"]}, "span_attribute_allowlist"),
        ({"span_attribute_allowlist": ["http.target"]}, "span_attribute_allowlist"),
        ({"span_attribute_allowlist": ["session.id"]}, "span_attribute_allowlist"),
        ({"sampler": object()}, "sampler"),
        ({"cardinality_limit": 0}, "cardinality_limit"),
        ({"cardinality_limit": 2.5}, "cardinality_limit"),
        ({"histogram": "on"}, "histogram"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        CarbonMetrics(MeterProvider(), **kwargs)


def test_bad_meter_provider_and_processor(manual_sampler):
    with pytest.raises(ValueError, match="meter_provider"):
        CarbonMetrics(object(), sampler=manual_sampler)
    m = CarbonMetrics(MeterProvider(), sampler=manual_sampler)
    with pytest.raises(ValueError, match="processor"):
        m.attach(object())
    m.shutdown()


def test_full_histogram_queue_drops_and_counts_and_unavailable_spans_are_skipped(manual_sampler):
    idle = make_sampler(manual_sampler.sensors, start=False)  # no ticks: no drains, no figures
    p = Pipeline(idle, max_queue=3, histogram=True)
    try:
        for i in range(2):  # no ledger tick yet: carbon.method=unavailable, nothing to record
            with p.tracer.start_as_current_span("early"):
                pass
        assert p.metrics.recorded_spans == 0 and p.metrics._spans.queued == 0
        idle.tick()  # a baseline; ticks of a stopped sampler happen only when called
        p.metrics._spans._queue.clear()
        for i in range(5):
            with p.tracer.start_as_current_span("late", attributes={"http.route": "/x"}):
                burn(500)
        assert p.metrics.dropped_spans == 2
        got, _ = points(p.reader)
        assert [pt.count for a, pt in got[A.SPAN_ENERGY_DISTRIBUTION]] == [3]
        assert all(a[A.SPAN_NAME] == "late" for a, _ in got[A.SPAN_ENERGY_DISTRIBUTION])
        assert [pt.value for a, pt in got[A.SPAN_COUNT]] == [5]  # the counters miss none
    finally:
        p.close()
        idle.shutdown()


def test_each_sampler_tick_drains_the_histogram_queue(manual_sampler):
    sampler = manual_sampler
    p = Pipeline(sampler, histogram=True)
    try:
        for _ in range(4):
            with p.tracer.start_as_current_span("s"):
                burn(200)
        assert p.metrics._spans.queued == 4 and p.metrics.recorded_spans == 4
        sampler.tick()  # the tick listener drains on the sampler's thread (here: this one)
        assert p.metrics._spans.queued == 0
    finally:
        p.close()


def test_tick_listeners_are_called_isolated_and_removable(manual_sampler):
    sampler = make_sampler(manual_sampler.sensors, start=False)
    seen = []

    def bad(tick):
        raise RuntimeError("listener bug")

    def good(tick):
        seen.append(tick)

    sampler.add_tick_listener(bad)
    sampler.add_tick_listener(good)
    tick = sampler.tick()
    assert tick is not None and seen == [tick] and sampler.ledger.latest is tick
    sampler.remove_tick_listener(good)
    sampler.remove_tick_listener(bad)
    sampler.tick()
    assert len(seen) == 1


class _SwitchableIntensity:
    def __init__(self, g_per_kwh):
        self.value = Intensity(g_per_kwh=g_per_kwh, zone="Z1", pue=1.0, source="test")

    def current(self):
        return self.value

    def shutdown(self):
        pass


def test_hardware_process_and_intensity_instruments_follow_the_ledger():
    cpu = ConstantPowerSensor(power_w=40.0, idle_power_w=10.0)
    memory = memory_model_sensor(8_000_000_000)  # 3.136 W, all static
    intensity = _SwitchableIntensity(100.0)
    sampler = Sampler(Probe(sensors=[cpu, memory]), interval_s=0.05, intensity=intensity)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = CarbonMetrics(provider, sampler=sampler)
    try:
        for step in range(8):
            if step == 4:
                intensity.value = Intensity(g_per_kwh=300.0, zone="Z2", pue=1.5, source="test")
            burn(150_000)  # ~10 ms of process CPU time (/proc/stat counts in 10 ms steps)
            sampler.tick()
            time.sleep(0.01)
        ticks = sampler.ledger.ticks()
        first, last = ticks[0], ticks[-1]
        dt_s = (last.t_ns - first.t_ns) / 1e9
        got, units = points(reader)

        def one(name, **attrs):
            found = [p for a, p in got[name] if all(a.get(k) == v for k, v in attrs.items())]
            assert len(found) == 1, (name, attrs, got[name])
            return found[0].value

        assert units[A.HW_ENERGY] == "J" and units[A.HW_POWER] == "W" and units[A.GRID_INTENSITY] == "g/kWh"
        hw = {a[A.HW_ID]: a for a, _ in got[A.HW_ENERGY]}
        assert hw["constant-power"] == {A.HW_TYPE: "cpu", A.HW_ID: "constant-power", A.HW_NAME: "constant", A.METHOD: A.ESTIMATED}
        assert hw["memory-model"][A.HW_TYPE] == "memory"
        assert one(A.HW_ENERGY, **{A.HW_TYPE: "cpu"}) == pytest.approx(40.0 * dt_s, rel=1e-9)
        assert one(A.HW_ENERGY, **{A.HW_TYPE: "memory"}) == pytest.approx(memory.power_w * dt_s, rel=1e-9)
        assert one(A.HW_POWER, **{A.HW_TYPE: "cpu"}) == pytest.approx(40.0, rel=1e-9)
        assert one(A.HW_POWER, **{A.HW_TYPE: "memory"}) == pytest.approx(memory.power_w, rel=1e-9)
        assert one(A.HW_HOST_ENERGY) == pytest.approx((40.0 + memory.power_w) * dt_s, rel=1e-9)
        assert one(A.HW_HOST_POWER) == pytest.approx(40.0 + memory.power_w, rel=1e-9)
        assert one(A.HOST_ENERGY, **{A.HW_TYPE: "cpu", A.POWER_STATE: A.IDLE}) == pytest.approx(10.0 * dt_s, rel=1e-9)
        assert one(A.HOST_ENERGY, **{A.HW_TYPE: "cpu", A.POWER_STATE: A.ACTIVE}) == pytest.approx(30.0 * dt_s, rel=1e-9)
        assert one(A.HOST_ENERGY, **{A.HW_TYPE: "memory", A.POWER_STATE: A.ACTIVE}) == 0.0

        # the process: its charged active energy per component, and the CO2e of it tick by tick
        assert last.charged_j > 0
        assert one(A.PROCESS_ENERGY, **{A.HW_TYPE: "cpu"}) == pytest.approx(last.charged_by_j[0], rel=1e-12)
        assert sum(last.charged_by_j) == pytest.approx(last.charged_j, rel=1e-9)
        expected_g = sum(
            (b.charged_j - a.charged_j) * b.intensity.g_per_kwh * b.intensity.pue / A.JOULES_PER_KWH
            for a, b in zip(ticks, ticks[1:])
        )
        assert one(A.PROCESS_EMISSIONS) == pytest.approx(expected_g, rel=1e-9)
        assert expected_g > last.charged_j * 100.0 / A.JOULES_PER_KWH  # the later, dirtier ticks count more
        assert one(A.GRID_INTENSITY) == 300.0 and got[A.GRID_INTENSITY][0][0] == {A.ZONE: "Z2"}
    finally:
        metrics.shutdown()
        provider.shutdown()
        sampler.shutdown()


def test_shutdown_is_idempotent_detaches_and_silences(manual_sampler):
    p = Pipeline(manual_sampler)
    try:
        with p.tracer.start_as_current_span("before"):
            burn(500)
        p.metrics.shutdown()
        p.metrics.shutdown()
        assert p.metrics.recorded_spans == 1
        assert p.metrics._tick_listener not in manual_sampler._tick_listeners
        with p.tracer.start_as_current_span("after"):
            burn(500)
        assert p.metrics.recorded_spans == 1
        got, _ = points(p.reader)
        for name in (A.HW_ENERGY, A.HW_POWER, A.PROCESS_ENERGY, A.GRID_INTENSITY):
            assert name not in got
        # the sums so far stay readable (a last collection at the provider's shutdown)
        assert [a[A.SPAN_NAME] for a, _ in got[A.SPAN_ENERGY]] == ["before"]
        with pytest.raises(ValueError, match="shutdown"):
            p.metrics.attach(p.processor)
    finally:
        p.close()


_GLOBAL_PROVIDER_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[1])
from conftest import make_sampler
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from otel_carbon import CarbonSpanProcessor
from otel_carbon.metrics import CarbonMetrics
from otel_carbon.sensors.constant import ConstantPowerSensor

sampler = make_sampler([ConstantPowerSensor(power_w=20.0)])
processor = CarbonSpanProcessor(sampler=sampler)
tracer_provider = TracerProvider()
tracer_provider.add_span_processor(processor)
carbon = CarbonMetrics(sampler=sampler).attach(processor)  # before the application sets it
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
with tracer_provider.get_tracer("t").start_as_current_span("work", attributes={"http.route": "/g"}) as span:
    sum(i * i for i in range(20000))
expected = span.attributes["carbon.energy.total"]
got = {}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            got[m.name] = list(m.data.data_points)
(point,) = got["carbon.span.energy"]
(count,) = got["carbon.span.count"]
assert count.value == 1 and abs(point.value - expected) <= 1e-12 * expected, (point, expected)
assert dict(point.attributes)["http.route"] == "/g"
assert "hw.energy" in got and "carbon.grid.intensity" in got, sorted(got)
print("OK")
"""


def test_global_meter_provider_set_after_the_meter_is_made():
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run(
        [sys.executable, "-c", _GLOBAL_PROVIDER_SCRIPT, tests_dir],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "OK", result.stderr


def test_ledger_charged_by_component_sums_to_charged():
    sampler = make_sampler(
        [ConstantPowerSensor(power_w=30.0), ConstantPowerSensor(power_w=5.0, component="memory", name="m")], start=False
    )
    for _ in range(5):
        burn(150_000)  # ~10 ms: /proc/stat counts host busy time in 10 ms steps
        sampler.tick()
    last = sampler.ledger.latest
    assert len(last.charged_by_j) == 2 and all(c > 0 for c in last.charged_by_j)
    assert math.isclose(sum(last.charged_by_j), last.charged_j, rel_tol=1e-9)
    # split in proportion to each component's price
    assert last.charged_by_j[0] / last.charged_by_j[1] == pytest.approx(6.0, rel=0.05)
    sampler.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_fresh_locks_and_carries_the_sums_on(pipeline):
    with pipeline.tracer.start_as_current_span("parent-span"):
        burn(200)
    pipeline.metrics._spans._lock.acquire()  # as if a span were being summed at fork time
    try:
        pid = os.fork()
        if pid == 0:  # child: report through the exit status only
            ok = False
            try:
                ok = pipeline.metrics.recorded_spans == 1
                with pipeline.tracer.start_as_current_span("child-span"):  # the lock was held at fork
                    burn(200)
                ok = ok and pipeline.metrics.recorded_spans == 2
                got, _ = points(pipeline.reader)
                ok = ok and sorted(a[A.SPAN_NAME] for a, _ in got[A.SPAN_ENERGY]) == ["child-span", "parent-span"]
            finally:
                os._exit(0 if ok else 1)
    finally:
        pipeline.metrics._spans._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    got, _ = points(pipeline.reader)  # the parent still has its own span
    assert [a[A.SPAN_NAME] for a, _ in got[A.SPAN_ENERGY]] == ["parent-span"]


def test_gpu_through_fake_nvml_reports_device_and_process_energy():
    if __package__:
        from .fake_nvml import FakeDevice, FakeNvml
    else:
        from fake_nvml import FakeDevice, FakeNvml
    from otel_carbon.sensors.nvml import probe_nvml

    device = FakeDevice("volta", name="NVIDIA Fake H200", energy_mj=5_000_000)  # counter since driver load
    (gpu,), diagnostics = probe_nvml(FakeNvml([device]))
    assert diagnostics == []
    cpu = ConstantPowerSensor(power_w=20.0)
    sampler = Sampler(Probe(sensors=[cpu, gpu]), interval_s=0.05, intensity=_SwitchableIntensity(100.0))
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = CarbonMetrics(provider, sampler=sampler)
    try:
        steps_mj = [0, 1_500, 2_500, 700, 4_000]
        for step_mj in steps_mj:
            device.energy_mj += step_mj
            sampler.tick()
            time.sleep(0.01)
        ticks = sampler.ledger.ticks()
        dt_s = (ticks[-1].t_ns - ticks[0].t_ns) / 1e9
        device_j = sum(steps_mj) / 1000.0  # since the meter first saw the device
        got, _ = points(reader)
        by_type = {a[A.HW_TYPE]: (a, p.value) for a, p in got[A.HW_ENERGY]}
        attrs, energy_j = by_type["gpu"]
        assert attrs == {A.HW_TYPE: "gpu", A.HW_ID: "gpu0", A.HW_NAME: "NVIDIA Fake H200", A.METHOD: A.MEASURED}
        assert energy_j == pytest.approx(device_j, rel=1e-9)
        (gpu_power,) = [p.value for a, p in got[A.HW_POWER] if a[A.HW_TYPE] == "gpu"]
        assert gpu_power == pytest.approx(device_j / dt_s, rel=1e-9)
        (host_j,) = [p.value for _, p in got[A.HW_HOST_ENERGY]]
        assert host_j == pytest.approx(20.0 * dt_s + device_j, rel=1e-9)
        (host,) = [a for a, _ in got[A.HW_HOST_ENERGY]]
        assert host[A.METHOD] == A.MIXED  # an estimated CPU and a measured GPU
        (process_gpu,) = [p.value for a, p in got[A.PROCESS_ENERGY] if a[A.HW_TYPE] == "gpu"]
        assert process_gpu == pytest.approx(ticks[-1].gpu_proc_j, rel=1e-12) and process_gpu > 0
    finally:
        metrics.shutdown()
        provider.shutdown()
        sampler.shutdown()
        gpu.close()


@pytest.mark.parametrize("spans, expected_names", [("local_root", {"request"}), ("all", {"request", "child"})])
def test_span_metrics_take_local_roots_by_default(manual_sampler, spans, expected_names):
    """A parent's figures include its children's: by default only local roots (no parent,
    or a remote one) feed the per-span metrics, so their sums count nothing twice."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

    p = Pipeline(manual_sampler, spans=spans)
    try:
        remote = SpanContext(trace_id=0x1234, span_id=0x5678, is_remote=True, trace_flags=TraceFlags(1))
        with p.tracer.start_as_current_span("request", context=set_span_in_context(NonRecordingSpan(remote))):
            with p.tracer.start_as_current_span("child"):
                burn(20000)
        p.metrics.drain()
        found, _ = points(p.reader)
        names = {attrs["span.name"] for attrs, _ in found["carbon.span.energy"]}
        assert names == expected_names
        spans_by_name = {s.name: s.attributes for s in p.exporter.get_finished_spans()}
        (root_point,) = [pt for attrs, pt in found["carbon.span.energy"] if attrs["span.name"] == "request"]
        assert root_point.value == pytest.approx(spans_by_name["request"]["carbon.energy.total"])
    finally:
        p.close()


def test_span_metrics_selection_is_validated(manual_sampler):
    with pytest.raises(ValueError, match="spans"):
        CarbonMetrics(MeterProvider(), sampler=manual_sampler, spans="roots")


def test_cardinality_cap_bounds_memory_with_an_overflow_set_and_a_counter(manual_sampler, monkeypatch):
    """10,000 distinct routes (an allow-listed attribute holding raw URLs, as a misconfigured
    service would send): the table stops at the limit, the rest is summed into the overflow
    set, and memory stops growing with the number of distinct values."""
    import gc
    import tracemalloc

    monkeypatch.setenv(config.OTEL_CARBON_METRIC_CARDINALITY_LIMIT, "2000")
    p = Pipeline(manual_sampler, span_attribute_allowlist=["page"])
    padding = "x" * 400  # a long raw URL: 7,500 of them kept would be ~3 MB

    def requests(first, last):
        for i in range(first, last):
            with p.tracer.start_as_current_span("GET", attributes={"page": f"/item/{i}?{padding}"}):
                pass
            p.exporter.clear()  # the test's exporter keeps no span

    try:
        requests(0, 2500)  # past the limit already
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            requests(2500, 10_000)
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert grown < 500_000, grown  # bounded: 7,500 more distinct values kept would be > 3 MB
        assert p.metrics._spans.attribute_sets == 2000 and len(p.metrics._spans._cells) == 1999
        assert p.metrics.recorded_spans == 10_000 and p.metrics.overflowed_spans == 8001
        got, _ = points(p.reader)
        for name in (A.SPAN_ENERGY, A.SPAN_EMISSIONS, A.SPAN_COUNT):
            assert len(got[name]) == 2000, name  # the limit, the overflow set included
        (overflow,) = [pt for a, pt in got[A.SPAN_COUNT] if a == {A.METRIC_OVERFLOW: True}]
        assert overflow.value == 8001
        assert sum(pt.value for _, pt in got[A.SPAN_COUNT]) == 10_000  # no span lost
        assert [pt.value for _, pt in got[A.SPAN_OVERFLOW]] == [8001]
    finally:
        p.close()
