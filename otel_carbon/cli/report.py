"""``otel-carbon report FILE``: energy and CO2e per span name / route from OTLP JSON lines.

Prints one row per span name (``METHOD ROUTE`` for HTTP server spans with ``http.route``):
count, total / mean / p95 energy, total CO2e, mean duration, most energy first.
``--json`` prints the same as JSON; ``--html OUT`` writes one self-contained HTML file
(inline SVG drawn by inline JavaScript, no network) with energy and CO2e per route and
over time, and the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List

from otel_carbon.report_data import ReadStats, SpanRecord, format_energy, format_grams, group_spans, ranked, read_spans


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "report",
        help="energy and CO2e per span name / route from an OTLP JSON lines file",
        description="Summarise spans from OTLP JSON lines (the Collector file exporter's format, "
        "or `otel-carbon run --output`) per span name / http.route.",
    )
    parser.add_argument("file", help="OTLP JSON lines file")
    parser.add_argument("--html", metavar="OUT", help="also write a self-contained HTML report with charts")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.add_argument("--top", type=int, default=0, metavar="N", help="only the N costliest rows (default: all)")
    parser.set_defaults(func=run)


def summary_rows(spans: List[SpanRecord]) -> List[Dict[str, Any]]:
    rows = []
    for g in ranked(group_spans(spans)):
        rows.append(
            {
                "key": g.key,
                "count": g.count,
                "energy_total_j": g.total_energy_j,
                "energy_mean_j": g.mean_energy_j,
                "energy_p95_j": g.p95_energy_j,
                "emissions_total_g": g.total_emissions_g,
                "duration_mean_s": g.mean_duration_s,
                "cpu_time_total_s": g.total_cpu_time_s,
                "method": g.method,
            }
        )
    return rows


def format_table(rows: List[Dict[str, Any]]) -> str:
    headers = ("span / route", "count", "energy total", "mean", "p95", "CO2e", "mean duration", "method")
    body = [
        (
            r["key"],
            str(r["count"]),
            format_energy(r["energy_total_j"]),
            format_energy(r["energy_mean_j"]),
            format_energy(r["energy_p95_j"]),
            format_grams(r["emissions_total_g"]),
            f"{r['duration_mean_s'] * 1000:.3g} ms",
            r["method"],
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(headers)]
    left = {0, 7}

    def line(cells: Any) -> str:
        return "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(headers), line("-" * w for w in widths)] + [line(row) for row in body])


def run(args: argparse.Namespace) -> int:
    stats = ReadStats()
    try:
        spans = read_spans(args.file, stats)
    except OSError as exc:
        print(f"otel-carbon report: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    rows = summary_rows(spans)
    if args.top and args.top > 0:
        rows = rows[: args.top]
    with_figures = sum(r["count"] for r in rows)
    if args.json:
        print(json.dumps({"rows": rows, "spans": stats.spans, "bad_lines": stats.bad_lines}, indent=2))
    elif not rows:
        print(f"No span with carbon figures in {args.file} ({stats.spans} spans, {stats.lines} lines read).")
    else:
        print(format_table(rows))
        total_j = sum(r["energy_total_j"] for r in rows)
        total_g = sum(r["emissions_total_g"] for r in rows)
        print(f"\n{with_figures} spans with figures: {format_energy(total_j)}, {format_grams(total_g)} CO2e"
              f" ({stats.spans - with_figures} spans without; {stats.bad_lines} unreadable lines)")
        if any(r["method"] != "measured" for r in rows):
            print("Figures marked estimated come from power models, not hardware counters (ESTIMATED).")
    if args.html:
        from otel_carbon.report_html import write_html

        try:
            write_html(args.html, spans, rows, source=args.file)
        except OSError as exc:
            print(f"otel-carbon report: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"HTML report: {args.html}", file=sys.stderr)
    return 0
