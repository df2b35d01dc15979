#!/usr/bin/env python3
"""Did the carbon figures arrive? Asks Jaeger and Prometheus after ``docker compose up``.

    python collector/verify.py                       # defaults: the ports of docker-compose.yaml
    python collector/verify.py --service checkout --jaeger http://jaeger:16686 \\
        --prometheus http://prometheus:9090 --lookback 900 --json

* **Jaeger** (v2, ``GET /api/v3/traces``): the traces of ``--service`` that started in the last
  ``--lookback`` seconds, in OTLP JSON (``{"result": {"resourceSpans": [...]}}``); counts the
  spans that carry ``carbon.energy.total`` and ``carbon.emissions`` and sums them. Jaeger
  answers 404 ``{"error": {"httpCode": 404, ...}}`` when nothing matches.
* **Prometheus** (``GET /api/v1/query``): the application's own metrics (``carbon_span_*``,
  ``hw_energy_joules_total``...) and the collector connector's (``carbon_traces_*``), for
  ``job="<service>"`` (the collector's prometheus exporter sets ``job`` from service.name).

Exit status 0 when every checked part found carbon figures, 1 otherwise, 2 on bad arguments.
Standard library only (no otel_carbon needed); the names below are the package's constants
(``otel_carbon.attributes``) and their Prometheus forms, kept equal by the test suite.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

# Span attributes (otel_carbon.attributes).
ENERGY_TOTAL = "carbon.energy.total"
EMISSIONS = "carbon.emissions"
METHOD = "carbon.method"
SERVICE_NAME = "service.name"

# Prometheus names of the application's meter (OTel name + unit suffix, _total for counters).
APP_METRICS: Tuple[Tuple[str, str], ...] = (
    ("span energy (J)", "carbon_span_energy_joules_total"),
    ("spans summed in the span energy", "carbon_span_count_total"),
    ("span CO2e (g)", "carbon_span_emissions_grams_total"),
    ("hardware energy (J)", "hw_energy_joules_total"),
    ("process energy (J)", "carbon_process_energy_joules_total"),
    ("grid intensity (gCO2e/kWh)", "carbon_grid_intensity_grams_per_kWh"),
)
# Prometheus names of the collector's signal_to_metrics connector (collector/otelcol-config.yaml).
CONNECTOR_METRICS: Tuple[Tuple[str, str], ...] = (
    ("span energy from span attributes (J)", "carbon_traces_energy_joules_total"),
    ("span CO2e from span attributes (g)", "carbon_traces_emissions_grams_total"),
    ("spans with figures", "carbon_traces_spans_total"),
)

DEFAULT_JAEGER = "http://localhost:16686"
DEFAULT_PROMETHEUS = "http://localhost:9090"
DEFAULT_SERVICE = "flask-example"
SEARCH_DEPTH = 100

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rfc3339(t_s: float) -> str:
    """UTC RFC 3339 with microseconds, as Jaeger's query API parses it (Go's RFC3339Nano)."""
    return datetime.fromtimestamp(t_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _get(url: str, timeout_s: float) -> Tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors are answers too, not exceptions."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _any_value(value: Dict[str, Any]) -> Any:
    """The Python value of an OTLP JSON AnyValue (int64 values are JSON strings)."""
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "intValue" in value:
        return int(value["intValue"])
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    return None


def _attributes(items: Optional[Iterable[Dict[str, Any]]]) -> Dict[str, Any]:
    return {kv.get("key"): _any_value(kv.get("value") or {}) for kv in items or ()}


def summarize_traces(body: Dict[str, Any]) -> Dict[str, Any]:
    """Counts and sums over the spans of a ``/api/v3/traces`` answer."""
    spans = with_figures = 0
    energy_j = emissions_g = 0.0
    methods: Dict[str, int] = {}
    services = set()
    traces = set()
    example: Optional[Dict[str, Any]] = None
    for resource_spans in (body.get("result") or {}).get("resourceSpans") or ():
        resource = _attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans") or ():
            for span in scope_spans.get("spans") or ():
                spans += 1
                traces.add(span.get("traceId"))
                attrs = _attributes(span.get("attributes"))
                energy = attrs.get(ENERGY_TOTAL)
                if not isinstance(energy, (int, float)) or isinstance(energy, bool):
                    continue
                with_figures += 1
                energy_j += energy
                grams = attrs.get(EMISSIONS)
                if isinstance(grams, (int, float)) and not isinstance(grams, bool):
                    emissions_g += grams
                method = str(attrs.get(METHOD, "?"))
                methods[method] = methods.get(method, 0) + 1
                services.add(resource.get(SERVICE_NAME))
                if example is None:
                    example = {
                        "trace_id": span.get("traceId"),
                        "span": span.get("name"),
                        ENERGY_TOTAL: energy,
                        EMISSIONS: grams,
                        METHOD: attrs.get(METHOD),
                    }
    return {
        "traces": len(traces),
        "spans": spans,
        "spans_with_figures": with_figures,
        "energy_j": energy_j,
        "emissions_g": emissions_g,
        "methods": methods,
        "services": sorted(s for s in services if s is not None),
        "example": example,
    }


def check_jaeger(
    url: str, service: str, lookback_s: float, now_s: Optional[float] = None, timeout_s: float = 10.0
) -> Dict[str, Any]:
    """Ask Jaeger's v3 API for the service's recent traces; ``ok`` when a span has figures."""
    now_s = time.time() if now_s is None else now_s
    params = {
        "query.service_name": service,
        "query.start_time_min": rfc3339(now_s - lookback_s),
        "query.start_time_max": rfc3339(now_s),
        # search_depth since Jaeger 2.x; num_traces is its older (deprecated) name
        "query.search_depth": str(SEARCH_DEPTH),
        "query.num_traces": str(SEARCH_DEPTH),
    }
    query_url = url.rstrip("/") + "/api/v3/traces?" + urllib.parse.urlencode(params)
    report: Dict[str, Any] = {"url": query_url, "ok": False}
    try:
        status, raw = _get(query_url, timeout_s)
    except OSError as exc:
        report["error"] = f"cannot reach Jaeger: {exc}"
        return report
    report["status"] = status
    try:
        body = json.loads(raw.decode("utf-8") or "{}")
    except ValueError:
        report["error"] = f"HTTP {status}, not JSON: {raw[:200]!r}"
        return report
    if status == 404:
        report["error"] = f"no traces of service {service!r} in the last {lookback_s:g} s"
        return report
    if status != 200:
        message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
        report["error"] = f"HTTP {status}: {message or raw[:200]!r}"
        return report
    report.update(summarize_traces(body))
    report["ok"] = report["spans_with_figures"] > 0
    if not report["ok"]:
        report["error"] = f"{report['spans']} spans found, none with {ENERGY_TOTAL}"
    return report


def prometheus_query(url: str, promql: str, timeout_s: float = 10.0) -> List[Dict[str, Any]]:
    status, raw = _get(url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}), timeout_s)
    body = json.loads(raw.decode("utf-8"))
    if status != 200 or body.get("status") != "success":
        raise RuntimeError(f"query {promql!r}: HTTP {status}: {body.get('error', body)}")
    return body["data"]["result"]


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def check_prometheus(
    url: str, job: str, include_connector: bool = True, timeout_s: float = 10.0
) -> Dict[str, Any]:
    """Each metric's total for ``job``; ``ok`` when every checked metric has series with a
    positive total."""
    groups = [("app", APP_METRICS)] + ([("connector", CONNECTOR_METRICS)] if include_connector else [])
    report: Dict[str, Any] = {"url": url, "job": job, "ok": True, "metrics": {}}
    for group, metrics in groups:
        for label, name in metrics:
            promql = f'sum({name}{{job="{_label_value(job)}"}})'
            entry: Dict[str, Any] = {"group": group, "label": label, "query": promql}
            try:
                result = prometheus_query(url, promql, timeout_s)
            except (OSError, RuntimeError, ValueError) as exc:
                entry.update(found=False, error=str(exc))
            else:
                entry["found"] = bool(result)
                if result:
                    entry["value"] = float(result[0]["value"][1])
                    if not entry["value"] > 0:  # a total of energy, CO2e, spans or intensity
                        entry["error"] = f"total is {entry['value']!r}, expected > 0"
            entry["ok"] = entry["found"] and "error" not in entry
            report["metrics"][name] = entry
            report["ok"] = report["ok"] and entry["ok"]
    return report


def _print_report(jaeger: Optional[Dict[str, Any]], prometheus: Optional[Dict[str, Any]], out: Any) -> None:
    if jaeger is not None:
        mark = "OK  " if jaeger["ok"] else "MISS"
        if jaeger["ok"]:
            methods = ", ".join(f"{k}: {v}" for k, v in sorted(jaeger["methods"].items()))
            print(
                f"{mark} Jaeger: {jaeger['spans_with_figures']} of {jaeger['spans']} spans in "
                f"{jaeger['traces']} traces carry {ENERGY_TOTAL}; sum {jaeger['energy_j']:.6g} J, "
                f"{jaeger['emissions_g']:.6g} g CO2e ({METHOD}: {methods})",
                file=out,
            )
            example = jaeger["example"]
            print(f"     e.g. trace {example['trace_id']} span {example['span']!r}", file=out)
        else:
            print(f"{mark} Jaeger: {jaeger.get('error')}  [{jaeger['url']}]", file=out)
    if prometheus is not None:
        for name, entry in prometheus["metrics"].items():
            mark = "OK  " if entry["ok"] else "MISS"
            if entry.get("value") is not None:
                value = f"= {entry['value']:.6g}" + (f" ({entry['error']})" if "error" in entry else "")
            else:
                value = entry.get("error", "no series")
            print(f"{mark} Prometheus ({entry['group']}): {name} {value}  ({entry['label']})", file=out)


def main(argv: Optional[Sequence[str]] = None, out: Any = None) -> int:
    out = sys.stdout if out is None else out
    parser = argparse.ArgumentParser(description="Check that carbon figures reached Jaeger and Prometheus.")
    parser.add_argument("--jaeger", default=DEFAULT_JAEGER, help="Jaeger query base URL (default %(default)s)")
    parser.add_argument("--prometheus", default=DEFAULT_PROMETHEUS, help="Prometheus base URL (default %(default)s)")
    parser.add_argument("--service", default=DEFAULT_SERVICE, help="service.name to look for (default %(default)s)")
    parser.add_argument("--job", default=None, help="Prometheus job label (default: the service name)")
    parser.add_argument("--lookback", type=float, default=900.0, help="seconds of traces to search (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default %(default)s)")
    parser.add_argument("--skip-jaeger", action="store_true", help="do not ask Jaeger")
    parser.add_argument("--skip-prometheus", action="store_true", help="do not ask Prometheus")
    parser.add_argument("--skip-connector", action="store_true", help="do not require the connector's metrics")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.lookback <= 0 or args.timeout <= 0:
        parser.error("--lookback and --timeout must be > 0")

    jaeger = None if args.skip_jaeger else check_jaeger(args.jaeger, args.service, args.lookback, timeout_s=args.timeout)
    prometheus = (
        None
        if args.skip_prometheus
        else check_prometheus(args.prometheus, args.job or args.service, not args.skip_connector, args.timeout)
    )
    if args.json:
        json.dump({"jaeger": jaeger, "prometheus": prometheus}, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        _print_report(jaeger, prometheus, out)
    ok = all(part["ok"] for part in (jaeger, prometheus) if part is not None)
    if not args.json:
        print("carbon figures arrived" if ok else "carbon figures missing (see MISS lines)", file=out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
