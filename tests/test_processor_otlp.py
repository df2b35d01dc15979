"""Spans exported over OTLP/gRPC and OTLP/HTTP to a real receiver carry typed carbon attributes."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_carbon import CarbonSpanProcessor
from otel_carbon import attributes as A

DOUBLES = (A.ENERGY_TOTAL, A.ENERGY_CPU, A.CPU_TIME, A.EMISSIONS, A.INTENSITY)
STRINGS = (A.ZONE, A.METHOD, A.CPU_CLOCK)


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_otlp_export_carries_doubles_and_strings(otlp_receiver, ccf_sampler, transport):
    if transport == "grpc":
        exporter = GrpcSpanExporter(endpoint=otlp_receiver.grpc_endpoint, insecure=True, timeout=5)
    else:
        exporter = HttpSpanExporter(endpoint=otlp_receiver.http_traces_endpoint, timeout=5)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    provider.add_span_processor(CarbonSpanProcessor(sampler=ccf_sampler))
    tracer = provider.get_tracer("otlp-test")
    for i in range(5):
        with tracer.start_as_current_span(f"op-{i}"):
            sum(j * j for j in range(20000))
    provider.force_flush()
    spans = otlp_receiver.wait_for_spans(5, timeout_s=10)
    provider.shutdown()
    assert sorted(s["name"] for s in spans) == [f"op-{i}" for i in range(5)]
    for span in spans:
        assert span["transport"] == transport
        kinds = span["attribute_kinds"]
        for key in DOUBLES:
            assert kinds[key] == "double_value", key
        for key in STRINGS:
            assert kinds[key] == "string_value", key
        attrs = span["attributes"]
        assert attrs[A.ENERGY_TOTAL] > 0
        assert attrs[A.EMISSIONS] == pytest.approx(attrs[A.ENERGY_TOTAL] * attrs[A.INTENSITY] / 3.6e6)
        assert attrs[A.ZONE] == "TEST"
        assert attrs[A.METHOD] == A.ESTIMATED
