"""One self-contained HTML file: energy and CO2e per route and over time.

No network, no CDN and no JavaScript: the charts are inline SVG written here (one
``rect.bar`` per bar, a ``<title>`` tooltip on each), so the page renders the same in any
browser, with scripts off, in a mail client or as a CI artifact. ``#charts`` carries
``data-bars="N"`` for checks. Every text is escaped; numbers are finite (bad input lines
never get this far).
"""

from __future__ import annotations

import datetime
import html
from typing import Any, Dict, List, Sequence, Tuple

from otel_carbon.cli.report_data import counted_once, time_series
from otel_carbon.cli.span_lines import SpanRecord
from otel_carbon.units_text import format_energy, format_grams, format_seconds, format_si

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
figure { margin: 1.5em 0; } figcaption { font-weight: 600; margin-bottom: .4em; }
svg text { font-size: 12px; fill: #333; }
table { border-collapse: collapse; } th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .note { color: #666; }
"""

_ROW_H, _LABEL_W, _PLOT_W = 22, 260, 420
_W, _H, _PAD = 700, 180, 30


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _iso(t_ns: int) -> str:
    return datetime.datetime.fromtimestamp(t_ns / 1e9, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _horizontal(title: str, unit: str, labels: Sequence[str], values: Sequence[float], color: str) -> Tuple[str, int]:
    height = _ROW_H * len(labels) + 10
    biggest = max([0.0, *values])
    parts = [f'<figure><figcaption>{_e(title)}</figcaption>'
             f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LABEL_W + _PLOT_W + 90}" height="{height}" role="img">']
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 5 + i * _ROW_H
        width = max(value / biggest * _PLOT_W, 1.0 if value > 0 else 0.0) if biggest > 0 else 0.0
        short = label if len(label) <= 40 else label[:39] + "\u2026"
        text = format_si(value, unit)
        parts.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 15}" text-anchor="end">{_e(short)}</text>'
            f'<rect x="{_LABEL_W}" y="{y + 3}" width="{_num(width)}" height="{_ROW_H - 6}" fill="{color}" '
            f'class="bar" data-series="{_e(title)}" data-value="{value!r}"><title>{_e(label)}: {_e(text)}</title></rect>'
            f'<text x="{_num(_LABEL_W + width + 4)}" y="{y + 15}">{_e(text)}</text>'
        )
    parts.append("</svg></figure>")
    return "".join(parts), len(labels)


def _vertical(title: str, unit: str, times: Sequence[int], values: Sequence[float], color: str) -> Tuple[str, int]:
    n = len(values)
    biggest = max([0.0, *values])
    bar_w = _W / n if n else _W
    parts = [f'<figure><figcaption>{_e(title)}</figcaption>'
             f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W + 2 * _PAD}" height="{_H + 2 * _PAD}" role="img">',
             f'<line x1="{_PAD}" y1="{_PAD + _H}" x2="{_PAD + _W}" y2="{_PAD + _H}" stroke="#555"/>']
    for i, (t, value) in enumerate(zip(times, values)):
        h = max(value / biggest * _H, 1.0 if value > 0 else 0.0) if biggest > 0 else 0.0
        parts.append(
            f'<rect x="{_num(_PAD + i * bar_w + 1)}" y="{_num(_PAD + _H - h)}" width="{_num(max(bar_w - 2, 1))}" '
            f'height="{_num(h)}" fill="{color}" class="bar" data-series="{_e(title)}" data-value="{value!r}">'
            f'<title>{_iso(t)}: {_e(format_si(value, unit))}</title></rect>'
        )
    if n:
        parts.append(f'<text x="{_PAD}" y="{_PAD + _H + 16}">{_iso(times[0])}</text>'
                     f'<text x="{_PAD + _W}" y="{_PAD + _H + 16}" text-anchor="end">{_iso(times[-1])}</text>')
    parts.append(f'<text x="{_PAD}" y="{_PAD - 8}">max {_e(format_si(biggest, unit))} per bucket</text></svg></figure>')
    return "".join(parts), n


def charts(spans: List[SpanRecord], rows: List[Dict[str, Any]]) -> Tuple[str, int]:
    """The four charts as inline SVG, and how many bars they hold."""
    requests, programs = counted_once(spans)  # over time, each piece of work once
    _, _, series = time_series(requests or programs)
    labels = [r["key"] for r in rows]
    times = [p[0] for p in series]
    made = [
        _horizontal("Energy per route", "J", labels, [r["energy_total_j"] for r in rows], "#3b7dd8"),
        _horizontal("CO2e per route", "g", labels, [r["emissions_total_g"] for r in rows], "#2e9e5b"),
        _vertical("Energy over time", "J", times, [p[1] for p in series], "#3b7dd8"),
        _vertical("CO2e over time", "g", times, [p[2] for p in series], "#2e9e5b"),
    ]
    return "\n".join(svg for svg, _ in made), sum(n for _, n in made)


def render_html(spans: List[SpanRecord], rows: List[Dict[str, Any]], source: str = "") -> str:
    svg, bars = charts(spans, rows)
    table_rows = "\n".join(
        "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>"
        "<td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>".format(
            _e(r["key"]),
            r["count"],
            _e(format_energy(r["energy_total_j"])),
            _e(format_energy(r["energy_mean_j"])),
            _e(format_energy(r["energy_p95_j"])),
            _e(format_grams(r["emissions_total_g"])),
            _e(format_seconds(r["duration_mean_s"])),
            _e(r["method"]),
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
<p class=note>{_e(source)} &middot; {len(spans)} spans</p>
{note}
<div id="charts" data-bars="{bars}">
{svg}
</div>
<h2>Table</h2>
<table><thead><tr><th>span / route</th><th>count</th><th>energy total</th><th>mean</th><th>p95</th>
<th>CO2e</th><th>mean duration</th><th>method</th></tr></thead>
<tbody>
{table_rows}
</tbody></table>
</body></html>
"""


def write_html(path: str, spans: List[SpanRecord], rows: List[Dict[str, Any]], source: str = "") -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(render_html(spans, rows, source))
