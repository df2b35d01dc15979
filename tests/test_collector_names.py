"""Names in collector/ against the package's constants and against a real Prometheus.

* The span attributes the collector configurations read, the metrics they export to
  CloudWatch and their dimensions, the Grafana and CloudWatch dashboards, the README's PromQL
  and ``verify.py`` only use names from ``otel_carbon/attributes.py`` (renaming a constant
  there fails these tests), or the connector's own metrics, defined once in the YAML.
* The Prometheus names a dashboard queries are those a real Prometheus shows: the package's
  meter runs here (the Flask app of the Meter tests), the Debian ``prometheus`` scrapes it, and
  every name a dashboard uses must be in ``/api/v1/label/__name__/values``, every query must
  run, and every query on the app's metrics must return series. The connector's metrics are
  only made by a collector: here their names are derived from the YAML with the OpenTelemetry
  -> Prometheus naming rules, first checked against what the real Prometheus shows for the
  app's own metrics; tests/test_collector_e2e.py runs the real collector and checks that the
  derived names are exactly the ones it produces.
* ``verify.py``'s Prometheus half runs against that same real Prometheus.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Set, Tuple

import pytest
import yaml

from otel_carbon import attributes as A
from otel_carbon.intensity import Intensity, StaticIntensitySource
from otel_carbon.sampler import Sampler
from otel_carbon.sensors.cpu_model import CpuModelSensor
from otel_carbon.sensors.probe import Probe

if __package__:
    from .metrics_flask_app import COST, InstrumentedApp
    from .prometheus_server import JOB, PrometheusServer, http_get, prometheus_binary
else:
    from metrics_flask_app import COST, InstrumentedApp
    from prometheus_server import JOB, PrometheusServer, http_get, prometheus_binary

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = ROOT / "collector"
CONNECTOR = "signal_to_metrics"

# -- the OpenTelemetry -> Prometheus naming rules (specification: compatibility/prometheus) ----

UNIT_WORDS = {"J": "joules", "W": "watts", "g": "grams", "s": "seconds", "ms": "milliseconds", "By": "bytes", "1": ""}
PER_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}


def prometheus_names(name: str, unit: str, kind: str) -> List[str]:
    """Series names Prometheus shows for an OTel metric: dots -> underscores, the unit as a
    suffix (annotations in braces dropped), ``_total`` for counters (monotonic sums), and
    ``_bucket``/``_sum``/``_count`` for histograms."""
    base = re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9_:]", "_", name))
    unit = re.sub(r"\{[^}]*\}", "", unit or "")
    main, _, per = unit.partition("/")
    words = [UNIT_WORDS.get(main, main)] if main else []
    if per:
        words += ["per", PER_UNIT_WORDS.get(per, per)]
    for word in filter(None, words):
        if not base.endswith("_" + word):
            base += "_" + word
    if kind == "counter":
        return [base + "_total"]
    if kind == "histogram":
        return [base + s for s in ("_bucket", "_sum", "_count")]
    return [base]


def prometheus_label(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


# -- the package's names ------------------------------------------------------------------

SPAN_ATTRIBUTES = set(A.SPAN_ATTRIBUTES)
METRIC_ATTRIBUTES = {
    A.HW_TYPE, A.HW_ID, A.HW_NAME, A.POWER_STATE, A.METHOD, A.ZONE, A.SPAN_NAME,
    A.HTTP_ROUTE, A.HTTP_REQUEST_METHOD, A.RPC_SERVICE, A.RPC_METHOD,
}
RESOURCE_ATTRIBUTES = {"service.name"}  # semantic conventions, set by the SDK
KNOWN_ATTRIBUTES = SPAN_ATTRIBUTES | METRIC_ATTRIBUTES | RESOURCE_ATTRIBUTES
APP_PROM_NAMES = {n: prometheus_names(n, unit, kind) for n, (kind, unit) in A.METRICS.items()}
PROMETHEUS_LABELS = {prometheus_label(a) for a in KNOWN_ATTRIBUTES} | {"job", "instance", "le"}


def load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def connector_metrics(path: Path = COLLECTOR / "otelcol-config.yaml") -> List[Dict[str, Any]]:
    return load_yaml(path)["connectors"][CONNECTOR]["spans"]


def connector_prom_names() -> Dict[str, List[str]]:
    names = {}
    for metric in connector_metrics():
        kind = "counter" if metric["sum"].get("monotonic") is True else "gauge"
        names[metric["name"]] = prometheus_names(metric["name"], metric.get("unit", ""), kind)
    return names


def ottl_attributes(expression: str) -> List[str]:
    return re.findall(r'(?<![\w.])attributes\["([^"]+)"\]', expression)


# -- PromQL ---------------------------------------------------------------------------------

_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                 "offset", "inf", "nan", "atan2"}
_CLAUSE = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def promql_metric_names(expr: str) -> Set[str]:
    """Metric names an expression selects (bare names and ``{__name__=~"a|b"}`` matchers)."""
    names = set()
    for op, value in re.findall(r'__name__\s*(=~|=)\s*"([^"]*)"', expr):
        names |= set(value.split("|")) if op == "=~" else {value}
    text = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    text = _CLAUSE.sub(" ", text)  # grouping clauses
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r'"[^"]*"', " ", text)
    for match in re.finditer(r"(?<![\w$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        word, call = match.groups()
        if not call and word not in _PROMQL_WORDS:
            names.add(word)
    return names


def promql_label_names(expr: str) -> Set[str]:
    labels = set()
    for block in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    for _, inner in _CLAUSE.findall(expr):
        labels |= {w.strip() for w in inner.split(",") if w.strip()}
    return labels - {"__name__"}


def test_promql_helpers_find_names_and_labels():
    expr = ('3600 * sum by (job, http_route) (rate(carbon_span_emissions_grams_total{job=~"$job", http_route!=""}'
            '[$__rate_interval])) / on (job) group_left count({__name__=~"a_total|b_sum"}) and up')
    assert promql_metric_names(expr) == {"carbon_span_emissions_grams_total", "a_total", "b_sum", "up"}
    assert promql_label_names(expr) == {"job", "http_route"}


def test_naming_rules_follow_the_specification():
    assert prometheus_names("carbon.span.energy_distribution", "J", "histogram") == [
        "carbon_span_energy_distribution_joules_bucket", "carbon_span_energy_distribution_joules_sum",
        "carbon_span_energy_distribution_joules_count"]
    assert prometheus_names("carbon.span.energy", "J", "counter") == ["carbon_span_energy_joules_total"]
    assert prometheus_names("carbon.traces.spans", "{span}", "counter") == ["carbon_traces_spans_total"]
    assert prometheus_names("carbon.grid.intensity", "g/kWh", "gauge") == ["carbon_grid_intensity_grams_per_kWh"]
    assert prometheus_names("carbon.x", "g", "gauge") == ["carbon_x_grams"]  # a non-monotonic sum: no _total


# -- collector configurations (static) ----------------------------------------------------

@pytest.mark.parametrize("path", sorted(COLLECTOR.glob("otelcol-*.yaml")), ids=lambda p: p.name)
def test_connector_reads_only_package_attributes(path):
    metrics = connector_metrics(path)
    assert metrics
    for metric in metrics:
        expressions = list(metric.get("conditions", [])) + [metric["sum"]["value"]]
        read = [name for e in expressions for name in ottl_attributes(e)]
        assert set(read) <= SPAN_ATTRIBUTES, read
        keys = [a["key"] for a in metric.get("attributes", [])]
        assert set(keys) <= SPAN_ATTRIBUTES | METRIC_ATTRIBUTES, keys
        assert A.HTTP_ROUTE in keys  # server spans only: a request is counted once
        assert [a["key"] for a in metric.get("include_resource_attributes", [])] == ["service.name"]
        assert metric["sum"].get("monotonic") is True, metric["name"]  # a counter: _total
        # a sum of an attribute has that attribute's unit
        summed = ottl_attributes(metric["sum"]["value"])
        if summed:
            assert metric["unit"] == A.SPAN_ATTRIBUTES[summed[0]][1], metric["name"]
            assert f'attributes["{summed[0]}"] != nil' in metric.get("conditions", []), metric["name"]


def test_connector_metrics_are_energy_and_co2e_with_the_right_suffixes():
    names = connector_prom_names()
    by_attribute = {}
    for metric in connector_metrics():
        for attribute in ottl_attributes(metric["sum"]["value"]):
            by_attribute[attribute] = names[metric["name"]]
    assert by_attribute[A.ENERGY_TOTAL][0].endswith("_joules_total")
    assert by_attribute[A.EMISSIONS][0].endswith("_grams_total")
    # never the same name as one of the meter's instruments (they would add up in a query)
    assert not set(names) & set(A.METRICS)
    assert not {n for v in names.values() for n in v} & {n for v in APP_PROM_NAMES.values() for n in v}
    assert all(name.startswith("carbon.") for name in names)


def exported_to_cloudwatch() -> Tuple[Dict[str, Any], Dict[str, List[List[str]]]]:
    """The awsemf exporter's settings and, per exported metric, its dimension sets."""
    config = load_yaml(COLLECTOR / "otelcol-cloudwatch.yaml")
    (awsemf,) = [v for k, v in config["exporters"].items() if k.split("/")[0] == "awsemf"]
    known = set(A.METRICS) | set(connector_prom_names())
    dims: Dict[str, List[List[str]]] = {}
    for declaration in awsemf["metric_declarations"]:
        for selector in declaration["metric_name_selectors"]:
            matched = {n for n in known if re.search(selector, n)}
            assert matched, f"{selector!r} matches none of the package's or connector's metrics"
            for name in matched:
                dims.setdefault(name, []).extend(sorted(d) for d in declaration["dimensions"])
    return awsemf, dims


def test_cloudwatch_exports_package_names_with_package_dimensions():
    awsemf, dims = exported_to_cloudwatch()
    connector = {m["name"]: m for m in connector_metrics(COLLECTOR / "otelcol-cloudwatch.yaml")}
    for name, sets in dims.items():
        for dimension_set in sets:
            assert set(dimension_set) <= KNOWN_ATTRIBUTES, (name, dimension_set)
            assert "service.name" in dimension_set  # one service's figures never mix with another's
            if name in connector:  # only attributes the connector keeps can be dimensions
                kept = {a["key"] for a in connector[name]["attributes"] + connector[name]["include_resource_attributes"]}
                assert set(dimension_set) <= kept, (name, dimension_set)
    # both energy and CO2e per route and per service, from the spans
    energy = next(m["name"] for m in connector.values() if A.ENERGY_TOTAL in m["sum"]["value"])
    emissions = next(m["name"] for m in connector.values() if A.EMISSIONS in m["sum"]["value"])
    for name in (energy, emissions):
        assert ["http.route", "service.name"] in dims[name] and ["service.name"] in dims[name]
    for descriptor in awsemf["metric_descriptors"]:
        assert descriptor["metric_name"] in dims, descriptor
        # CloudWatch has no J, W or g: the unit must be one it accepts
        assert descriptor["unit"] in {"None", "Count"}, descriptor
    assert set(dims) <= {d["metric_name"] for d in awsemf["metric_descriptors"]}


def test_cloudwatch_dashboard_queries_what_awsemf_exports():
    if __package__:
        from .test_collector_config import cloudwatch_searches
    else:
        from test_collector_config import cloudwatch_searches
    awsemf, dims = exported_to_cloudwatch()
    searches = cloudwatch_searches()
    shown = set()
    for search in searches:
        assert search["namespace"] == awsemf["namespace"]
        assert search["metric"] in dims, search["metric"]
        # a SEARCH schema matches metrics with exactly these dimensions
        assert sorted(search["dimensions"]) in dims[search["metric"]], (search["metric"], search["dimensions"])
        shown.add((search["metric"], tuple(sorted(search["dimensions"]))))
    energy = next(m["name"] for m in connector_metrics() if A.ENERGY_TOTAL in m["sum"]["value"])
    emissions = next(m["name"] for m in connector_metrics() if A.EMISSIONS in m["sum"]["value"])
    for name in (energy, emissions):  # per service and route, and per service
        assert (name, ("http.route", "service.name")) in shown and (name, ("service.name",)) in shown
    assert any(m == A.HW_POWER for m, _ in shown) and any(m == A.GRID_INTENSITY for m, _ in shown)
    assert any(A.METHOD in d for _, d in shown)  # measured vs estimated


# -- the real Prometheus ------------------------------------------------------------------

REQUESTS_PER_ROUTE = 20
WAIT_S = 25.0
RANGE_SUBSTITUTIONS = {"$__rate_interval": "30s", "$__range": "1h", "$__interval": "1s", "$job": ".*"}


class Stack:
    """The Meter's Flask app scraped by a real Prometheus, with its state once ready."""

    def __init__(self, app: InstrumentedApp, prom: PrometheusServer) -> None:
        self.app = app
        self.prom = prom
        self.names: Set[str] = set()
        self.labels: Set[str] = set()

    def query(self, promql: str) -> List[Dict[str, Any]]:
        return self.prom.query(promql)


def _substitute(expr: str) -> str:
    for variable, value in RANGE_SUBSTITUTIONS.items():
        expr = expr.replace(variable, value)
    return expr


@pytest.fixture(scope="module")
def stack():
    if prometheus_binary() is None:
        pytest.skip("the prometheus binary is not installed (apt-get install prometheus; .ci/run installs it)")
    sensor = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=os.cpu_count() or 1)
    intensity = StaticIntensitySource(Intensity(g_per_kwh=100.0, zone="TEST", pue=1.0, source="test"))
    sampler = Sampler(Probe(sensors=[sensor]), interval_s=0.05, intensity=intensity, idle_interval_s=1.0).start()
    app = InstrumentedApp(sampler).start()
    try:
        with PrometheusServer([f"127.0.0.1:{app.metrics_port}"], scrape_interval_s=1) as prom:
            app.request_each_route(REQUESTS_PER_ROUTE)
            ready = Stack(app, prom)
            deadline = time.monotonic() + WAIT_S
            while True:  # every request counted, and at least two scrapes of it (for rate())
                counts = prom.query("sum by (http_route) (carbon_span_count_total)")
                done = {r["metric"].get("http_route"): float(r["value"][1]) for r in counts}
                samples = prom.query("count_over_time(carbon_span_count_total[30s])")
                power = prom.query("hw_power_watts")
                if (all(done.get(route) == REQUESTS_PER_ROUTE for route in COST) and power
                        and samples and min(float(r["value"][1]) for r in samples) >= 2):
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"Prometheus not ready in {WAIT_S}s: {done}; {prom.targets_health()}\n{prom.log_tail()}")
                time.sleep(0.25)
            ready.names = set(json.loads(http_get(prom.url + "/api/v1/label/__name__/values"))["data"])
            ready.labels = set(json.loads(http_get(prom.url + "/api/v1/labels"))["data"])
            yield ready
    finally:
        app.stop()
        sampler.shutdown()


def test_naming_rules_give_what_the_real_prometheus_shows(stack):
    """The rules used for the connector's names, checked on the meter's instruments."""
    derived = {n for names in APP_PROM_NAMES.values() for n in names}
    shown = {n for n in stack.names if n.startswith(("carbon_", "hw_"))}
    assert shown <= derived, sorted(shown - derived)
    # every instrument this meter reports here (no GPU: all of them today), with all its series
    reported = {m for m, names in APP_PROM_NAMES.items() if set(names) & shown}
    assert {A.SPAN_ENERGY, A.SPAN_EMISSIONS, A.SPAN_COUNT, A.SPAN_OVERFLOW, A.HW_ENERGY, A.HW_POWER, A.GRID_INTENSITY,
            A.PROCESS_ENERGY} <= reported
    for metric in reported:
        assert set(APP_PROM_NAMES[metric]) <= shown, metric


def dashboard_queries() -> List[Tuple[str, str]]:
    dashboard = json.loads((COLLECTOR / "grafana" / "dashboards" / "otel-carbon.json").read_text(encoding="utf-8"))
    queries = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", variable["query"])
        assert match, variable["query"]
        selector, label = match.groups()
        queries.append((f"variable {variable['name']}", f"count by ({label}) ({selector})"))
    return queries


def readme_queries() -> List[Tuple[str, str]]:
    text = (COLLECTOR / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```promql\n(.*?)```", text, re.S)
    return [(f"README block {i + 1}", " ".join(b.split())) for i, b in enumerate(blocks)]


def _check_queries(stack: Stack, queries: Iterable[Tuple[str, str]]) -> Set[str]:
    connector = {n for names in connector_prom_names().values() for n in names}
    used = set()
    for where, expr in queries:
        names = promql_metric_names(expr)
        assert names, (where, expr)
        unknown = names - stack.names - connector
        assert not unknown, f"{where}: {sorted(unknown)} is neither shown by Prometheus nor made by the connector"
        labels = promql_label_names(expr) | set(re.findall(r"\{\{\s*(\w+)\s*\}\}", expr))
        assert labels <= PROMETHEUS_LABELS, f"{where}: labels {sorted(labels - PROMETHEUS_LABELS)}"
        result = stack.query(_substitute(expr))  # raises unless Prometheus parsed and ran it
        if not names & connector:  # only the app's metrics: the real Prometheus has data for it
            assert result, f"{where}: no series for {expr}"
        used |= names
    return used


def test_grafana_dashboard_queries_run_on_the_real_prometheus(stack):
    used = _check_queries(stack, dashboard_queries())
    connector = {n for names in connector_prom_names().values() for n in names}
    assert used & connector and used - connector  # both the app's meter and the connector
    # what the issue asks for, named from the package's constants
    for metric in (A.SPAN_ENERGY, A.SPAN_EMISSIONS, A.HW_POWER, A.GRID_INTENSITY, A.PROCESS_ENERGY):
        assert set(APP_PROM_NAMES[metric]) & used, metric
    labels = set()
    for _, expr in dashboard_queries():
        labels |= promql_label_names(expr)
    for attribute in (A.HTTP_ROUTE, A.HW_TYPE, A.METHOD, A.ZONE):
        assert prometheus_label(attribute) in labels, attribute
    assert prometheus_label(A.METHOD) in stack.labels and prometheus_label(A.HTTP_ROUTE) in stack.labels


def test_legends_name_labels_that_exist(stack):
    dashboard = json.loads((COLLECTOR / "grafana" / "dashboards" / "otel-carbon.json").read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            grouped = promql_label_names(target["expr"])
            assert legend <= grouped | {"job"}, (panel["title"], legend)
            assert legend <= stack.labels | PROMETHEUS_LABELS, (panel["title"], legend)


def test_readme_promql_runs_on_the_real_prometheus(stack):
    queries = readme_queries()
    assert len(queries) >= 4
    _check_queries(stack, queries)


def test_cloudwatch_dimensions_are_labels_of_the_apps_metrics(stack):
    _, dims = exported_to_cloudwatch()
    for name, sets in dims.items():
        if name not in A.METRICS:
            continue
        (series_name, *_) = APP_PROM_NAMES[name]
        assert series_name in stack.names, series_name
        for dimension_set in sets:
            for dimension in set(dimension_set) - RESOURCE_ATTRIBUTES:
                result = stack.query(f"count by ({prometheus_label(dimension)}) ({series_name})")
                assert result and all(r["metric"].get(prometheus_label(dimension)) for r in result), (name, dimension)


def test_readme_jaeger_marker_is_a_string_attribute():
    text = (COLLECTOR / "README.md").read_text(encoding="utf-8")
    marker = f"{A.METHOD}={A.ESTIMATED}"
    assert re.search(rf"```\n{re.escape(marker)}\n```", text), marker
    assert A.SPAN_ATTRIBUTES[A.METHOD][0] == "string"  # tag search compares strings exactly
    # every carbon.* / hw.* name the README mentions exists
    known = KNOWN_ATTRIBUTES | set(A.METRICS) | set(connector_prom_names())
    prom_known = {n for v in APP_PROM_NAMES.values() for n in v} | {n for v in connector_prom_names().values() for n in v}
    for word in set(re.findall(r"`((?:carbon|hw)\.[a-z_.]+[a-z])`", text)):
        assert word in known, word
    for word in set(re.findall(r"`((?:carbon|hw)_[a-zA-Z_]+)(?:\{[^`]*\})?`", text)):
        assert word in prom_known or word.replace("{bucket,sum,count}", "") + "sum" in prom_known, word


# -- verify.py --------------------------------------------------------------------------------

def load_verify():
    spec = importlib.util.spec_from_file_location("otel_carbon_collector_verify", COLLECTOR / "verify.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verify_uses_the_package_names():
    verify = load_verify()
    assert (verify.ENERGY_TOTAL, verify.EMISSIONS, verify.METHOD) == (A.ENERGY_TOTAL, A.EMISSIONS, A.METHOD)
    app = {n for v in APP_PROM_NAMES.values() for n in v}
    assert {name for _, name in verify.APP_METRICS} <= app
    assert {name for _, name in verify.CONNECTOR_METRICS} == {n for v in connector_prom_names().values() for n in v}


def test_verify_prometheus_half_on_the_real_prometheus(stack):
    verify = load_verify()
    assert {name for _, name in verify.APP_METRICS} <= stack.names
    spans = [s for s in stack.app.spans.get_finished_spans() if A.ENERGY_TOTAL in s.attributes]
    assert len(spans) == REQUESTS_PER_ROUTE * len(COST)

    report = verify.check_prometheus(stack.prom.url, JOB, include_connector=False)
    assert report["ok"], report
    metrics = report["metrics"]
    assert set(metrics) == {name for _, name in verify.APP_METRICS}
    energy = metrics[prometheus_names(A.SPAN_ENERGY, "J", "counter")[0]]["value"]
    grams = metrics[prometheus_names(A.SPAN_EMISSIONS, "g", "counter")[0]]["value"]
    assert energy == pytest.approx(sum(s.attributes[A.ENERGY_TOTAL] for s in spans), rel=1e-9)
    assert grams == pytest.approx(sum(s.attributes[A.EMISSIONS] for s in spans), rel=1e-9)
    assert metrics[prometheus_names(A.SPAN_COUNT, A.UNIT_SPANS, "counter")[0]]["value"] == len(spans)

    # with the connector's metrics required: this stack has no collector, so they are missing
    report = verify.check_prometheus(stack.prom.url, JOB, include_connector=True)
    assert not report["ok"]
    missing = {n for n, e in report["metrics"].items() if not e["ok"]}
    assert missing == {name for _, name in verify.CONNECTOR_METRICS}

    # the command line: exit status and what it prints
    out = io.StringIO()
    argv = ["--prometheus", stack.prom.url, "--job", JOB, "--skip-jaeger"]
    assert verify.main(argv + ["--skip-connector"], out=out) == 0, out.getvalue()
    assert "carbon figures arrived" in out.getvalue()
    out = io.StringIO()
    assert verify.main(argv, out=out) == 1
    assert "MISS Prometheus (connector): carbon_traces_energy_joules_total" in out.getvalue()
    out = io.StringIO()
    assert verify.main(["--prometheus", stack.prom.url, "--job", "no-such-service", "--skip-jaeger",
                        "--skip-connector", "--json"], out=out) == 1
    body = json.loads(out.getvalue())
    assert body["jaeger"] is None and not any(e["found"] for e in body["prometheus"]["metrics"].values())
