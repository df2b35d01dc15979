"""One self-contained HTML file: energy and CO2e per route and over time.

No network and no CDN: the data is embedded as JSON, an inline script draws inline SVG
bar charts (one ``rect.bar`` per bar) and marks ``#charts`` with ``data-rendered="true"``
and ``data-bars="N"`` when done, so a headless browser can check that it rendered. The
table below the charts is plain HTML and reads without JavaScript.
"""

from __future__ import annotations

import html
import json
from typing import Any, Dict, List

from otel_carbon.report_data import SpanRecord, format_energy, format_grams, time_series

_SCRIPT = r"""
(function () {
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var root = document.getElementById("charts");
  var bars = 0;
  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) { node.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(node); }
    return node;
  }
  function fmt(v) { return v === 0 ? "0" : Number(v).toPrecision(3); }
  function horizontal(title, unit, labels, values, color) {
    var box = document.createElement("figure");
    var cap = document.createElement("figcaption");
    cap.textContent = title + " (" + unit + ")";
    box.appendChild(cap);
    var rowH = 22, labelW = 260, plotW = 420, h = rowH * labels.length + 10;
    var svg = el("svg", {width: labelW + plotW + 90, height: h, role: "img"}, box);
    var max = Math.max.apply(null, values.concat([0]));
    labels.forEach(function (label, i) {
      var y = 5 + i * rowH;
      var w = max > 0 ? Math.max(values[i] / max * plotW, values[i] > 0 ? 1 : 0) : 0;
      var t = el("text", {x: labelW - 6, y: y + 15, "text-anchor": "end"}, svg);
      t.textContent = label.length > 40 ? label.slice(0, 39) + "\u2026" : label;
      var r = el("rect", {x: labelW, y: y + 3, width: w, height: rowH - 6, fill: color,
                          "class": "bar", "data-series": title, "data-value": values[i]}, svg);
      el("title", {}, r).textContent = label + ": " + fmt(values[i]) + " " + unit;
      el("text", {x: labelW + w + 4, y: y + 15}, svg).textContent = fmt(values[i]);
      bars++;
    });
    root.appendChild(box);
  }
  function vertical(title, unit, times, values, color) {
    var box = document.createElement("figure");
    var cap = document.createElement("figcaption");
    cap.textContent = title + " (" + unit + ")";
    box.appendChild(cap);
    var W = 700, H = 180, pad = 30, n = values.length;
    var svg = el("svg", {width: W + 2 * pad, height: H + 2 * pad, role: "img"}, box);
    var max = Math.max.apply(null, values.concat([0]));
    var bw = n ? W / n : W;
    el("line", {x1: pad, y1: pad + H, x2: pad + W, y2: pad + H, stroke: "#555"}, svg);
    values.forEach(function (v, i) {
      var h = max > 0 ? Math.max(v / max * H, v > 0 ? 1 : 0) : 0;
      var r = el("rect", {x: pad + i * bw + 1, y: pad + H - h, width: Math.max(bw - 2, 1), height: h,
                          fill: color, "class": "bar", "data-series": title, "data-value": v}, svg);
      el("title", {}, r).textContent = new Date(times[i] / 1e6).toISOString() + ": " + fmt(v) + " " + unit;
      bars++;
    });
    if (n) {
      el("text", {x: pad, y: pad + H + 16}, svg).textContent = new Date(times[0] / 1e6).toISOString();
      el("text", {x: pad + W, y: pad + H + 16, "text-anchor": "end"}, svg).textContent =
        new Date(times[n - 1] / 1e6).toISOString();
    }
    el("text", {x: pad, y: pad - 8}, svg).textContent = "max " + fmt(max) + " " + unit + " per bucket";
    root.appendChild(box);
  }
  var labels = data.rows.map(function (r) { return r.key; });
  horizontal("Energy per route", "J", labels, data.rows.map(function (r) { return r.energy_total_j; }), "#3b7dd8");
  horizontal("CO2e per route", "g", labels, data.rows.map(function (r) { return r.emissions_total_g; }), "#2e9e5b");
  var times = data.series.map(function (p) { return p[0]; });
  vertical("Energy over time", "J", times, data.series.map(function (p) { return p[1]; }), "#3b7dd8");
  vertical("CO2e over time", "g", times, data.series.map(function (p) { return p[2]; }), "#2e9e5b");
  root.setAttribute("data-bars", String(bars));
  root.setAttribute("data-rendered", "true");
})();
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
figure { margin: 1.5em 0; } figcaption { font-weight: 600; margin-bottom: .4em; }
svg text { font-size: 12px; fill: #333; }
table { border-collapse: collapse; } th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .note { color: #666; }
"""


def render_html(spans: List[SpanRecord], rows: List[Dict[str, Any]], source: str = "") -> str:
    _, _, series = time_series(spans)
    payload = json.dumps({"rows": rows, "series": series}).replace("<", "\\u003c")
    table_rows = "\n".join(
        "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>"
        "<td class=n>{}</td><td class=n>{:.3g} ms</td><td>{}</td></tr>".format(
            html.escape(r["key"]),
            r["count"],
            format_energy(r["energy_total_j"]),
            format_energy(r["energy_mean_j"]),
            format_energy(r["energy_p95_j"]),
            format_grams(r["emissions_total_g"]),
            r["duration_mean_s"] * 1000,
            html.escape(r["method"]),
        )
        for r in rows
    )
    estimated = any(r["method"] != "measured" for r in rows)
    note = ("<p class=note>Some figures are ESTIMATED from power models (no hardware energy counter).</p>"
            if estimated else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>otel-carbon report</title>
<style>{_STYLE}</style></head>
<body>
<h1>Energy and CO2e per route</h1>
<p class=note>{html.escape(source)} &middot; {len(spans)} spans</p>
{note}
<div id="charts" data-rendered="false"></div>
<h2>Table</h2>
<table><thead><tr><th>span / route</th><th>count</th><th>energy total</th><th>mean</th><th>p95</th>
<th>CO2e</th><th>mean duration</th><th>method</th></tr></thead>
<tbody>
{table_rows}
</tbody></table>
<script type="application/json" id="report-data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


def write_html(path: str, spans: List[SpanRecord], rows: List[Dict[str, Any]], source: str = "") -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(spans, rows, source))
