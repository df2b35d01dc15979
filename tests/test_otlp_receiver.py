"""The in-process OTLP receiver really receives what the real OTLP exporters send."""

import gzip
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from grpc import Compression as GrpcCompression

if __package__:
    from .otlp_receiver import OtlpReceiver, ReceiverTimeout, attribute_types
else:
    from otlp_receiver import OtlpReceiver, ReceiverTimeout, attribute_types

EXPORT_TIMEOUT_S = 2.0
RESOURCE = Resource.create({"service.name": "otlp-receiver-test", "deployment.environment": "test"})

SPAN_ATTRIBUTES = {
    "energy.joules": 1.5,
    "energy.joules.whole": 2.0,  # a float that looks like an int must stay a double
    "carbon.region": "FR",
    "carbon.numeric_string": "1.5",  # looks like a number, must stay a string
    "request.count": 7,
    "sensor.ok": True,
    "sensor.values": [0.5, 1.25],
    "sensor.ids": [1, 2, 3],
    "sensor.names": ["cpu", "gpu"],
}
EXPECTED_KINDS = {
    "energy.joules": "double_value",
    "energy.joules.whole": "double_value",
    "carbon.region": "string_value",
    "carbon.numeric_string": "string_value",
    "request.count": "int_value",
    "sensor.ok": "bool_value",
    "sensor.values": "array_value",
    "sensor.ids": "array_value",
    "sensor.names": "array_value",
}


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every test must leave no thread behind (receiver, exporters, readers)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not extra, f"leftover threads: {[t.name for t in extra]}"


def _span_exporter(receiver, transport, compression):
    if transport == "grpc":
        return GrpcSpanExporter(
            endpoint=receiver.grpc_endpoint,
            insecure=True,
            timeout=EXPORT_TIMEOUT_S,
            compression=GrpcCompression.Gzip if compression == "gzip" else GrpcCompression.NoCompression,
        )
    return HttpSpanExporter(
        endpoint=receiver.http_endpoint + "/v1/traces",
        timeout=EXPORT_TIMEOUT_S,
        compression=HttpCompression.Gzip if compression == "gzip" else HttpCompression.NoCompression,
    )


def _metric_exporter(receiver, transport):
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=receiver.grpc_endpoint, insecure=True, timeout=EXPORT_TIMEOUT_S)
    return HttpMetricExporter(endpoint=receiver.http_endpoint + "/v1/metrics", timeout=EXPORT_TIMEOUT_S)


def _closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _refused(port):
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(
    "transport,compression",
    [("grpc", None), ("grpc", "gzip"), ("http", None), ("http", "gzip")],
)
def test_spans_arrive_with_attribute_kinds(otlp_receiver, transport, compression):
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(_span_exporter(otlp_receiver, transport, compression)))
    tracer = provider.get_tracer("receiver-test", "1.2.3")
    try:
        with tracer.start_as_current_span("parent") as parent:
            with tracer.start_as_current_span("child", attributes=SPAN_ATTRIBUTES) as child:
                child.add_event("measured", {"joules": 0.25})
    finally:
        provider.shutdown()

    spans = otlp_receiver.wait_for_spans(2, timeout_s=5)
    assert [s["name"] for s in spans] == ["child", "parent"]  # SimpleSpanProcessor: end order
    assert {s["transport"] for s in spans} == {transport}
    got_child, got_parent = spans

    ctx, parent_ctx = child.get_span_context(), parent.get_span_context()
    assert got_child["trace_id"] == format(ctx.trace_id, "032x") == got_parent["trace_id"]
    assert got_child["span_id"] == format(ctx.span_id, "016x")
    assert got_child["parent_span_id"] == format(parent_ctx.span_id, "016x") == got_parent["span_id"]
    assert got_parent["parent_span_id"] is None

    assert got_child["attributes"] == SPAN_ATTRIBUTES
    assert got_child["attribute_kinds"] == EXPECTED_KINDS
    assert attribute_types(got_child) == EXPECTED_KINDS
    attrs = got_child["attributes"]
    assert type(attrs["energy.joules.whole"]) is float
    assert type(attrs["request.count"]) is int
    assert type(attrs["sensor.ok"]) is bool
    assert type(attrs["carbon.numeric_string"]) is str
    assert [type(v) for v in attrs["sensor.values"]] == [float, float]
    assert [type(v) for v in attrs["sensor.ids"]] == [int, int, int]
    assert got_parent["attributes"] == {} and got_parent["attribute_kinds"] == {}

    assert got_child["events"][0]["name"] == "measured"
    assert got_child["events"][0]["attribute_kinds"] == {"joules": "double_value"}
    assert got_child["resource"]["service.name"] == "otlp-receiver-test"
    assert got_child["resource"]["deployment.environment"] == "test"
    assert got_child["scope"]["name"] == "receiver-test" and got_child["scope"]["version"] == "1.2.3"
    assert 0 < got_child["start_time_unix_nano"] <= got_child["end_time_unix_nano"]
    assert got_child["kind"] == "SPAN_KIND_INTERNAL"

    requests = otlp_receiver.requests("traces")
    assert len(requests) == 2 and {r["transport"] for r in requests} == {transport}
    if transport == "http":
        assert requests[0]["headers"]["content-type"] == "application/x-protobuf"
        assert requests[0]["headers"].get("content-encoding") == compression
    assert requests[0]["headers"]["user-agent"].startswith("OTel-OTLP-Exporter-Python")


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_metrics_arrive(otlp_receiver, transport):
    reader = PeriodicExportingMetricReader(_metric_exporter(otlp_receiver, transport), export_interval_millis=60_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("receiver-test")
    requests_counter = meter.create_counter("test.requests", unit="{request}")
    energy_counter = meter.create_counter("test.energy", unit="J")
    latency = meter.create_histogram("test.latency", unit="s")
    try:
        requests_counter.add(3, {"route": "/a"})
        requests_counter.add(4, {"route": "/a"})
        requests_counter.add(2, {"route": "/b"})
        energy_counter.add(0.25, {"device": "cpu"})
        latency.record(0.5, {"route": "/a"})
        latency.record(1.5, {"route": "/a"})
        assert provider.force_flush(timeout_millis=5_000)

        names = {"test.requests", "test.energy", "test.latency"}
        points = otlp_receiver.wait_for_metrics(lambda ms: names <= {m["name"] for m in ms}, timeout_s=5)
    finally:
        provider.shutdown()

    assert {m["transport"] for m in points} == {transport}
    by_route = {m["attributes"]["route"]: m for m in points if m["name"] == "test.requests"}
    assert set(by_route) == {"/a", "/b"}
    assert by_route["/a"]["value"] == 7 and type(by_route["/a"]["value"]) is int
    assert by_route["/a"]["value_kind"] == "as_int"
    assert by_route["/b"]["value"] == 2
    assert by_route["/a"]["kind"] == "sum" and by_route["/a"]["is_monotonic"] is True
    assert by_route["/a"]["aggregation_temporality"] == "AGGREGATION_TEMPORALITY_CUMULATIVE"
    assert by_route["/a"]["unit"] == "{request}"
    assert by_route["/a"]["attribute_kinds"] == {"route": "string_value"}

    # provider.shutdown() exported the cumulative points once more: 2 exports now.
    assert len(otlp_receiver.requests("metrics")) == 2
    assert len(otlp_receiver.metrics("test.energy")) == 2
    (energy,) = [m for m in points if m["name"] == "test.energy"]
    assert energy["value"] == 0.25 and energy["value_kind"] == "as_double" and energy["unit"] == "J"
    assert energy["resource"]["service.name"] == "otlp-receiver-test"

    (hist,) = [m for m in points if m["name"] == "test.latency"]
    assert hist["kind"] == "histogram" and hist["unit"] == "s"
    assert hist["count"] == 2 and hist["sum"] == pytest.approx(2.0)
    assert hist["min"] == 0.5 and hist["max"] == 1.5
    assert sum(hist["bucket_counts"]) == 2
    assert hist["attributes"] == {"route": "/a"}
    assert "value" not in hist


def test_http_json_and_error_paths(otlp_receiver):
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    payload = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "json-scope"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "json-span",
                                "kind": 2,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [
                                    {"key": "d", "value": {"doubleValue": 2.0}},
                                    {"key": "i", "value": {"intValue": "42"}},
                                    {"key": "s", "value": {"stringValue": "x"}},
                                    {"key": "b", "value": {"boolValue": False}},
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(payload).encode())
    req = urllib.request.Request(
        otlp_receiver.http_endpoint + "/v1/traces",
        data=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        assert json.loads(resp.read()) == {}

    (span,) = otlp_receiver.wait_for_spans(1, timeout_s=2)
    assert span["trace_id"] == trace_id and span["span_id"] == span_id
    assert span["kind"] == "SPAN_KIND_SERVER" and span["transport"] == "http"
    assert span["attributes"] == {"d": 2.0, "i": 42, "s": "x", "b": False}
    assert span["attribute_kinds"] == {"d": "double_value", "i": "int_value", "s": "string_value", "b": "bool_value"}
    assert span["resource"] == {"service.name": "json-svc"}
    assert span["start_time_unix_nano"] == 1544712660000000000

    def post(path, data, content_type):
        request = urllib.request.Request(
            otlp_receiver.http_endpoint + path, data=data, headers={"Content-Type": content_type}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    empty = trace_service_pb2.ExportTraceServiceRequest().SerializeToString()
    assert post("/v1/traces", empty, "application/x-protobuf") == 200
    assert post("/v1/trace", empty, "application/x-protobuf") == 404
    assert post("/v1/traces", empty, "text/plain") == 415
    assert post("/v1/traces", b"\xff\xff\xff", "application/x-protobuf") == 400
    assert post("/v1/traces", b"{not json", "application/json") == 400
    assert len(otlp_receiver.spans()) == 1


def test_wrong_endpoints_fail_and_nothing_arrives(otlp_receiver):
    span_provider = TracerProvider(resource=RESOURCE)
    tracer = span_provider.get_tracer("receiver-test")
    with tracer.start_as_current_span("lost") as span:
        pass
    readable = [span]  # the SDK span is a ReadableSpan once ended
    span_provider.shutdown()

    wrong_path = HttpSpanExporter(endpoint=otlp_receiver.http_endpoint + "/v1/trace", timeout=0.5)
    closed = _closed_port()
    wrong_port = GrpcSpanExporter(endpoint=f"127.0.0.1:{closed}", insecure=True, timeout=0.5)
    try:
        assert wrong_path.export(readable) is SpanExportResult.FAILURE
        assert wrong_port.export(readable) is SpanExportResult.FAILURE
    finally:
        wrong_path.shutdown()
        wrong_port.shutdown()

    with pytest.raises(ReceiverTimeout):
        otlp_receiver.wait_for_spans(1, timeout_s=0.2)
    with pytest.raises(AssertionError):
        otlp_receiver.wait_for_metrics(timeout_s=0.1)
    assert otlp_receiver.spans() == [] and otlp_receiver.metrics() == []


def test_lifecycle_clear_and_clean_shutdown():
    before = set(threading.enumerate())
    with OtlpReceiver() as receiver:
        grpc_port, http_port = receiver.grpc_port, receiver.http_port
        assert receiver.grpc_endpoint == f"127.0.0.1:{grpc_port}"
        assert receiver.http_endpoint == f"http://127.0.0.1:{http_port}"
        assert grpc_port != http_port

        with grpc.insecure_channel(receiver.grpc_endpoint) as channel:
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)
            response = stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
            assert response == trace_service_pb2.ExportTraceServiceResponse()
        assert [r["transport"] for r in receiver.requests()] == ["grpc"]
        receiver.clear()
        assert receiver.requests() == [] and receiver.spans() == []

    receiver.stop()  # a second stop is harmless
    assert not receiver.running
    assert _refused(grpc_port) and _refused(http_port)
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        extra = [t for t in threading.enumerate() if t not in before]
        if not extra:
            break
        time.sleep(0.02)
    assert not extra, [t.name for t in extra]
