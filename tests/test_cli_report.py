"""otel-carbon report: a table per span name / route from OTLP JSON lines, and an HTML chart."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_carbon import attributes as A
from otel_carbon.cli import main
from otel_carbon.exporters.otlp_json import OtlpJsonFileSpanExporter
from otel_carbon.cli.span_lines import read_spans

T0 = 1_700_000_000_000_000_000

# key -> list of (energy J, emissions g, duration ms); extra attributes per key
SPANS = {
    "GET /users/{id}": [(float(i), i * 0.01, 10 + i) for i in range(1, 21)],
    "POST /orders": [(50.0, 0.5, 100), (70.0, 0.7, 140), (60.0, 0.6, 120)],
    "nightly-job": [(5.0, 0.05, 1000)],
}
ROUTE_ATTRS = {
    "GET /users/{id}": {"http.route": "/users/{id}", "http.request.method": "GET"},
    "POST /orders": {"http.route": "/orders", "http.method": "POST"},
    "nightly-job": {},
}


def write_spans(path, spans=SPANS, without_figures=2):
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
    tracer = provider.get_tracer("test")
    t = T0
    for key, items in spans.items():
        for energy, grams, ms in items:
            attrs = dict(ROUTE_ATTRS.get(key, {}))
            attrs.update({A.ENERGY_TOTAL: energy, A.EMISSIONS: grams, A.METHOD: A.ESTIMATED, A.CPU_TIME: energy / 4})
            name = key if not attrs.get("http.route") else key.split()[0]  # server spans named by method
            span = tracer.start_span(name, attributes=attrs, start_time=t)
            span.end(end_time=t + ms * 1_000_000)
            t += 50_000_000
    for _ in range(without_figures):
        tracer.start_span("no-figures", start_time=t).end(end_time=t + 1000)
    provider.shutdown()


def expected_rows(spans=SPANS):
    rows = []
    for key, items in spans.items():
        energies = sorted(e for e, _, _ in items)
        n = len(items)
        rows.append({
            "key": key, "count": n, "energy_total_j": sum(energies), "energy_mean_j": sum(energies) / n,
            "energy_p95_j": energies[math.ceil(0.95 * n) - 1], "emissions_total_g": sum(g for _, g, _ in items),
            "duration_mean_s": sum(ms for _, _, ms in items) / n / 1000,
        })
    return sorted(rows, key=lambda r: -r["energy_total_j"])


def test_json_summary_matches_the_input(tmp_path, capsys):
    path = tmp_path / "spans.jsonl"
    write_spans(path)
    assert main(["report", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["spans"] == sum(len(v) for v in SPANS.values()) + 2
    got = data["rows"]
    want = expected_rows()
    assert [r["key"] for r in got] == [r["key"] for r in want]
    for g, w in zip(got, want):
        for field, value in w.items():
            assert g[field] == (pytest.approx(value) if isinstance(value, float) else value), (g["key"], field)
        assert g["method"] == "estimated"


def test_table_lists_routes_costliest_first(tmp_path, capsys):
    path = tmp_path / "spans.jsonl"
    write_spans(path)
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line and not line.startswith(("-", "span /"))]
    assert lines[0].startswith("GET /users/{id}") and "210 J" in lines[0] and " 20 " in lines[0]
    assert lines[1].startswith("POST /orders") and "180 J" in lines[1] and "  3  " in lines[1]
    assert lines[2].startswith("nightly-job") and "5 J" in lines[2]
    assert "24 spans with figures, 2 without" in out and "ESTIMATED" in out
    assert "total: 395 J, 3.95 g CO2e over 24 top-level spans" in out


def test_reads_collector_style_lines_and_skips_garbage(tmp_path, capsys):
    """A line as the Collector's file exporter writes it (intValue as string, kind as int)."""
    line = {
        "resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
            "scopeSpans": [{"scope": {"name": "x"}, "spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "GET",
                "kind": 2, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
                "attributes": [
                    {"key": "http.route", "value": {"stringValue": "/items"}},
                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                    {"key": "carbon.energy.total", "value": {"doubleValue": 2.5}},
                    {"key": "carbon.emissions", "value": {"doubleValue": 0.125}},
                    {"key": "http.response.status_code", "value": {"intValue": "200"}},
                ],
            }]}],
        }]
    }
    path = tmp_path / "collector.jsonl"
    path.write_text("not json\n" + json.dumps(line) + "\n" + json.dumps({"resourceMetrics": []}) + "\n")
    (span,) = read_spans(str(path))
    assert span.key == "GET /items" and span.attributes["http.response.status_code"] == 200
    assert span.duration_s == 1.0
    assert main(["report", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["bad_lines"] == 1
    assert data["rows"][0]["energy_total_j"] == 2.5 and data["rows"][0]["emissions_total_g"] == 0.125


def test_our_exporter_writes_hex_ids_and_integer_enums(tmp_path):
    path = tmp_path / "spans.jsonl"
    write_spans(path, {"job": [(1.0, 0.1, 5)]}, without_figures=0)
    message = json.loads(path.read_text().splitlines()[0])
    span = message["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"]) and re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
    assert span["kind"] == 1 and isinstance(span["startTimeUnixNano"], str)


def test_missing_file_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render_dom(html_path, profile):
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--dump-dom", f"file://{html_path}"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_html_is_self_contained(tmp_path):
    path, html_path = tmp_path / "spans.jsonl", tmp_path / "report.html"
    write_spans(path)
    assert main(["report", str(path), "--html", str(html_path)]) == 0
    text = html_path.read_text()
    assert "<link" not in text and " src=" not in text
    assert "<script" not in text.lower()  # the charts are SVG written by the report, not drawn by a script
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)


@pytest.mark.skipif(CHROMIUM is None, reason="the chromium binary is missing (apt-get install chromium)")
def test_html_chart_renders_in_headless_chromium(tmp_path):
    """The page holds no script (test_html_is_self_contained), so what the browser shows is the SVG as written."""
    spans = dict(SPANS)
    spans['</script><b id="injected">x</b>'] = [(1.0, 0.01, 1)]  # a hostile span name
    path, html_path = tmp_path / "spans.jsonl", tmp_path / "report.html"
    write_spans(path, spans)
    assert main(["report", str(path), "--html", str(html_path)]) == 0
    dom = render_dom(html_path, tmp_path / "profile")
    charts = re.search(r'<div id="charts"[^>]*>', dom).group(0)
    n_routes = len(spans)
    n_spans = sum(len(v) for v in spans.values())
    n_buckets = min(40, n_spans)
    bars = int(re.search(r'data-bars="(\d+)"', charts).group(1))
    assert bars == 2 * n_routes + 2 * n_buckets
    assert len(re.findall(r'<rect [^>]*class="bar"', dom)) == bars
    assert '<b id="injected"' not in dom and '&lt;b id="injected"' in dom  # shown as text, not markup
    # the longest energy bar is the costliest route's (GET /users/{id}, 210 J)
    energy_bars = re.findall(r'<rect [^>]*data-series="Energy per route"[^>]*>', dom)
    widths = [float(re.search(r'width="([\d.]+)"', b).group(1)) for b in energy_bars]
    assert widths[0] == max(widths) and len(energy_bars) == n_routes
    if os.environ.get("OTEL_CARBON_KEEP_SCREENSHOT"):
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'p2'}",
                        f"--screenshot={os.environ['OTEL_CARBON_KEEP_SCREENSHOT']}", "--window-size=1000,1200",
                        f"file://{html_path}"], capture_output=True, timeout=60)
