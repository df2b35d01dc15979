"""The ``carbon`` instrumentor: in process (instrument / uninstrument on SDK providers, the
proxy case, sharing with configure()) and through the real ``opentelemetry-instrument``
command exporting to a real OTLP receiver."""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

import pytest
from opentelemetry import metrics as metrics_api
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_carbon
from otel_carbon import attributes as A
from otel_carbon import provider_registry
from otel_carbon import process_sampler as sampler_module
from otel_carbon.instrumentor import CarbonInstrumentor

try:
    from test_examples_common import BIN, EXAMPLES, PYTHON, Proc, child_env
    from test_setup import _assert_figures, _busy, _carbon, fresh_otel  # noqa: F401 - fixture
except ImportError:  # tests/ imported as a package
    from .test_examples_common import BIN, EXAMPLES, PYTHON, Proc, child_env
    from .test_setup import _assert_figures, _busy, _carbon, fresh_otel  # noqa: F401


@pytest.fixture
def instrumentor(fresh_otel):
    inst = CarbonInstrumentor()
    yield inst
    if inst.is_instrumented_by_opentelemetry:
        inst.uninstrument()


@pytest.fixture
def app(fresh_otel):
    """SDK providers set globally, as opentelemetry-instrument's configurator does."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    metrics_api.set_meter_provider(meter_provider)
    return tracer_provider, spans, reader


def _points(reader, name):
    data = reader.get_metrics_data()
    if data is None:
        return []
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name
            for p in m.data.data_points]


def _sampler_threads():
    return [t for t in threading.enumerate() if t.name == "otel-carbon-sampler" and t.is_alive()]


def test_entry_point_is_registered():
    found = [ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name == "carbon"]
    assert len(found) == 1 and found[0].load() is CarbonInstrumentor
    assert tuple(CarbonInstrumentor().instrumentation_dependencies()) == ()


def test_instrument_adds_to_sdk_providers_and_uninstrument_stops_everything(app, instrumentor):
    _, spans, reader = app
    threads_before = set(_sampler_threads())
    instrumentor.instrument()
    started = sampler_module.current_sampler()
    assert started is not None and started.running
    tracer = trace.get_tracer("t")
    with tracer.start_as_current_span("on"):
        _busy()
    _assert_figures(spans.get_finished_spans()[-1].attributes)
    counted = _points(reader, A.SPAN_COUNT)
    assert [p.value for p in counted if p.attributes[A.SPAN_NAME] == "on"] == [1]
    assert _points(reader, A.HW_ENERGY)

    instrumentor.uninstrument()
    with tracer.start_as_current_span("off"):
        _busy()
    assert _carbon(spans.get_finished_spans()[-1].attributes) == {}
    assert not [p for p in _points(reader, A.SPAN_ENERGY) if p.attributes[A.SPAN_NAME] == "off"]
    assert _points(reader, A.HW_ENERGY) == []  # the observable callbacks report nothing now
    # the sampler thread this instrumentor started has stopped
    assert sampler_module.current_sampler() is None and not started.running
    assert set(_sampler_threads()) <= threads_before

    instrumentor.instrument()  # and it can be turned on again
    with tracer.start_as_current_span("again"):
        _busy()
    _assert_figures(spans.get_finished_spans()[-1].attributes)


def test_proxy_provider_warns_once_and_does_nothing(instrumentor, caplog):
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        instrumentor.instrument()
        instrumentor.uninstrument()
        instrumentor.instrument()
    warnings = [r.getMessage() for r in caplog.records if "no OpenTelemetry SDK provider" in r.getMessage()]
    assert len(warnings) == 1 and "otel_carbon.configure()" in warnings[0]
    assert sampler_module.current_sampler() is None  # nothing was started


def test_metrics_off_gives_spans_only(app, instrumentor):
    _, spans, reader = app
    instrumentor.instrument(metrics=False)
    with trace.get_tracer("t").start_as_current_span("spans-only"):
        _busy()
    _assert_figures(spans.get_finished_spans()[-1].attributes)
    assert _points(reader, A.SPAN_ENERGY) == [] and _points(reader, A.HW_ENERGY) == []


def test_configure_under_the_instrumentor_adds_nothing_twice(app, instrumentor):
    tracer_provider, spans, reader = app
    instrumentor.instrument()
    setup = otel_carbon.configure(service_name="x")
    assert setup.tracer_provider is tracer_provider and not setup.owns_tracer_provider
    processors = tracer_provider._active_span_processor._span_processors  # one of ours, not two
    assert sum(type(p).__module__.startswith("otel_carbon.") for p in processors) == 1
    with trace.get_tracer("t").start_as_current_span("shared"):
        _busy()
    _assert_figures(spans.get_finished_spans()[-1].attributes)
    assert [p.value for p in _points(reader, A.SPAN_COUNT) if p.attributes[A.SPAN_NAME] == "shared"] == [1]
    instrumentor.uninstrument()  # configure() still uses the processor: it stays on
    with trace.get_tracer("t").start_as_current_span("still"):
        _busy()
    _assert_figures(spans.get_finished_spans()[-1].attributes)


def test_explicit_providers(fresh_otel, instrumentor):
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    instrumentor.instrument(tracer_provider=provider, metrics=False)
    with provider.get_tracer("t").start_as_current_span("explicit"):
        _busy()
    _assert_figures(spans.get_finished_spans()[-1].attributes)


def test_a_failing_part_never_breaks_the_application(app, instrumentor, monkeypatch, caplog):
    _, spans, _ = app

    class Broken:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("meter exploded")

    monkeypatch.setattr(provider_registry, "metrics_class", lambda: Broken)
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        instrumentor.instrument()  # does not raise
    assert any("meter exploded" in r.getMessage() for r in caplog.records)
    with trace.get_tracer("t").start_as_current_span("spans-still"):
        _busy()
    _assert_figures(spans.get_finished_spans()[-1].attributes)  # spans keep their figures
    instrumentor.uninstrument()

    monkeypatch.setattr(provider_registry, "acquire_processor", Broken)
    instrumentor.instrument()  # the processor itself fails: logged, the app goes on
    with trace.get_tracer("t").start_as_current_span("plain"):
        _busy(10)
    assert _carbon(spans.get_finished_spans()[-1].attributes) == {}


@pytest.mark.parametrize(
    "kwargs, named",
    [({"tracer_provider": "tp"}, "tracer_provider"), ({"meter_provider": 1}, "meter_provider"),
     ({"metrics": "on"}, "metrics"), ({"span_attribute_allowlist": "http.route"}, "span_attribute_allowlist")],
)
def test_bad_arguments_raise(instrumentor, kwargs, named):
    with pytest.raises(ValueError, match=named):
        instrumentor.instrument(**kwargs)
    assert not instrumentor.is_instrumented_by_opentelemetry


# -- the real command ---------------------------------------------------------------------

INSTRUMENT = str(BIN / "opentelemetry-instrument")
SCRIPT = str(EXAMPLES / "script_app.py")
JOBS, ROUNDS = 3, 30_000


def _run_script(receiver, **env_extra):
    env = child_env(receiver, "grpc", OTEL_SERVICE_NAME="script-app", **env_extra)
    with Proc([INSTRUMENT, PYTHON, SCRIPT, "--jobs", str(JOBS), "--rounds", str(ROUNDS)], env) as proc:
        assert proc.wait(60) == 0, proc.describe()
        return proc.output()


def test_opentelemetry_instrument_adds_energy_to_a_plain_script(otlp_receiver):
    output = _run_script(otlp_receiver, OTEL_METRICS_EXPORTER="otlp", OTEL_METRIC_EXPORT_INTERVAL="60000")
    spans = otlp_receiver.wait_for_spans(JOBS + 1, timeout_s=10)
    assert sorted(s["name"] for s in spans) == sorted(["script"] + [f"job-{i}" for i in range(JOBS)]), output
    for span in spans:
        _assert_figures(span["attributes"])
        assert span["resource"]["service.name"] == "script-app"
        assert "telemetry.auto.version" in span["resource"]  # it did come through auto-instrumentation
    jobs = [s for s in spans if s["name"].startswith("job-")]
    parent = next(s for s in spans if s["name"] == "script")
    # the parent's CPU time includes its children's
    assert parent["attributes"][A.CPU_TIME] >= sum(s["attributes"][A.CPU_TIME] for s in jobs) * 0.99
    # the meter came too (exported at exit by the SDK's meter provider)
    names = {m["name"] for m in otlp_receiver.wait_for_metrics(lambda ms: any(m["name"] == A.SPAN_ENERGY for m in ms))}
    assert {A.HW_ENERGY, A.SPAN_ENERGY} <= names
    assert "no OpenTelemetry SDK" not in output


def test_disabled_instrumentation_adds_nothing(otlp_receiver):
    _run_script(otlp_receiver, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="flask,carbon")
    spans = otlp_receiver.wait_for_spans(JOBS + 1, timeout_s=10)
    assert len(spans) == JOBS + 1
    for span in spans:
        assert _carbon(span["attributes"]) == {}, span["attributes"]


def test_without_a_configurator_it_warns_and_the_script_still_runs(otlp_receiver):
    output = _run_script(otlp_receiver, OTEL_PYTHON_CONFIGURATOR="none-such")  # providers stay proxies
    assert output.count("no OpenTelemetry SDK provider is set") == 1, output
    assert f"done: {JOBS} jobs" in output
    assert otlp_receiver.spans() == []
