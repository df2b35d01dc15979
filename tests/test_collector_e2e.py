"""End to end, with the real programs: ``examples/flask_app.py`` under
``opentelemetry-instrument`` sends OTLP to the OpenTelemetry Collector running the shipped
``collector/otelcol-config.yaml`` (endpoints moved by environment variables only), which sends
the traces to Jaeger v2 (in memory) and the metrics to its Prometheus exporter, scraped by
Debian's ``prometheus``. The app also writes every span it exports to a file (the SDK's
console exporter beside OTLP), which is what the backends are checked against:

* Jaeger's query API returns every request's trace, and its server span's ``carbon.*``
  attributes are exactly the app's;
* Prometheus has the collector's per-route counters (from the span attributes) and the app's
  own meter series, and each per-route total is the sum over the app's spans;
* headless Chromium opens the Jaeger UI on a trace and finds ``carbon.energy.total`` among
  the server span's tags (needs a jaeger-ui build, see ``ui_assets``).

Binaries: tests/collector_stack.py (``OTEL_CARBON_E2E``)."""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, List

import httpx
import pytest

from otel_carbon import attributes as A

try:
    from cdp_browser import CHROMIUM, Browser
    from collector_stack import COLLECTOR, Collector, Jaeger, base_env, binaries, free_port
    from prometheus_server import PrometheusServer, prometheus_binary
    from test_collector_names import APP_PROM_NAMES, connector_prom_names
    from test_collector_verify import load_verify
    from test_examples_common import BIN, COUNTRY, EXAMPLES, Proc, wait_http, wait_until
except ImportError:  # tests/ imported as a package
    from .cdp_browser import CHROMIUM, Browser
    from .collector_stack import COLLECTOR, Collector, Jaeger, base_env, binaries, free_port
    from .prometheus_server import PrometheusServer, prometheus_binary
    from .test_collector_names import APP_PROM_NAMES, connector_prom_names
    from .test_collector_verify import load_verify
    from .test_examples_common import BIN, COUNTRY, EXAMPLES, Proc, wait_http, wait_until

pytestmark = pytest.mark.e2e

SERVICE = "flask-example"
REQUESTS = {"/work?rounds=60000": 4, "/work?rounds=5000": 3, "/health": 3}  # path -> how many
ROUTES = {"/work": 7, "/health": 3}
WAIT_S = 60.0
UI_ASSETS_ENV = "OTEL_CARBON_JAEGER_UI"  # a jaeger-ui build (its index.html and static/)
REL = 1e-9  # sums of doubles, added in another order


def console_spans(path: Path) -> List[Dict[str, Any]]:
    """The spans the SDK's console exporter wrote (one ``to_json()`` object after another)."""
    text, decoder, spans, at = path.read_text(), json.JSONDecoder(), [], 0
    while True:
        at = text.find("{", at)
        if at < 0:
            return spans
        try:
            span, at = decoder.raw_decode(text, at)
        except json.JSONDecodeError:  # the last one is still being written
            return spans
        spans.append(span)


def app_server_spans(path: Path) -> List[Dict[str, Any]]:
    return [s for s in console_spans(path) if s["kind"] == "SpanKind.SERVER" and A.HTTP_ROUTE in s["attributes"]]


def carbon_attributes(attributes: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in attributes.items() if k.startswith("carbon.")}


def otlp_value(value: Dict[str, Any]) -> Any:
    """The Python value of an OTLP JSON AnyValue (int64 values are JSON strings)."""
    (kind, raw), = value.items()
    return int(raw) if kind == "intValue" else raw


class Stack:
    def __init__(self, jaeger: Jaeger, collector: Collector, prom: PrometheusServer, spans_file: Path) -> None:
        self.jaeger, self.collector, self.prom, self.spans_file = jaeger, collector, prom, spans_file
        self.spans: List[Dict[str, Any]] = []

    def per_route(self, promql: str) -> Dict[str, float]:
        return {r["metric"].get("http_route"): float(r["value"][1]) for r in self.prom.query(promql)}

    def jaeger_trace(self, trace_id: str) -> List[Dict[str, Any]]:
        """The spans of one trace from Jaeger's API v3, each with its resource's attributes."""
        response = self.jaeger.get(f"/api/v3/traces/{trace_id}")
        if response.status_code != 200:
            return []
        out = []
        for rs in response.json()["result"]["resourceSpans"]:
            resource = {kv["key"]: otlp_value(kv["value"]) for kv in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                for span in ss["spans"]:
                    span["attributes"] = {kv["key"]: otlp_value(kv["value"]) for kv in span.get("attributes", [])}
                    span["resource"] = resource
                    out.append(span)
        return out


def ui_assets() -> str:
    """A jaeger-ui build to serve, or "" (the binary's own assets)."""
    return os.environ.get(UI_ASSETS_ENV, "")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    paths = binaries()
    if prometheus_binary() is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus; .ci/run installs it)")
    spans_file = tmp_path_factory.mktemp("e2e") / "spans.json"
    jaeger = Jaeger(paths["jaeger"], ui_assets=ui_assets())
    try:
        collector = Collector(paths["otelcol"], COLLECTOR / "otelcol-config.yaml", jaeger_otlp=jaeger.otlp_grpc)
        try:
            with PrometheusServer([collector.prometheus], honor_labels=True) as prom:
                yield run_app(Stack(jaeger, collector, prom, spans_file))
        finally:
            collector.proc.stop()
    finally:
        jaeger.proc.stop()


def run_app(stack: Stack) -> Stack:
    port = free_port()
    env = base_env()
    env.update(
        PORT=str(port),
        OTEL_SERVICE_NAME=SERVICE,
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{stack.collector.otlp_http}",
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_TRACES_EXPORTER="otlp,console",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_CARBON_COUNTRY=COUNTRY,
        OTEL_CARBON_NVML="off",
        PYTHONUNBUFFERED="1",
    )
    argv = [str(BIN / "opentelemetry-instrument"), str(BIN / "python"), "flask_app.py"]
    base = f"http://127.0.0.1:{port}"
    with open(stack.spans_file, "wb") as out, Proc(argv, env, cwd=EXAMPLES, stdout=out) as app:
        wait_http(app, f"{base}/health", timeout_s=60)
        with httpx.Client(timeout=30) as client:
            for path, n in REQUESTS.items():
                for _ in range(n):
                    assert client.get(base + path).status_code == 200
        expected = dict(ROUTES)
        expected["/health"] += 1  # the readiness probe's answered request
        def all_written() -> bool:
            written = _routes(app_server_spans(stack.spans_file))
            return all(written.get(route, 0) >= n for route, n in expected.items())

        wait_until(all_written, WAIT_S, f"the app's spans {expected}\n{app.describe()}")
        stack.spans = app_server_spans(stack.spans_file)
        # the probe may have sent more than one /health before the app answered
        counts = _routes(stack.spans)
        missing = [s for s in stack.spans if not s["attributes"].get(A.ENERGY_TOTAL)]
        assert not missing, missing
        deadline = time.monotonic() + WAIT_S
        while True:  # every span counted by the connector and by the app's meter
            if (stack.per_route(_name("connector", "carbon.traces.spans")) == counts
                    and stack.per_route(_name("app", A.SPAN_COUNT)) == counts):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus never counted {counts}: {stack.prom.targets_health()}\n"
                            f"{stack.collector.proc.describe()}\n{app.describe()}")
            time.sleep(0.25)
        app.stop()  # flushes nothing new: every span is in already
    return stack


def _routes(spans: List[Dict[str, Any]]) -> Dict[str, int]:
    out: Dict[str, int] = {}
    for span in spans:
        route = span["attributes"][A.HTTP_ROUTE]
        out[route] = out.get(route, 0) + 1
    return out


def _name(source: str, metric: str) -> str:
    """A PromQL sum per route of ``metric``'s series (a counter: one Prometheus name)."""
    (name,) = connector_prom_names()[metric] if source == "connector" else APP_PROM_NAMES[metric]
    return f'sum by (http_route) ({name}{{job="{SERVICE}"}})'


def test_jaeger_returns_every_trace_with_the_apps_figures(stack):
    assert len(stack.spans) >= sum(ROUTES.values())
    for span in stack.spans:
        trace_id = span["context"]["trace_id"][2:]
        span_id = span["context"]["span_id"][2:]
        stored = []
        wait_until(lambda: bool(stored.extend(stack.jaeger_trace(trace_id)) or stored), WAIT_S,
                   f"trace {trace_id} in Jaeger")
        (server,) = [s for s in stored if s["spanId"] == span_id]
        assert server["resource"]["service.name"] == SERVICE
        exported = carbon_attributes(span["attributes"])
        assert exported[A.ENERGY_TOTAL] > 0 and exported[A.METHOD] in (A.MEASURED, A.ESTIMATED, A.MIXED)
        assert carbon_attributes(server["attributes"]) == exported  # doubles round-trip exactly


def test_prometheus_per_route_totals_are_the_sums_over_spans(stack):
    spans_by_route: Dict[str, List[Dict[str, Any]]] = {}
    for span in stack.spans:
        spans_by_route.setdefault(span["attributes"][A.HTTP_ROUTE], []).append(span)
    energy = {r: sum(s["attributes"][A.ENERGY_TOTAL] for s in spans) for r, spans in spans_by_route.items()}
    emissions = {r: sum(s["attributes"][A.EMISSIONS] for s in spans) for r, spans in spans_by_route.items()}
    assert set(energy) == set(ROUTES)
    shown = {
        "collector energy": (stack.per_route(_name("connector", "carbon.traces.energy")), energy),
        "collector CO2e": (stack.per_route(_name("connector", "carbon.traces.emissions")), emissions),
        "app energy": (stack.per_route(_name("app", A.SPAN_ENERGY)), energy),
        "app CO2e": (stack.per_route(_name("app", A.SPAN_EMISSIONS)), emissions),
    }
    for what, (prometheus, spans) in shown.items():
        assert set(prometheus) == set(spans), what
        for route, total in spans.items():
            assert total > 0
            assert prometheus[route] == pytest.approx(total, rel=REL), (what, route)
    # the connector's names, derived from the YAML by test_collector_names, are the real ones
    shown_names = set(httpx.get(stack.prom.url + "/api/v1/label/__name__/values", timeout=10).json()["data"])
    derived = {n for names in connector_prom_names().values() for n in names}
    assert {n for n in shown_names if n.startswith("carbon_traces_")} == derived
    # the app's meter also reports the hardware's energy, through the same collector
    assert stack.prom.query(f'{APP_PROM_NAMES[A.HW_ENERGY][0]}{{job="{SERVICE}"}}')


def test_verify_py_on_the_real_jaeger_and_prometheus(stack):
    """collector/verify.py, and the answers tests/jaeger_fake.py imitates, on the real thing."""
    verify = load_verify()
    with_figures = [s for s in console_spans(stack.spans_file) if A.ENERGY_TOTAL in s["attributes"]]
    report = verify.check_jaeger(stack.jaeger.url, SERVICE, lookback_s=600)
    assert report["ok"] and report["status"] == 200, report
    assert report["spans_with_figures"] == len(with_figures)
    assert report["traces"] == len({s["context"]["trace_id"] for s in with_figures})
    assert report["energy_j"] == pytest.approx(sum(s["attributes"][A.ENERGY_TOTAL] for s in with_figures), rel=REL)
    assert report["emissions_g"] == pytest.approx(sum(s["attributes"][A.EMISSIONS] for s in with_figures), rel=REL)
    assert report["services"] == [SERVICE]
    # Jaeger's answers that the stand-in imitates: 404 with an error body, 400 without a time range
    other = verify.check_jaeger(stack.jaeger.url, "no-such-service", lookback_s=600)
    assert not other["ok"] and other["status"] == 404, other
    old = verify.check_jaeger(stack.jaeger.url, SERVICE, lookback_s=60, now_s=time.time() + 3600)
    assert not old["ok"] and old["status"] == 404, old
    status, raw = verify._get(f"{stack.jaeger.url}/api/v3/traces?query.service_name={SERVICE}", 5)
    assert status == 400 and json.loads(raw)["error"]["httpCode"] == 400
    prometheus = verify.check_prometheus(stack.prom.url, SERVICE)
    assert prometheus["ok"], prometheus
    out = io.StringIO()
    assert verify.main(["--jaeger", stack.jaeger.url, "--prometheus", stack.prom.url, "--service", SERVICE], out=out) == 0
    assert "carbon figures arrived" in out.getvalue()


@pytest.mark.jaeger_ui
@pytest.mark.skipif(CHROMIUM is None, reason="the chromium binary is missing (apt-get install chromium)")
def test_jaeger_ui_shows_the_energy_tag(stack, tmp_path):
    page = stack.jaeger.get("/").text
    if "placeholder" in page.lower() and not ui_assets():
        pytest.skip(f"this Jaeger has no UI (a build from the Go modules has none): set {UI_ASSETS_ENV} "
                    "to a jaeger-ui build")
    span = max(stack.spans, key=lambda s: s["attributes"][A.ENERGY_TOTAL])
    trace_id = span["context"]["trace_id"][2:]
    with Browser(tmp_path / "profile", width=1280, height=760) as browser:
        browser.open(f"{stack.jaeger.url}/trace/{trace_id}")
        browser.wait_for(f"document.body.innerText.includes({json.dumps(span['name'])})", 60, "the trace view")
        # unfold the server span (the first row) and its tags
        browser.evaluate("document.querySelector('.span-name-column .span-name').click()")
        browser.wait_for("document.body.innerText.includes('Tags')", 30, "the span's details")
        browser.evaluate("[...document.querySelectorAll('.AccordianKeyValues--header')]"
                         ".find(h => h.innerText.includes('Tags')).click()")
        shown = browser.wait_for(
            "[...document.querySelectorAll('.KeyValueTable--row')].map(r => r.innerText)"
            f".find(t => t.includes({json.dumps(A.ENERGY_TOTAL)}))", 30, f"{A.ENERGY_TOTAL} in the tags")
        png = browser.screenshot()
    assert str(span["attributes"][A.ENERGY_TOTAL]) in shown.replace("\n", " ").replace("\t", " ")
    assert png.startswith(b"\x89PNG")
    (tmp_path / "jaeger.png").write_bytes(png)
    keep = os.environ.get("OTEL_CARBON_KEEP_SCREENSHOT")
    if keep:
        shutil.copyfile(tmp_path / "jaeger.png", keep)
