"""otel_carbon.configure(): providers from the standard OTEL_* variables, our processor and
meter added, idempotent, never replacing a provider the application set.

Each test starts from OpenTelemetry's initial state (no global provider, only the API's
proxies) and no process-wide sampler, and restores the previous state afterwards.
"""

from __future__ import annotations

import logging
import os

import pytest
from opentelemetry import metrics as metrics_api
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_carbon
from otel_carbon import _log
from otel_carbon import attributes as A
from otel_carbon import config
from otel_carbon import provider_registry
from otel_carbon import process_sampler as sampler_module
from otel_carbon import exporter_names
from otel_carbon import setup as carbon_setup
from otel_carbon.intensity import bundled
from otel_carbon.processor import CarbonSpanProcessor


def _busy(n: int = 20000) -> None:
    import hashlib

    digest = b"x"
    for _ in range(n):
        digest = hashlib.sha256(digest).digest()


@pytest.fixture
def fresh_otel(monkeypatch):
    """No global providers, no configure() setup, no sampler; OTEL_* variables cleared."""
    import opentelemetry.metrics._internal as metrics_internal
    import opentelemetry.trace as trace_module
    from opentelemetry.util._once import Once

    for key in list(__import__("os").environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv(config.OTEL_CARBON_NVML, "off")
    monkeypatch.setenv(config.OTEL_CARBON_COUNTRY, "FR")
    saved = (trace_module._TRACER_PROVIDER, trace_module._TRACER_PROVIDER_SET_ONCE,
             metrics_internal._METER_PROVIDER, metrics_internal._METER_PROVIDER_SET_ONCE)
    trace_module._TRACER_PROVIDER, trace_module._TRACER_PROVIDER_SET_ONCE = None, Once()
    metrics_internal._METER_PROVIDER, metrics_internal._METER_PROVIDER_SET_ONCE = None, Once()
    carbon_setup._reset_for_tests()
    old_sampler = sampler_module.set_sampler(None)
    _log.reset_for_tests()
    try:
        yield
    finally:
        current = carbon_setup.current_setup()
        if current is not None:
            current.shutdown()
        carbon_setup._reset_for_tests()
        for provider in (trace_module._TRACER_PROVIDER, metrics_internal._METER_PROVIDER):
            if provider is not None and hasattr(provider, "shutdown"):
                provider.shutdown()
        (trace_module._TRACER_PROVIDER, trace_module._TRACER_PROVIDER_SET_ONCE,
         metrics_internal._METER_PROVIDER, metrics_internal._METER_PROVIDER_SET_ONCE) = saved
        ours = sampler_module.set_sampler(old_sampler)
        if ours is not None and ours is not old_sampler:
            ours.shutdown()


@pytest.fixture
def console_out(monkeypatch):
    """What ConsoleSpanExporters made without an ``out`` argument (as from the entry
    point) write: its default is the sys.stdout of import time, out of capfd's reach."""
    import io

    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    buffer = io.StringIO()
    service_name, _, formatter = ConsoleSpanExporter.__init__.__defaults__
    monkeypatch.setattr(ConsoleSpanExporter.__init__, "__defaults__", (service_name, buffer, formatter))
    return buffer


def _carbon(attributes) -> dict:
    return {k: v for k, v in (attributes or {}).items() if k.startswith("carbon.")}


def _assert_figures(attributes, zone="FR") -> None:
    expected = bundled.country(zone).intensity
    assert attributes[A.METHOD] not in (None, A.UNAVAILABLE), attributes
    assert attributes[A.CPU_TIME] > 0 and attributes[A.ENERGY_TOTAL] > 0, attributes
    assert attributes[A.ZONE] == expected.zone and attributes[A.INTENSITY] == expected.g_per_kwh


@pytest.mark.parametrize("protocol, transport", [("grpc", "grpc"), ("http/protobuf", "http")])
def test_configure_exports_spans_and_metrics_from_env(otlp_receiver, fresh_otel, monkeypatch, protocol, transport):
    endpoint = f"http://{otlp_receiver.grpc_endpoint}" if transport == "grpc" else otlp_receiver.http_endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "60000")  # only force_flush exports
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,service.name=from-env")

    setup = otel_carbon.configure(service_name="checkout")
    assert setup.owns_tracer_provider and setup.owns_meter_provider
    assert trace.get_tracer_provider() is setup.tracer_provider
    assert metrics_api.get_meter_provider() is setup.meter_provider
    assert isinstance(setup.processor, CarbonSpanProcessor) and setup.metrics is not None
    with trace.get_tracer("t").start_as_current_span("work"):
        _busy()
    assert setup.force_flush(10_000)

    spans = otlp_receiver.spans("work")  # already there: force_flush returned
    assert len(spans) == 1 and spans[0]["transport"] == transport
    _assert_figures(spans[0]["attributes"])
    resource = spans[0]["resource"]
    assert resource["service.name"] == "checkout"  # the argument beats the environment
    assert resource["deployment.environment"] == "test"
    names = {m["name"] for m in otlp_receiver.metrics()}
    assert {A.HW_ENERGY, A.SPAN_ENERGY} <= names, names
    span_energy = [m for m in otlp_receiver.metrics(A.SPAN_ENERGY) if m["attributes"].get(A.SPAN_NAME) == "work"]
    span_count = [m for m in otlp_receiver.metrics(A.SPAN_COUNT) if m["attributes"].get(A.SPAN_NAME) == "work"]
    assert span_count and span_count[-1]["value"] == 1
    assert span_energy[-1]["value"] == pytest.approx(spans[0]["attributes"][A.ENERGY_TOTAL])


def test_configure_is_idempotent(fresh_otel, caplog):
    memory = InMemorySpanExporter()
    first = otel_carbon.configure(traces_exporter=memory, metrics=False)
    assert otel_carbon.configure(traces_exporter=memory, metrics=False) is first
    assert carbon_setup.current_setup() is first
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        assert otel_carbon.configure(service_name="other") is first
        assert otel_carbon.configure(service_name="again") is first
    assert sum("already called" in r.getMessage() for r in caplog.records) == 1
    with trace.get_tracer("t").start_as_current_span("once"):
        _busy()
    first.force_flush()
    assert [s.name for s in memory.get_finished_spans()] == ["once"]  # one processor, one exporter
    _assert_figures(memory.get_finished_spans()[0].attributes)


def test_configure_adds_to_the_applications_providers(fresh_otel, monkeypatch, console_out):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")  # the application's own setup wins
    app_spans = InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(app_spans))
    trace.set_tracer_provider(app_provider)
    reader = InMemoryMetricReader()
    app_meters = MeterProvider(metric_readers=[reader])
    metrics_api.set_meter_provider(app_meters)

    setup = otel_carbon.configure(service_name="ignored-for-app-provider")
    assert setup.tracer_provider is app_provider and not setup.owns_tracer_provider
    assert setup.meter_provider is app_meters and not setup.owns_meter_provider
    assert trace.get_tracer_provider() is app_provider
    with trace.get_tracer("t").start_as_current_span("app-span"):
        _busy()
    finished = app_spans.get_finished_spans()
    assert len(finished) == 1
    _assert_figures(finished[0].attributes)
    setup.metrics.drain()
    data = reader.get_metrics_data()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert A.SPAN_ENERGY in names
    assert "app-span" not in console_out.getvalue()  # no console exporter was added

    setup.shutdown()  # ours off; the application's provider keeps working without it
    setup.shutdown()
    with trace.get_tracer("t").start_as_current_span("after"):
        _busy(100)
    after = app_spans.get_finished_spans()[-1]
    assert after.name == "after" and _carbon(after.attributes) == {}


def test_explicit_exporter_is_added_to_an_application_provider(fresh_otel):
    app_provider = TracerProvider()
    trace.set_tracer_provider(app_provider)
    mine = InMemorySpanExporter()
    otel_carbon.configure(traces_exporter=mine, metrics=False).force_flush()
    with trace.get_tracer("t").start_as_current_span("s"):
        _busy()
    app_provider.force_flush()
    assert [s.name for s in mine.get_finished_spans()] == ["s"]


def test_exporter_names_objects_and_lists(fresh_otel, console_out):
    memory = InMemorySpanExporter()
    setup = otel_carbon.configure(traces_exporter=["console", memory], metrics_exporter="none")
    assert setup.meter_provider is None and setup.metrics is None  # no reader: no meter provider
    with trace.get_tracer("t").start_as_current_span("listed"):
        _busy()
    setup.force_flush()
    assert [s.name for s in memory.get_finished_spans()] == ["listed"]
    out = console_out.getvalue()
    assert '"name": "listed"' in out and A.ENERGY_TOTAL in out


def test_metrics_exporter_reader_object(fresh_otel):
    reader = InMemoryMetricReader()
    setup = otel_carbon.configure(traces_exporter="none", metrics_exporter=reader)
    assert setup.owns_meter_provider and setup.metrics is not None
    with trace.get_tracer("t").start_as_current_span("measured"):
        _busy()
    setup.metrics.drain()
    points = [
        p for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        if m.name == A.SPAN_COUNT for p in m.data.data_points
    ]
    assert points and points[0].attributes[A.SPAN_NAME] == "measured" and points[0].value == 1


def test_otel_carbon_metrics_off_and_metrics_argument(fresh_otel, monkeypatch):
    monkeypatch.setenv(config.OTEL_CARBON_METRICS, "off")
    setup = otel_carbon.configure(traces_exporter="none", metrics_exporter=InMemoryMetricReader(), set_global=False)
    assert setup.metrics is None and setup.meter_provider is None
    setup.shutdown()
    setup = otel_carbon.configure(traces_exporter="none", metrics_exporter=InMemoryMetricReader(), metrics=True,
                                  set_global=False)
    assert setup.metrics is not None  # the argument beats the environment
    setup.shutdown()


def test_set_global_false_builds_private_providers(fresh_otel):
    a = otel_carbon.configure(traces_exporter="none", metrics=False, set_global=False)
    b = otel_carbon.configure(traces_exporter="none", metrics=False, set_global=False)
    assert a is not b and a.tracer_provider is not b.tracer_provider
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert carbon_setup.current_setup() is None
    a.shutdown()
    b.shutdown()


def test_resource_region_sets_the_intensity_of_the_first_span(fresh_otel, monkeypatch):
    monkeypatch.delenv(config.OTEL_CARBON_COUNTRY)
    memory = InMemorySpanExporter()
    setup = otel_carbon.configure(
        traces_exporter=memory, metrics=False,
        resource_attributes={"cloud.provider": "gcp", "cloud.region": "europe-west1"},
    )
    with trace.get_tracer("t").start_as_current_span("first"):
        _busy()
    setup.force_flush()
    expected = bundled.cloud("gcp", "europe-west1").intensity
    attributes = memory.get_finished_spans()[0].attributes
    assert attributes[A.ZONE] == expected.zone and attributes[A.INTENSITY] == expected.g_per_kwh
    assert attributes[A.EMISSIONS] == pytest.approx(
        attributes[A.ENERGY_TOTAL] * expected.pue * expected.g_per_kwh / A.JOULES_PER_KWH
    )


@pytest.mark.parametrize(
    "kwargs, named",
    [
        ({"service_name": ""}, "service_name"),
        ({"service_name": 3}, "service_name"),
        ({"traces_exporter": "no-such-exporter"}, "traces_exporter"),
        ({"traces_exporter": 42}, "traces_exporter"),
        ({"traces_exporter": ["console", 1]}, "traces_exporter"),
        ({"metrics_exporter": object()}, "metrics_exporter"),
        ({"metrics_exporter": "no-such-exporter"}, "metrics_exporter"),
        ({"metrics": "yes"}, "metrics"),
        ({"resource_attributes": [("a", 1)]}, "resource_attributes"),
        ({"span_attribute_allowlist": "http.route"}, "span_attribute_allowlist"),
        ({"span_attribute_allowlist": ["url.full"]}, "span_attribute_allowlist"),
        ({"set_global": "no"}, "set_global"),
    ],
)
def test_bad_arguments_raise_before_anything_is_set(fresh_otel, kwargs, named):
    with pytest.raises(ValueError, match=named):
        otel_carbon.configure(**kwargs)
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not isinstance(metrics_api.get_meter_provider(), MeterProvider)
    assert carbon_setup.current_setup() is None


def test_unknown_exporter_lists_the_installed_ones(fresh_otel):
    with pytest.raises(ValueError, match="installed: .*console.*otlp"):
        otel_carbon.configure(traces_exporter="jaeger-thrift-nope")


def test_bad_environment_is_logged_and_skipped(fresh_otel, monkeypatch, caplog, console_out):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "nope, console")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        setup = otel_carbon.configure()
    messages = [r.getMessage() for r in caplog.records]
    assert any("OTEL_TRACES_EXPORTER" in m and "'nope'" in m for m in messages), messages
    with trace.get_tracer("t").start_as_current_span("still-exported"):
        _busy(100)
    setup.force_flush()
    assert '"name": "still-exported"' in console_out.getvalue()


def test_unsupported_protocol_is_logged_and_grpc_used(fresh_otel, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        exporters = exporter_names.span_exporters("otlp")
    assert type(exporters[0]).__module__ == "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
    assert any("http/json" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")  # the per-signal variable wins
    assert type(exporter_names.span_exporters("otlp")[0]).__module__ == "opentelemetry.exporter.otlp.proto.http.trace_exporter"
    for exporter in exporters:
        exporter.shutdown()


def test_force_flush_checks_its_argument(fresh_otel):
    setup = otel_carbon.configure(traces_exporter="none", metrics=False)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="timeout_millis"):
            setup.force_flush(bad)
    assert setup.force_flush(0) in (True, False)


def test_configure_is_exported_lazily():
    assert otel_carbon.configure is carbon_setup.configure
    assert "configure" in otel_carbon.__all__


def test_a_failing_meter_leaves_the_spans_working(fresh_otel, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("meter exploded")

    monkeypatch.setattr(provider_registry, "metrics_class", lambda: broken)
    memory = InMemorySpanExporter()
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        setup = otel_carbon.configure(traces_exporter=memory, metrics_exporter=InMemoryMetricReader())
    assert setup.metrics is None and any("meter exploded" in r.getMessage() for r in caplog.records)
    with trace.get_tracer("t").start_as_current_span("fine"):
        _busy()
    setup.force_flush()
    _assert_figures(memory.get_finished_spans()[0].attributes)


def test_each_process_gets_its_own_service_instance_id(fresh_otel, monkeypatch):
    import subprocess
    import sys
    import uuid

    setup = otel_carbon.configure(traces_exporter="none", metrics=False, set_global=False)
    instance = setup.tracer_provider.resource.attributes["service.instance.id"]
    assert uuid.UUID(instance).version == 4
    setup.shutdown()
    # another process that calls configure() gets another one
    code = (
        "import otel_carbon; s = otel_carbon.configure(traces_exporter='none', metrics=False, set_global=False); "
        "print(s.tracer_provider.resource.attributes['service.instance.id']); s.shutdown()"
    )
    env = {k: v for k, v in os.environ.items() if k != "OTEL_RESOURCE_ATTRIBUTES"}
    other = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert other.returncode == 0, other.stderr
    assert uuid.UUID(other.stdout.strip()) != uuid.UUID(instance)
    # one the user set is kept, from the environment or an argument
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7")
    setup = otel_carbon.configure(traces_exporter="none", metrics=False, set_global=False)
    assert setup.tracer_provider.resource.attributes["service.instance.id"] == "pod-7"
    setup.shutdown()
    setup = otel_carbon.configure(
        traces_exporter="none", metrics=False, set_global=False, resource_attributes={"service.instance.id": "w1"}
    )
    assert setup.tracer_provider.resource.attributes["service.instance.id"] == "w1"
    setup.shutdown()


def test_configure_racing_get_sampler_in_many_threads_shares_one_sampler(fresh_otel):
    """configure() (which builds the sampler from its Resource) and code that takes the
    process-wide sampler (a processor, a tracker), at once in many threads with no sampler
    yet: everyone gets the same one and no second sampler thread runs. Several rounds, with
    the threads changing hands as often as the interpreter allows."""
    import sys
    import threading

    def race() -> "tuple[list, list]":
        before = set(threading.enumerate())
        gate = threading.Barrier(16)
        got, setups = [], []

        def build() -> None:
            gate.wait(10)
            setups.append(otel_carbon.configure(traces_exporter="none", metrics=False, set_global=False))
            got.append(setups[-1].sampler)

        def take() -> None:
            gate.wait(10)
            got.append(sampler_module.get_sampler())

        threads = [threading.Thread(target=build if i % 2 else take) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        threads_now = [t for t in threading.enumerate() if t not in before and t.name == "otel-carbon-sampler"]
        for setup in setups:
            setup.shutdown()
        for sampler in {id(s): s for s in got}.values():
            sampler.shutdown()
        sampler_module.set_sampler(None)
        return got, threads_now

    switch_s = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        rounds = [race() for _ in range(8)]
    finally:
        sys.setswitchinterval(switch_s)
    for got, sampler_threads in rounds:
        assert len(got) == 16
        assert len(sampler_threads) == 1, f"{len(sampler_threads)} sampler threads ran at once"
        assert all(s is got[0] for s in got)
