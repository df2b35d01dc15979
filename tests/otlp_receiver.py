"""A real, in-process OTLP receiver (gRPC + HTTP) for the test suite.

It is built directly on the ``opentelemetry-proto`` service stubs and the
standard library, so tests can export through the *real* OTLP exporters
(``opentelemetry-exporter-otlp-proto-grpc`` / ``-http``) and then assert on
what actually went over the wire, including the protobuf ``AnyValue`` kind
each attribute was carried as (``double_value`` vs ``string_value`` ...).

Usage::

    with OtlpReceiver() as receiver:
        exporter = OTLPSpanExporter(endpoint=receiver.grpc_endpoint, insecure=True)
        ...
        spans = receiver.wait_for_spans(1)
        assert spans[0]["attribute_kinds"]["energy.joules"] == "double_value"

Both servers listen on 127.0.0.1 with OS-assigned ports; ``stop()`` (or leaving
the ``with`` block) shuts both down and joins their threads, and is safe to
call more than once.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import threading
import time
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

__all__ = [
    "OtlpReceiver",
    "ReceiverTimeout",
    "any_value_to_python",
    "attribute_types",
]

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


class ReceiverTimeout(AssertionError):
    """Raised by the ``wait_for_*`` helpers when the data did not arrive in time."""


# --------------------------------------------------------------------------- #
# protobuf -> plain python
# --------------------------------------------------------------------------- #
def any_value_to_python(value: common_pb2.AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to a python value, preserving its type.

    double_value -> float, int_value -> int, string_value -> str,
    bool_value -> bool, bytes_value -> bytes, array_value -> list,
    kvlist_value -> dict, unset -> None.
    """
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value_to_python(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value_to_python(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(key_values) -> Dict[str, Any]:
    return {kv.key: any_value_to_python(kv.value) for kv in key_values}


def _attribute_kinds(key_values) -> Dict[str, Optional[str]]:
    return {kv.key: kv.value.WhichOneof("value") for kv in key_values}


def attribute_types(item: Dict[str, Any]) -> Dict[str, Optional[str]]:
    """The raw ``AnyValue`` oneof name per attribute of a span / data point dict.

    e.g. ``{"energy.joules": "double_value", "http.method": "string_value"}``.
    """
    return dict(item["attribute_kinds"])


def _hex(raw: bytes) -> Optional[str]:
    return raw.hex() if raw else None


def _scope(scope: common_pb2.InstrumentationScope) -> Dict[str, Any]:
    return {
        "name": scope.name,
        "version": scope.version,
        "attributes": _attributes(scope.attributes),
    }


def _flatten_spans(request: trace_service_pb2.ExportTraceServiceRequest, transport: str) -> List[Dict[str, Any]]:
    out = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        resource_kinds = _attribute_kinds(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = _scope(scope_spans.scope)
            for span in scope_spans.spans:
                out.append(
                    {
                        "name": span.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": _hex(span.parent_span_id),
                        "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                        "attributes": _attributes(span.attributes),
                        "attribute_kinds": _attribute_kinds(span.attributes),
                        "resource": dict(resource),
                        "resource_kinds": dict(resource_kinds),
                        "scope": dict(scope),
                        "start_time_unix_nano": span.start_time_unix_nano,
                        "end_time_unix_nano": span.end_time_unix_nano,
                        "status": {
                            "code": trace_pb2.Status.StatusCode.Name(span.status.code),
                            "message": span.status.message,
                        },
                        "events": [
                            {
                                "name": event.name,
                                "time_unix_nano": event.time_unix_nano,
                                "attributes": _attributes(event.attributes),
                                "attribute_kinds": _attribute_kinds(event.attributes),
                            }
                            for event in span.events
                        ],
                        "links": [
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": _attributes(link.attributes),
                            }
                            for link in span.links
                        ],
                        "transport": transport,
                    }
                )
    return out


_TEMPORALITY = metrics_pb2.AggregationTemporality.Name


def _number_point(point: metrics_pb2.NumberDataPoint) -> Dict[str, Any]:
    value_kind = point.WhichOneof("value")
    return {
        "value": getattr(point, value_kind) if value_kind else None,
        "value_kind": value_kind,  # "as_int" | "as_double"
    }


def _optional(msg: Message, field: str) -> Any:
    return getattr(msg, field) if msg.HasField(field) else None


def _flatten_metrics(
    request: metrics_service_pb2.ExportMetricsServiceRequest, transport: str
) -> List[Dict[str, Any]]:
    out = []
    for resource_metrics in request.resource_metrics:
        resource = _attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            scope = _scope(scope_metrics.scope)
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                base = {
                    "name": metric.name,
                    "description": metric.description,
                    "unit": metric.unit,
                    "kind": kind,
                    "resource": resource,
                    "scope": scope,
                    "transport": transport,
                }
                if kind == "sum":
                    extra = {
                        "is_monotonic": metric.sum.is_monotonic,
                        "aggregation_temporality": _TEMPORALITY(metric.sum.aggregation_temporality),
                    }
                    points = [(p, dict(extra, **_number_point(p))) for p in metric.sum.data_points]
                elif kind == "gauge":
                    points = [(p, _number_point(p)) for p in metric.gauge.data_points]
                elif kind == "histogram":
                    temporality = _TEMPORALITY(metric.histogram.aggregation_temporality)
                    points = [
                        (
                            p,
                            {
                                "count": p.count,
                                "sum": _optional(p, "sum"),
                                "min": _optional(p, "min"),
                                "max": _optional(p, "max"),
                                "bucket_counts": list(p.bucket_counts),
                                "explicit_bounds": list(p.explicit_bounds),
                                "aggregation_temporality": temporality,
                            },
                        )
                        for p in metric.histogram.data_points
                    ]
                elif kind == "exponential_histogram":
                    temporality = _TEMPORALITY(metric.exponential_histogram.aggregation_temporality)
                    points = [
                        (
                            p,
                            {
                                "count": p.count,
                                "sum": _optional(p, "sum"),
                                "min": _optional(p, "min"),
                                "max": _optional(p, "max"),
                                "scale": p.scale,
                                "zero_count": p.zero_count,
                                "aggregation_temporality": temporality,
                            },
                        )
                        for p in metric.exponential_histogram.data_points
                    ]
                elif kind == "summary":
                    points = [
                        (
                            p,
                            {
                                "count": p.count,
                                "sum": p.sum,
                                "quantile_values": {q.quantile: q.value for q in p.quantile_values},
                            },
                        )
                        for p in metric.summary.data_points
                    ]
                else:  # metric without data
                    points = []
                for point, fields in points:
                    item = dict(base)
                    item["resource"] = dict(resource)
                    item["scope"] = dict(scope)
                    item["attributes"] = _attributes(point.attributes)
                    item["attribute_kinds"] = _attribute_kinds(point.attributes)
                    item["start_time_unix_nano"] = point.start_time_unix_nano
                    item["time_unix_nano"] = point.time_unix_nano
                    item.update(fields)
                    out.append(item)
    return out


# --------------------------------------------------------------------------- #
# OTLP/JSON helpers
# --------------------------------------------------------------------------- #
_ID_KEYS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP/JSON carries trace/span ids as hex; protobuf JSON expects base64."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str) and len(value) == 2 * _ID_KEYS[key]:
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
                except ValueError:
                    pass  # not hex: leave it (may already be base64)
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for value in node:
            _hex_ids_to_base64(value)
    return node


# --------------------------------------------------------------------------- #
# gRPC servicers
# --------------------------------------------------------------------------- #
class _TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: "OtlpReceiver") -> None:
        self._receiver = receiver

    def Export(self, request, context):  # noqa: N802 (grpc naming)
        headers = {k.lower(): v for k, v in context.invocation_metadata()}
        self._receiver._record("traces", "grpc", request, headers)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: "OtlpReceiver") -> None:
        self._receiver = receiver

    def Export(self, request, context):  # noqa: N802 (grpc naming)
        headers = {k.lower(): v for k, v in context.invocation_metadata()}
        self._receiver._record("metrics", "grpc", request, headers)
        return metrics_service_pb2.ExportMetricsServiceResponse()


# --------------------------------------------------------------------------- #
# HTTP server
# --------------------------------------------------------------------------- #
_HTTP_SIGNALS = {
    TRACES_PATH: (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
    METRICS_PATH: (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
}


class _HttpServer(ThreadingHTTPServer):
    # Non-daemon handler threads are tracked so server_close() joins them:
    # nothing is left running once stop() returns.
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    receiver: "OtlpReceiver"


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so no handler thread lingers on an
    # idle keep-alive connection after the exporter is done.
    protocol_version = "HTTP/1.0"
    timeout = 5  # socket timeout: a stalled client cannot pin a thread forever
    server: _HttpServer

    def log_message(self, format, *args):  # noqa: A002 - silence stderr access log
        pass

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, code: int, message: str) -> None:
        self._reply(code, message.encode("utf-8"), "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        signal = _HTTP_SIGNALS.get(path)
        if signal is None:
            self._error(404, f"unknown OTLP path {path!r}")
            return
        name, request_cls, response_cls = signal

        try:
            length = int(self.headers["Content-Length"])
        except (TypeError, ValueError):
            self._error(411, "a valid Content-Length is required")
            return
        body = self.rfile.read(length)

        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            elif encoding not in ("", "identity"):
                self._error(415, f"unsupported Content-Encoding {encoding!r}")
                return
        except (OSError, EOFError, zlib.error) as exc:
            self._error(400, f"cannot decompress body: {exc}")
            return

        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        request = request_cls()
        try:
            if content_type == _PROTOBUF:
                request.ParseFromString(body)
            elif content_type == _JSON:
                json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), request, ignore_unknown_fields=True)
            else:
                self._error(415, f"unsupported Content-Type {content_type!r}")
                return
        except (DecodeError, json_format.ParseError, ValueError, binascii.Error) as exc:
            self._error(400, f"cannot parse {content_type} body: {exc}")
            return

        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            self.server.receiver._record(name, "http", request, headers)
        except Exception as exc:  # a receiver bug must surface, not hang the client
            self._error(500, f"receiver failed to record the request: {exc!r}")
            raise

        if content_type == _JSON:
            self._reply(200, json_format.MessageToJson(response_cls()).encode("utf-8"), _JSON)
        else:
            self._reply(200, response_cls().SerializeToString(), _PROTOBUF)


# --------------------------------------------------------------------------- #
# the receiver
# --------------------------------------------------------------------------- #
class OtlpReceiver:
    """In-process OTLP receiver: gRPC (traces + metrics) and HTTP (/v1/traces, /v1/metrics)."""

    def __init__(self, host: str = "127.0.0.1", grpc_grace_s: float = 0.5) -> None:
        self._host = host
        self._grace = grpc_grace_s
        self._cond = threading.Condition()
        self._spans: List[Dict[str, Any]] = []
        self._metrics: List[Dict[str, Any]] = []
        self._requests: List[Dict[str, Any]] = []
        self._grpc_server: Optional[grpc.Server] = None
        self._grpc_pool: Optional[futures.ThreadPoolExecutor] = None
        self._http_server: Optional[_HttpServer] = None
        self._http_thread: Optional[threading.Thread] = None
        self._grpc_port: Optional[int] = None
        self._http_port: Optional[int] = None
        self._stop_lock = threading.Lock()

    # ---- lifecycle -------------------------------------------------------- #
    def start(self) -> "OtlpReceiver":
        if self._grpc_server is not None or self._http_server is not None:
            return self
        try:
            pool = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="otlp-receiver-grpc")
            self._grpc_pool = pool
            server = grpc.server(pool, options=[("grpc.so_reuseport", 0)])
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceServicer(self), server)
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsServicer(self), server)
            port = server.add_insecure_port(f"{self._host}:0")
            if not port:
                raise RuntimeError("gRPC server could not bind a port")
            self._grpc_server = server
            server.start()
            self._grpc_port = port

            http_server = _HttpServer((self._host, 0), _Handler)
            http_server.receiver = self
            self._http_server = http_server
            self._http_port = http_server.server_address[1]
            thread = threading.Thread(
                target=http_server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="otlp-receiver-http",
                daemon=True,
            )
            self._http_thread = thread
            thread.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both servers and join their threads; safe to call repeatedly."""
        with self._stop_lock:
            server, self._grpc_server = self._grpc_server, None
            pool, self._grpc_pool = self._grpc_pool, None
            http_server, self._http_server = self._http_server, None
            thread, self._http_thread = self._http_thread, None
            if server is not None:
                server.stop(self._grace).wait()
            if pool is not None:
                pool.shutdown(wait=True)
            if http_server is not None:
                if thread is not None and thread.is_alive():
                    http_server.shutdown()  # stops serve_forever (blocks until it has)
                http_server.server_close()  # closes the socket, joins handler threads
            if thread is not None:
                thread.join(timeout=5)

    close = stop

    def __enter__(self) -> "OtlpReceiver":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._grpc_server is not None

    # ---- endpoints -------------------------------------------------------- #
    @property
    def grpc_port(self) -> int:
        if self._grpc_port is None:
            raise RuntimeError("receiver not started")
        return self._grpc_port

    @property
    def http_port(self) -> int:
        if self._http_port is None:
            raise RuntimeError("receiver not started")
        return self._http_port

    @property
    def grpc_endpoint(self) -> str:
        """``"127.0.0.1:PORT"`` - pass with ``insecure=True`` to the gRPC exporters."""
        return f"{self._host}:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """``"http://127.0.0.1:PORT"`` - append ``/v1/traces`` or ``/v1/metrics``."""
        return f"http://{self._host}:{self.http_port}"

    @property
    def http_traces_endpoint(self) -> str:
        return self.http_endpoint + TRACES_PATH

    @property
    def http_metrics_endpoint(self) -> str:
        return self.http_endpoint + METRICS_PATH

    # ---- recording -------------------------------------------------------- #
    def _record(self, signal: str, transport: str, request: Message, headers: Dict[str, str]) -> None:
        if signal == "traces":
            items = _flatten_spans(request, transport)
        else:
            items = _flatten_metrics(request, transport)
        with self._cond:
            self._requests.append(
                {
                    "signal": signal,
                    "transport": transport,
                    "headers": headers,
                    "message": request,
                }
            )
            (self._spans if signal == "traces" else self._metrics).extend(items)
            self._cond.notify_all()

    # ---- access ----------------------------------------------------------- #
    def spans(self, name: Optional[str] = None) -> List[Dict[str, Any]]:
        """All received spans (oldest first), optionally only those called ``name``."""
        with self._cond:
            return [s for s in self._spans if name is None or s["name"] == name]

    def metrics(self, name: Optional[str] = None) -> List[Dict[str, Any]]:
        """All received metric data points (oldest first), optionally only metric ``name``.

        Every export of a cumulative metric adds its points again, so the last
        matching point is the current value.
        """
        with self._cond:
            return [m for m in self._metrics if name is None or m["name"] == name]

    def requests(self, signal: Optional[str] = None) -> List[Dict[str, Any]]:
        """Raw requests: ``{"signal", "transport", "headers", "message"}`` (``message`` is the protobuf)."""
        with self._cond:
            return [r for r in self._requests if signal is None or r["signal"] == signal]

    attribute_types = staticmethod(attribute_types)

    def clear(self) -> None:
        with self._cond:
            self._spans.clear()
            self._metrics.clear()
            self._requests.clear()

    # ---- waiting ---------------------------------------------------------- #
    def _wait(self, ready: Callable[[], Any], timeout_s: float, what: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ReceiverTimeout(f"timed out after {timeout_s}s waiting for {what()}")
                self._cond.wait(remaining)

    def wait_for_spans(self, n: int = 1, timeout_s: float = 10.0) -> List[Dict[str, Any]]:
        """Block until at least ``n`` spans were received; return all spans.

        Raises :class:`ReceiverTimeout` (an ``AssertionError``) on timeout.
        """
        self._wait(
            lambda: len(self._spans) >= n,
            timeout_s,
            lambda: f"{n} span(s); got {len(self._spans)}: {[s['name'] for s in self._spans]}",
        )
        return self.spans()

    def wait_for_metrics(
        self,
        predicate: Optional[Callable[[List[Dict[str, Any]]], Any]] = None,
        timeout_s: float = 10.0,
    ) -> List[Dict[str, Any]]:
        """Block until ``predicate(list_of_points)`` is truthy (default: any point); return all points.

        Raises :class:`ReceiverTimeout` (an ``AssertionError``) on timeout.
        """
        check = predicate if predicate is not None else bool

        def ready() -> bool:
            return bool(check(list(self._metrics)))

        self._wait(
            ready,
            timeout_s,
            lambda: f"metrics predicate; got {sorted({m['name'] for m in self._metrics})}",
        )
        return self.metrics()

    def __repr__(self) -> str:
        if not self.running:
            return "<OtlpReceiver stopped>"
        return f"<OtlpReceiver grpc={self.grpc_endpoint} http={self.http_endpoint}>"
