"""``collector/verify.py``'s Jaeger half without Go: against a loopback server that answers
like Jaeger v2's ``/api/v3/traces`` (``tests/jaeger_fake.py``), serving spans that our
processor really enriched, encoded to OTLP JSON by the OTLP exporter's own encoder. These
cover its error paths quickly; test_collector_e2e.py runs ``verify.py`` on the real Jaeger
(and checks there the answers this stand-in imitates) and the real Prometheus."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_carbon import attributes as A
from otel_carbon.intensity import Intensity, StaticIntensitySource
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.sampler import Sampler
from otel_carbon.sensors.cpu_model import CpuModelSensor
from otel_carbon.sensors.probe import Probe

if __package__:
    from .jaeger_fake import JaegerV3Fake, otlp_json_resource_spans, parse_rfc3339_ns
    from .prometheus_server import free_port
else:
    from jaeger_fake import JaegerV3Fake, otlp_json_resource_spans, parse_rfc3339_ns
    from prometheus_server import free_port

COLLECTOR = Path(__file__).resolve().parent.parent / "collector"
SERVICE = "checkout"
ROUTES = {"/cart": 20_000, "/pay": 80_000}


def load_verify():
    spec = importlib.util.spec_from_file_location("otel_carbon_collector_verify", COLLECTOR / "verify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def make_spans(carbon: bool, service: str = SERVICE):
    """Server spans (with http.route) and a child each, from a real provider."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    sampler = None
    if carbon:
        sensor = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=os.cpu_count() or 1)
        intensity = StaticIntensitySource(Intensity(g_per_kwh=100.0, zone="TEST", pue=1.0, source="test"))
        sampler = Sampler(Probe(sensors=[sensor]), interval_s=0.05, intensity=intensity, idle_interval_s=1.0).start()
        deadline = time.monotonic() + 5
        while sampler.ledger.latest is None and time.monotonic() < deadline:
            time.sleep(0.01)
        provider.add_span_processor(CarbonSpanProcessor(sampler=sampler))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    try:
        for _ in range(3):
            for route, rounds in ROUTES.items():
                with tracer.start_as_current_span(f"GET {route}", kind=SpanKind.SERVER,
                                                  attributes={"http.route": route, "http.request.method": "GET"}):
                    with tracer.start_as_current_span("work"):
                        burn(rounds)
        provider.force_flush()
        return list(exporter.get_finished_spans())
    finally:
        provider.shutdown()
        if sampler is not None:
            sampler.shutdown()


@pytest.fixture(scope="module")
def carbon_spans():
    spans = make_spans(carbon=True)
    assert spans and all(A.ENERGY_TOTAL in s.attributes for s in spans), [dict(s.attributes) for s in spans]
    return spans


def test_fake_answers_in_jaegers_documented_shape(carbon_spans):
    resource_spans = otlp_json_resource_spans(carbon_spans)
    (rs,) = resource_spans
    assert {"key": "service.name", "value": {"stringValue": SERVICE}} in rs["resource"]["attributes"]
    span = rs["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16  # hex, as OTLP JSON
    assert int(span["traceId"], 16) and isinstance(span["startTimeUnixNano"], str)
    energy = [kv for kv in span["attributes"] if kv["key"] == A.ENERGY_TOTAL]
    assert energy and set(energy[0]["value"]) == {"doubleValue"}
    assert parse_rfc3339_ns("2026-01-02T03:04:05.123456789Z") == 1767323045123456789
    assert parse_rfc3339_ns("2026-01-02T04:04:05+01:00") == 1767323045000000000
    with JaegerV3Fake(resource_spans) as jaeger:
        verify = load_verify()
        status, raw = verify._get(jaeger.url + "/api/v3/traces?query.service_name=x", 5)
        assert status == 400 and json.loads(raw)["error"]["httpCode"] == 400  # the time range is required


def test_verify_finds_the_spans_figures(carbon_spans):
    verify = load_verify()
    with JaegerV3Fake(otlp_json_resource_spans(carbon_spans)) as jaeger:
        now_s = time.time()
        report = verify.check_jaeger(jaeger.url, SERVICE, lookback_s=600, now_s=now_s)
        ((path, query),) = jaeger.requests
    assert report["ok"], report
    assert report["status"] == 200
    assert report["spans"] == report["spans_with_figures"] == len(carbon_spans)
    assert report["traces"] == len({s.context.trace_id for s in carbon_spans})
    assert report["energy_j"] == pytest.approx(sum(s.attributes[A.ENERGY_TOTAL] for s in carbon_spans), rel=1e-12)
    assert report["emissions_g"] == pytest.approx(sum(s.attributes[A.EMISSIONS] for s in carbon_spans), rel=1e-12)
    assert report["energy_j"] > 0 and report["emissions_g"] > 0
    assert report["methods"] == {A.ESTIMATED: len(carbon_spans)}
    assert report["services"] == [SERVICE]
    assert report["example"][A.ENERGY_TOTAL] > 0
    # the documented query parameters
    assert path == "/api/v3/traces"
    assert query["query.service_name"] == [SERVICE]
    t_min = parse_rfc3339_ns(query["query.start_time_min"][0])
    t_max = parse_rfc3339_ns(query["query.start_time_max"][0])
    assert t_max - t_min == pytest.approx(600e9, abs=1e3)
    assert abs(t_max - now_s * 1e9) < 1e3
    assert int(query["query.search_depth"][0]) > 0


def test_verify_says_what_is_missing(carbon_spans):
    verify = load_verify()
    plain = make_spans(carbon=False, service="plain")
    with JaegerV3Fake(otlp_json_resource_spans(carbon_spans) + otlp_json_resource_spans(plain)) as jaeger:
        other = verify.check_jaeger(jaeger.url, "no-such-service", lookback_s=600)
        assert not other["ok"] and other["status"] == 404
        assert "no traces of service 'no-such-service'" in other["error"]
        old = verify.check_jaeger(jaeger.url, SERVICE, lookback_s=60, now_s=time.time() + 3600)
        assert not old["ok"] and old["status"] == 404  # the spans are older than the window
        without = verify.check_jaeger(jaeger.url, "plain", lookback_s=600)
        assert not without["ok"] and without["spans"] == len(plain) and without["spans_with_figures"] == 0
        assert f"none with {A.ENERGY_TOTAL}" in without["error"]
    closed = verify.check_jaeger(f"http://127.0.0.1:{free_port()}", SERVICE, lookback_s=60, timeout_s=2)
    assert not closed["ok"] and "cannot reach Jaeger" in closed["error"]


def test_verify_command_line_with_jaeger(carbon_spans):
    verify = load_verify()
    with JaegerV3Fake(otlp_json_resource_spans(carbon_spans)) as jaeger:
        out = io.StringIO()
        assert verify.main(["--jaeger", jaeger.url, "--service", SERVICE, "--skip-prometheus"], out=out) == 0
        text = out.getvalue()
        assert f"OK   Jaeger: {len(carbon_spans)} of {len(carbon_spans)} spans" in text
        assert f"{A.METHOD}: {A.ESTIMATED}: {len(carbon_spans)}" in text
        assert "carbon figures arrived" in text
        out = io.StringIO()
        assert verify.main(["--jaeger", jaeger.url, "--service", "nobody", "--skip-prometheus", "--json"], out=out) == 1
        body = json.loads(out.getvalue())
        assert body["prometheus"] is None and body["jaeger"]["ok"] is False
        assert urllib.parse.urlsplit(body["jaeger"]["url"]).path == "/api/v3/traces"
    with pytest.raises(SystemExit) as exit_info:
        verify.main(["--lookback", "0"], out=io.StringIO())
    assert exit_info.value.code == 2
