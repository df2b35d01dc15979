"""A loopback HTTP server that answers like Jaeger v2's query API v3 (``/api/v3/traces``).

It keeps ``collector/verify.py``'s Jaeger half testable without Go (the real Jaeger of
test_collector_e2e.py needs a Go build); that test also checks, on the real Jaeger, the
answers this server gives. It follows Jaeger's documented v3 HTTP gateway
(jaegertracing/jaeger ``cmd/jaeger/internal/extension/jaegerquery/internal/apiv3/http_gateway.go``
and the ``api_v3`` query service proto):

* ``GET /api/v3/traces`` needs ``query.start_time_min`` and ``query.start_time_max``
  (RFC 3339, nanoseconds allowed): 400 without them or when malformed; filters on
  ``query.service_name`` (the resource's ``service.name``) and on each trace's start time;
  ``query.search_depth`` (or its older name ``query.num_traces``) caps the number of traces.
* A match answers 200 ``{"result": {"resourceSpans": [...]}}``: OTLP JSON (camelCase
  fields, hex trace and span ids, 64-bit integers as strings).
* No match answers 404 ``{"error": {"httpCode": 404, "message": "No traces found"}}``.
* ``GET /api/v3/services`` answers ``{"services": [...]}``.

The spans come from the SDK (:func:`otlp_json_resource_spans` encodes ``ReadableSpan``s with
the OTLP exporter's own encoder), so the attributes are those our processor really wrote.
"""

from __future__ import annotations

import base64
import calendar
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterable, List, Optional, Tuple

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_rfc3339_ns(text: str) -> int:
    """Unix nanoseconds of an RFC 3339 time, as Go's ``time.RFC3339Nano`` parses it."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not RFC 3339: {text!r}")
    year, month, day, hour, minute, second, frac, zone = match.groups()
    seconds = calendar.timegm((int(year), int(month), int(day), int(hour), int(minute), int(second), 0, 0, 0))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0"))


def otlp_json_resource_spans(spans: Iterable[Any]) -> List[Dict[str, Any]]:
    """OTLP JSON ``resourceSpans`` of SDK ``ReadableSpan``s (the OTLP/HTTP JSON encoding)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    message = MessageToDict(encode_spans(list(spans)))
    resource_spans = message.get("resourceSpans", [])
    for rs in resource_spans:
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):  # protobuf JSON writes bytes as base64; OTLP JSON as hex
                        span[key] = base64.b64decode(span[key]).hex()
    return resource_spans


def _service(resource_spans: Dict[str, Any]) -> Optional[str]:
    for kv in (resource_spans.get("resource") or {}).get("attributes", []):
        if kv.get("key") == "service.name":
            return (kv.get("value") or {}).get("stringValue")
    return None


class JaegerV3Fake:
    """``with JaegerV3Fake(resource_spans) as jaeger: jaeger.url`` -> http://127.0.0.1:PORT"""

    def __init__(self, resource_spans: Iterable[Dict[str, Any]] = ()) -> None:
        self.resource_spans = list(resource_spans)
        self.requests: List[Tuple[str, Dict[str, List[str]]]] = []
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- the API ------------------------------------------------------------------------

    def find_traces(self, query: Dict[str, List[str]]) -> Tuple[int, Dict[str, Any]]:
        def arg(*names: str) -> str:
            for name in names:
                if query.get(name):
                    return query[name][0]
            return ""

        time_min, time_max = arg("query.start_time_min"), arg("query.start_time_max")
        if not time_min or not time_max:
            return _error(400, "query.start_time_min and query.start_time_max are required")
        try:
            min_ns, max_ns = parse_rfc3339_ns(time_min), parse_rfc3339_ns(time_max)
        except ValueError as exc:
            return _error(400, f"malformed parameter query.start_time_min/max: {exc}")
        depth_text = arg("query.search_depth", "query.num_traces")
        try:
            depth = int(depth_text) if depth_text else 0
        except ValueError:
            return _error(400, f"malformed parameter query.search_depth: {depth_text!r}")
        service = arg("query.service_name")

        # group the matching spans by trace; a trace matches when its first span starts in the window
        trace_start: Dict[str, int] = {}
        for rs in self.resource_spans:
            if service and _service(rs) != service:
                continue
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    start = int(span["startTimeUnixNano"])
                    tid = span["traceId"]
                    trace_start[tid] = min(start, trace_start.get(tid, start))
        chosen = sorted((t for t, s in trace_start.items() if min_ns <= s <= max_ns), key=trace_start.get, reverse=True)
        if depth > 0:
            chosen = chosen[:depth]
        if not chosen:
            return _error(404, "No traces found")
        keep = set(chosen)
        result = []
        for rs in self.resource_spans:
            if service and _service(rs) != service:
                continue
            scopes = []
            for ss in rs.get("scopeSpans", []):
                spans = [s for s in ss.get("spans", []) if s["traceId"] in keep]
                if spans:
                    scopes.append({**ss, "spans": spans})
            if scopes:
                result.append({**rs, "scopeSpans": scopes})
        return 200, {"result": {"resourceSpans": result}}

    def services(self) -> Tuple[int, Dict[str, Any]]:
        return 200, {"services": sorted({s for s in map(_service, self.resource_spans) if s})}

    # -- the server ---------------------------------------------------------------------

    def start(self) -> "JaegerV3Fake":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                parsed = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(parsed.query)
                fake.requests.append((parsed.path, query))
                if parsed.path == "/api/v3/traces":
                    status, body = fake.find_traces(query)
                elif parsed.path == "/api/v3/services":
                    status, body = fake.services()
                else:
                    status, body = _error(404, "404 page not found")
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="jaeger-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> "JaegerV3Fake":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _error(code: int, message: str) -> Tuple[int, Dict[str, Any]]:
    return code, {"error": {"httpCode": code, "message": message}}
