"""CarbonMetrics exported by the SDK's periodic reader through the real OTLP/gRPC exporter
to a receiver built from opentelemetry-proto's service stubs, on loopback."""

import os
from collections import defaultdict

import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_carbon import attributes as A
from otel_carbon.metrics import CarbonMetrics
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.sensors.cpu_model import CpuModelSensor

if __package__:
    from .conftest import make_sampler
else:
    from conftest import make_sampler


def burn(n):
    return sum(i * i for i in range(n))


def test_periodic_reader_to_a_real_otlp_grpc_receiver(otlp_receiver):
    sensor = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=os.cpu_count() or 1)
    sampler = make_sampler([sensor], start=False, zone="OTLP-TEST")
    sampler.tick()
    spans_out = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    processor = CarbonSpanProcessor(sampler=sampler)
    tracer_provider.add_span_processor(processor)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans_out))
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=otlp_receiver.grpc_endpoint, insecure=True), export_interval_millis=60_000
    )
    meter_provider = MeterProvider(metric_readers=[reader])
    carbon = CarbonMetrics(meter_provider, sampler=sampler).attach(processor)
    tracer = tracer_provider.get_tracer("otlp-test")
    try:
        for i in range(10):
            for route, cost in (("/orders/{id}", 3_000), ("/report", 12_000)):
                attrs = {"http.route": route, "http.request.method": "GET", "url.full": f"http://h{route}?n={i}"}
                with tracer.start_as_current_span(f"GET {route}", attributes=attrs):
                    burn(cost)
            if i % 3 == 0:
                sampler.tick()  # the tick listener drains part of the queue
        sampler.tick()
        assert meter_provider.force_flush(10_000)

        def has_spans(points):
            return any(p["name"] == A.SPAN_ENERGY for p in points)

        points = otlp_receiver.wait_for_metrics(has_spans, timeout_s=10)
    finally:
        carbon.shutdown()
        meter_provider.shutdown()
        tracer_provider.shutdown()
        sampler.shutdown()

    assert {p["transport"] for p in points} == {"grpc"}
    assert {p["scope"]["name"] for p in points} == {"otel_carbon"}
    expected_j, expected_g, expected_n = defaultdict(float), defaultdict(float), defaultdict(int)
    for span in spans_out.get_finished_spans():
        route = span.attributes["http.route"]
        expected_j[route] += span.attributes[A.ENERGY_TOTAL]
        expected_g[route] += span.attributes[A.EMISSIONS]
        expected_n[route] += 1

    energy = [p for p in points if p["name"] == A.SPAN_ENERGY]
    assert {p["kind"] for p in energy} == {"sum"} and {p["unit"] for p in energy} == {"J"}
    assert all(p["is_monotonic"] for p in energy)
    assert {p["aggregation_temporality"] for p in energy} == {"AGGREGATION_TEMPORALITY_CUMULATIVE"}
    for route in ("/orders/{id}", "/report"):
        (point,) = [p for p in energy if p["attributes"]["http.route"] == route]
        assert point["attributes"] == {
            A.SPAN_NAME: f"GET {route}", "http.route": route, "http.request.method": "GET", A.METHOD: A.ESTIMATED,
        }
        assert set(point["attribute_kinds"].values()) == {"string_value"}
        assert point["value"] == pytest.approx(expected_j[route], rel=1e-9)
        (count,) = [p for p in points if p["name"] == A.SPAN_COUNT and p["attributes"]["http.route"] == route]
        assert count["unit"] == "{span}" and count["value_kind"] == "as_int"
        assert count["value"] == expected_n[route] == 10
        (grams,) = [p for p in points if p["name"] == A.SPAN_EMISSIONS and p["attributes"]["http.route"] == route]
        assert grams["unit"] == "g" and grams["is_monotonic"]
        assert grams["value"] == pytest.approx(expected_g[route], rel=1e-9)
    assert expected_j["/report"] > expected_j["/orders/{id}"]

    (hw,) = [p for p in points if p["name"] == A.HW_ENERGY]
    assert hw["kind"] == "sum" and hw["is_monotonic"] and hw["unit"] == "J" and hw["value_kind"] == "as_double"
    assert hw["attributes"] == {A.HW_TYPE: "cpu", A.HW_ID: "cpu-model", A.HW_NAME: "ccf-model", A.METHOD: A.ESTIMATED}
    (intensity,) = [p for p in points if p["name"] == A.GRID_INTENSITY]
    assert intensity["kind"] == "gauge" and intensity["unit"] == "g/kWh"
    assert intensity["value"] == 100.0 and intensity["attributes"] == {A.ZONE: "OTLP-TEST"}
    names = {p["name"] for p in points}
    assert {A.HW_POWER, A.HW_HOST_ENERGY, A.HW_HOST_POWER, A.HOST_ENERGY, A.PROCESS_ENERGY, A.PROCESS_EMISSIONS} <= names
