"""Per-route metrics under head sampling: every request counts, traces stay as sampled.

A real Flask app on loopback with the official instrumentation, set up by
``otel_carbon.configure(set_global=False)`` with the sampler from ``OTEL_TRACES_SAMPLER`` /
``OTEL_TRACES_SAMPLER_ARG`` (the SDK reads them), spans exported through a
``BatchSpanProcessor`` to an in-memory exporter, metrics read by an in-memory reader.
The same 400 requests, interleaved, go to an app unsampled (``always_on``) and to one at
10 % (``parentbased_traceidratio``); per-route figures must agree, exported spans must not.
"""

from __future__ import annotations

import http.client
import threading
from collections import defaultdict
from typing import Any, Dict, Tuple

import pytest
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio
from werkzeug.serving import make_server

import otel_carbon
from otel_carbon import _log
from otel_carbon import attributes as A
from otel_carbon import config
from otel_carbon import process_sampler as sampler_module
from otel_carbon.record_unsampled import RecordUnsampled

if __package__:
    from .metrics_flask_app import COST, _QuietHandler, make_app
else:
    from metrics_flask_app import COST, _QuietHandler, make_app

REQUESTS = 400  # 200 per route


@pytest.fixture
def process_sampler(ccf_sampler, monkeypatch):
    """The CCF sampler as the process-wide one (what configure() uses), OTEL_* cleared."""
    import os

    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)
    _log.reset_for_tests()
    old = sampler_module.set_sampler(ccf_sampler)
    try:
        yield ccf_sampler
    finally:
        sampler_module.set_sampler(old)


class ConfiguredApp:
    """A Flask app on loopback, instrumented with the providers of a configure() call made
    with ``OTEL_TRACES_SAMPLER=sampler_name`` and ``OTEL_TRACES_SAMPLER_ARG=arg``."""

    def __init__(self, sampler_name: str, arg: str, monkeypatch: Any) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler_name)
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
        self.exporter, self.reader = InMemorySpanExporter(), InMemoryMetricReader()
        self.setup = otel_carbon.configure(
            service_name="sampling-test", traces_exporter=self.exporter, metrics_exporter=self.reader, set_global=False
        )
        self.trace_sampler = self.setup.tracer_provider.sampler  # while it runs (shutdown unwraps it)
        self.app = make_app()
        FlaskInstrumentor().instrument_app(self.app, tracer_provider=self.setup.tracer_provider)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.server.server_port, timeout=10)

    def get(self, route: str) -> None:
        self.conn.request("GET", route)
        response = self.conn.getresponse()
        response.read()
        assert response.status == 200

    def results(self) -> Tuple[Dict[str, Dict[str, float]], list]:
        """Per-route sums of the span counters, and the exported spans."""
        assert self.setup.force_flush(10_000)
        sums: Dict[str, Dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for rm in self.reader.get_metrics_data().resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name in (A.SPAN_ENERGY, A.SPAN_COUNT, A.SPAN_EMISSIONS):
                        for point in metric.data.data_points:
                            sums[metric.name][point.attributes.get(A.HTTP_ROUTE)] += point.value
        return sums, list(self.exporter.get_finished_spans())

    def close(self) -> None:
        self.conn.close()
        self.server.shutdown()
        self.server.server_close()
        FlaskInstrumentor().uninstrument_app(self.app)
        self.setup.shutdown()


def test_ten_percent_head_sampling_keeps_per_route_metrics_and_exports_as_sampled(process_sampler, monkeypatch):
    unsampled_app = ConfiguredApp("always_on", "", monkeypatch)
    sampled_app = ConfiguredApp("parentbased_traceidratio", "0.1", monkeypatch)
    try:
        routes = list(COST)
        for i in range(REQUESTS):  # interleaved: the shared machine's drift hits both runs alike
            unsampled_app.get(routes[i % len(routes)])
            sampled_app.get(routes[i % len(routes)])
        full, full_spans = unsampled_app.results()
        sampled, sampled_spans = sampled_app.results()
        wrapper = sampled_app.trace_sampler
    finally:
        unsampled_app.close()
        sampled_app.close()

    # the application's sampler (from the environment) is wrapped, not replaced
    assert isinstance(wrapper, RecordUnsampled) and isinstance(wrapper.delegate, ParentBasedTraceIdRatio)
    assert "TraceIdRatioBased{0.1}" in wrapper.get_description()

    # unsampled run: every span exported, and the metrics hold exactly the exported spans' sums
    assert len(full_spans) == REQUESTS
    for route in COST:
        exported = [s for s in full_spans if s.attributes[A.HTTP_ROUTE] == route]
        assert full[A.SPAN_COUNT][route] == len(exported) == REQUESTS // len(COST)
        assert full[A.SPAN_ENERGY][route] == pytest.approx(sum(s.attributes[A.ENERGY_TOTAL] for s in exported), rel=1e-9)

    # 10 %: traces as sampled (Binomial(400, 0.1): 40 +- 6), every request in the metrics
    assert 10 <= len(sampled_spans) <= 90, len(sampled_spans)
    assert all(s.context.trace_flags.sampled for s in sampled_spans)
    assert all(s.attributes[A.ENERGY_TOTAL] > 0 for s in sampled_spans)  # figures on exported spans
    for route in COST:
        assert sampled[A.SPAN_COUNT][route] == full[A.SPAN_COUNT][route] == REQUESTS // len(COST)
        assert sampled[A.SPAN_ENERGY][route] == pytest.approx(full[A.SPAN_ENERGY][route], rel=0.20)
        assert sampled[A.SPAN_EMISSIONS][route] == pytest.approx(full[A.SPAN_EMISSIONS][route], rel=0.20)
    # and the routes keep their order of cost
    assert sampled[A.SPAN_ENERGY]["/heavy"] > sampled[A.SPAN_ENERGY]["/light"]


def test_switched_off_the_metrics_see_the_sampled_requests_only(process_sampler, monkeypatch):
    monkeypatch.setenv(config.OTEL_CARBON_RECORD_UNSAMPLED, "off")
    app = ConfiguredApp("parentbased_traceidratio", "0.1", monkeypatch)
    try:
        for i in range(REQUESTS):
            app.get(list(COST)[i % len(COST)])
        sums, spans = app.results()
    finally:
        app.close()
    assert isinstance(app.trace_sampler, ParentBasedTraceIdRatio)  # left alone
    assert 10 <= len(spans) <= 90
    assert sum(sums[A.SPAN_COUNT].values()) == len(spans)  # the bias the wrapper removes
