"""RecordUnsampled: dropped local roots are recorded for the meter and never exported; the
application's sampler is wrapped, never replaced; install/uninstall through the tracer
provider (and the tracers it already handed out), configure() and the instrumentor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, StaticSampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, set_span_in_context

import otel_carbon
from otel_carbon import attributes as A
from otel_carbon import config
from otel_carbon import record_unsampled
from otel_carbon.instrumentor import CarbonInstrumentor
from otel_carbon.metrics import CarbonMetrics
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.record_unsampled import RecordUnsampled

try:
    from metrics_flask_app import RecordedSpans as EveryEndedSpan
    from test_setup import _busy, fresh_otel  # noqa: F401 - fixture
    from conftest import burn_cpu_s
except ImportError:  # tests/ imported as a package
    from .conftest import burn_cpu_s
    from .metrics_flask_app import RecordedSpans as EveryEndedSpan
    from .test_setup import _busy, fresh_otel  # noqa: F401

DROP_ALL = ParentBased(ALWAYS_OFF)  # a head sampler at 0 %: what a ratio sampler does to 90 %


def remote_parent(sampled: bool):
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return set_span_in_context(NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=flags)))


def counts(reader):
    data = reader.get_metrics_data()
    return {
        dict(p.attributes).get(A.SPAN_NAME): p.value
        for rm in (data.resource_metrics if data else ()) for sm in rm.scope_metrics for m in sm.metrics
        if m.name == A.SPAN_COUNT for p in m.data.data_points
    }


class Pipeline:
    """A provider with ``sampler`` wrapped, our processor (drop-in or wrapping), the SDK's
    batch and simple exporting processors, a processor that sees every ended span, and the meter."""

    def __init__(self, sampler, ccf_sampler, wrapping=False, children=False):
        self.provider = TracerProvider(sampler=RecordUnsampled(sampler, children=children))
        self.batch, self.simple = InMemorySpanExporter(), InMemorySpanExporter()
        self.every = EveryEndedSpan()
        self.wrapped_every = EveryEndedSpan()  # wrapped: the exporting route, whatever it checks
        if wrapping:
            self.processor = CarbonSpanProcessor(
                BatchSpanProcessor(self.batch), SimpleSpanProcessor(self.simple), self.wrapped_every, sampler=ccf_sampler
            )
            self.provider.add_span_processor(self.processor)
        else:
            self.processor = CarbonSpanProcessor(sampler=ccf_sampler)
            for p in (self.processor, BatchSpanProcessor(self.batch), SimpleSpanProcessor(self.simple)):
                self.provider.add_span_processor(p)
        self.provider.add_span_processor(self.every)
        self.reader = InMemoryMetricReader()
        self.metrics = CarbonMetrics(
            MeterProvider(metric_readers=[self.reader]), sampler=ccf_sampler, spans="all" if children else None
        ).attach(self.processor)
        self.tracer = self.provider.get_tracer("t")

    def exported(self):
        self.provider.force_flush()
        return [s.name for s in self.batch.get_finished_spans()], [s.name for s in self.simple.get_finished_spans()]

    def close(self):
        self.metrics.shutdown()
        self.provider.shutdown()


@pytest.mark.parametrize("wrapping", [False, True], ids=["drop-in", "wrapping"])
def test_dropped_roots_reach_the_meter_never_the_exporters(ccf_sampler, wrapping):
    p = Pipeline(DROP_ALL, ccf_sampler, wrapping=wrapping)
    try:
        with p.tracer.start_as_current_span("root", attributes={A.HTTP_ROUTE: "/r"}) as root:
            assert root.is_recording() and not root.get_span_context().trace_flags.sampled
            with p.tracer.start_as_current_span("child") as child:  # the delegate drops it: not recorded
                assert not child.is_recording()
                _busy(2000)
        with p.tracer.start_as_current_span("remote-child", context=remote_parent(sampled=False)) as span:
            assert span.is_recording() and not span.get_span_context().trace_flags.sampled
        assert p.exported() == ([], [])  # neither the batch nor the simple processor exports them
        assert p.wrapped_every.spans == []  # a wrapped processor gets sampled spans only
        assert [s.name for s in p.every.spans] == ["root", "remote-child"]
        (root_span, _) = p.every.spans
        assert root_span.attributes[A.HTTP_ROUTE] == "/r"  # the attributes it was started with
        # drop-in: the figures are on the span itself; wrapping: on the copy the meter gets
        assert (A.ENERGY_TOTAL in root_span.attributes) is not wrapping
        assert counts(p.reader) == {"root": 1, "remote-child": 1}
        assert p.metrics.recorded_spans == 2
    finally:
        p.close()


@pytest.mark.parametrize("head", ["dropped", "sampled"])
def test_work_a_dropped_child_hands_off_is_charged_to_the_recorded_root_as_when_sampled(ccf_sampler, head):
    """Under head sampling the children of an unsampled request stay NonRecordingSpans; work
    they hand to a thread pool is charged to the innermost recording span above them (the
    root recorded for the metrics), as it is when the whole trace is sampled. Once the root
    has ended, a dropped span of another trace on the same thread charges nothing to it."""
    p = Pipeline(DROP_ALL if head == "dropped" else ParentBased(ALWAYS_ON), ccf_sampler)
    handed = []
    try:
        with ThreadPoolExecutor(2) as pool:
            with p.tracer.start_as_current_span("root") as root:
                assert root.get_span_context().trace_flags.sampled is (head == "sampled")
                with p.tracer.start_as_current_span("child") as child:
                    assert child.is_recording() is (head == "sampled")
                    handed.append(pool.submit(burn_cpu_s, 0.03).result())
                    with p.tracer.start_as_current_span("grandchild"):
                        handed.append(pool.submit(burn_cpu_s, 0.02).result())
            other = NonRecordingSpan(SpanContext(0x123, 0x456, is_remote=False, trace_flags=TraceFlags(TraceFlags.DEFAULT)))
            with trace.use_span(other):
                pool.submit(burn_cpu_s, 0.01).result()
        (root_span,) = [s for s in p.every.spans if s.name == "root"]
        offloaded = root_span.attributes[A.CPU_OFFLOADED]
        assert sum(handed) * 0.95 <= offloaded <= sum(handed) + 0.01, (offloaded, handed)
        assert root_span.attributes[A.CPU_TIME] >= offloaded
        assert root_span.attributes[A.METHOD] == A.ESTIMATED
    finally:
        p.close()


@pytest.mark.parametrize("wrapping", [False, True], ids=["drop-in", "wrapping"])
def test_sampled_spans_are_the_delegates_decision_unchanged(ccf_sampler, wrapping):
    p = Pipeline(ParentBased(ALWAYS_ON), ccf_sampler, wrapping=wrapping)
    try:
        with p.tracer.start_as_current_span("root"):
            with p.tracer.start_as_current_span("child"):
                _busy(2000)
        assert p.exported() == (["child", "root"], ["child", "root"])
        assert [s.name for s in p.wrapped_every.spans] == (["child", "root"] if wrapping else [])
        assert all(s.attributes[A.ENERGY_TOTAL] > 0 for s in p.batch.get_finished_spans())
        assert counts(p.reader) == {"root": 1}
    finally:
        p.close()


def test_children_of_recorded_roots_with_every_span_metered(ccf_sampler):
    p = Pipeline(DROP_ALL, ccf_sampler, children=True)
    try:
        with p.tracer.start_as_current_span("root"):
            with p.tracer.start_as_current_span("child") as child:
                assert child.is_recording() and not child.get_span_context().trace_flags.sampled
                _busy(2000)
        assert p.exported() == ([], [])
        assert counts(p.reader) == {"root": 1, "child": 1}
    finally:
        p.close()


def test_decisions_and_description():
    wrapper = RecordUnsampled(DROP_ALL)
    result = wrapper.should_sample(None, 0x1, "root", attributes={"a": 1})
    assert result.decision is Decision.RECORD_ONLY and dict(result.attributes) == {"a": 1}
    sampled = remote_parent(sampled=True)
    assert wrapper.should_sample(sampled, 0xABC, "s").decision is Decision.RECORD_AND_SAMPLE  # ParentBased: follows
    local = set_span_in_context(NonRecordingSpan(SpanContext(0x1, 0x2, is_remote=False)))
    assert wrapper.should_sample(local, 0x1, "child").decision is Decision.DROP
    assert RecordUnsampled(StaticSampler(Decision.RECORD_ONLY)).should_sample(None, 0x1, "x").decision is Decision.RECORD_ONLY
    assert wrapper.get_description() == f"RecordUnsampled{{{DROP_ALL.get_description()}}}"
    with pytest.raises(ValueError, match="delegate"):
        RecordUnsampled(object())
    with pytest.raises(ValueError, match="children"):
        RecordUnsampled(ALWAYS_ON, children="yes")


def test_install_wraps_the_providers_sampler_and_its_tracers_and_uninstall_restores():
    provider = TracerProvider(sampler=DROP_ALL)
    every = EveryEndedSpan()
    provider.add_span_processor(every)
    early = provider.get_tracer("early")  # handed out before install
    assert record_unsampled.install(provider) and not record_unsampled.install(provider)
    assert isinstance(provider.sampler, RecordUnsampled) and provider.sampler.delegate is DROP_ALL
    early.start_span("early-root").end()
    provider.get_tracer("late").start_span("late-root").end()
    names = [s.name for s in every.spans]
    if isinstance(getattr(provider, "_tracers", None), dict):  # SDK >= 1.42 keeps its tracers
        assert names == ["early-root", "late-root"]
    else:
        assert names == ["late-root"]
    assert record_unsampled.uninstall(provider) and provider.sampler is DROP_ALL
    assert not record_unsampled.uninstall(provider)
    early.start_span("after").end()
    assert [s.name for s in every.spans] == names
    provider.shutdown()


def test_configure_wraps_an_application_provider_and_its_sampler(fresh_otel):
    provider = TracerProvider(sampler=DROP_ALL)
    every = EveryEndedSpan()
    provider.add_span_processor(every)
    trace.set_tracer_provider(provider)
    setup = otel_carbon.configure(traces_exporter="none", metrics_exporter=InMemoryMetricReader())
    assert setup.tracer_provider is provider
    assert isinstance(provider.sampler, RecordUnsampled) and provider.sampler.delegate is DROP_ALL  # wrapped
    with trace.get_tracer("t").start_as_current_span("request"):
        _busy(2000)
    assert [s.name for s in every.spans] == ["request"]
    setup.shutdown()
    assert provider.sampler is DROP_ALL  # released with our processor


@pytest.mark.parametrize("env, metrics, wrapped", [("on", True, True), ("off", True, False), ("on", False, False)])
def test_instrumentor_wraps_with_the_meter_only_and_unwraps(fresh_otel, monkeypatch, env, metrics, wrapped):
    monkeypatch.setenv(config.OTEL_CARBON_RECORD_UNSAMPLED, env)
    provider = TracerProvider(sampler=DROP_ALL)
    trace.set_tracer_provider(provider)
    from opentelemetry import metrics as metrics_api

    metrics_api.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    instrumentor = CarbonInstrumentor()
    instrumentor.instrument(metrics=metrics)
    try:
        assert isinstance(provider.sampler, RecordUnsampled) is wrapped
    finally:
        instrumentor.uninstrument()
    assert provider.sampler is DROP_ALL
