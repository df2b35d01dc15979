"""An instrumented Flask app for the Prometheus test: two routes with a 1:4 CPU cost, the
official Flask instrumentation, a CarbonSpanProcessor, and the Prometheus exporter's HTTP
server, all on loopback. With a ``trace_sampler``, it is wrapped as ``configure()`` does
(:mod:`otel_carbon.record_unsampled`); ``recorded`` keeps every span that ended recording
(sampled or not), ``spans`` the exported ones."""

from __future__ import annotations

import threading
from typing import Any, Optional

from flask import Flask
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import start_http_server
from werkzeug.serving import WSGIRequestHandler, make_server

from otel_carbon import record_unsampled
from otel_carbon.metrics import CarbonMetrics
from otel_carbon.processor import CarbonSpanProcessor

LIGHT_ITERATIONS = 15_000
COST = {"/light": 1, "/heavy": 4}


class RecordedSpans(SpanProcessor):
    """Keeps every span that ends recording, sampled or not (behind a drop-in
    CarbonSpanProcessor, with its figures)."""

    def __init__(self) -> None:
        self.spans: list = []

    def on_end(self, span: Any) -> None:
        self.spans.append(span)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:  # no access log per request
        pass


def burn(n: int) -> int:
    x = 0
    for i in range(n):
        x += i * i
    return x


def make_app() -> Flask:
    app = Flask("otel_carbon_metrics_test")

    @app.route("/light")
    def light() -> str:
        return str(burn(COST["/light"] * LIGHT_ITERATIONS))

    @app.route("/heavy")
    def heavy() -> str:
        return str(burn(COST["/heavy"] * LIGHT_ITERATIONS))

    return app


class InstrumentedApp:
    """The app served by werkzeug on 127.0.0.1 (threaded), metrics on the exporter's server."""

    def __init__(self, sampler: Any, trace_sampler: Any = None) -> None:
        self.spans = InMemorySpanExporter()
        self.recorded = RecordedSpans()
        self.tracer_provider = TracerProvider(sampler=trace_sampler)
        if trace_sampler is not None:
            record_unsampled.install(self.tracer_provider)
        self.processor = CarbonSpanProcessor(sampler=sampler)
        self.tracer_provider.add_span_processor(self.processor)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer_provider.add_span_processor(self.recorded)
        self.reader = PrometheusMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.carbon = CarbonMetrics(self.meter_provider, sampler=sampler).attach(self.processor)
        self.app = make_app()
        FlaskInstrumentor().instrument_app(
            self.app, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )
        self._metrics_server: Optional[Any] = None
        self._server: Optional[Any] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "InstrumentedApp":
        self._metrics_server, _ = start_http_server(0, addr="127.0.0.1")
        self.metrics_port = self._metrics_server.server_port
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="flask-app", daemon=True)
        self._thread.start()
        return self

    def request_each_route(self, times: int) -> None:
        """GET every route of ``COST`` ``times`` times over one keep-alive connection."""
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            for _ in range(times):
                for route in COST:
                    conn.request("GET", route)
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200, (route, response.status)
        finally:
            conn.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        FlaskInstrumentor().uninstrument_app(self.app)
        self.carbon.shutdown()
        self.meter_provider.shutdown()  # unregisters the reader from prometheus_client
        self.tracer_provider.shutdown()
