"""``otel-carbon report FILE``: energy and CO2e per span name / route from OTLP JSON lines.

Prints one row per span name (``METHOD ROUTE`` for HTTP server spans with ``http.route``):
count, total / mean / p95 energy, total CO2e, mean duration, most energy first. The footer's
total counts each piece of work once: only spans with no ancestor carrying figures in the
file (a parent's figures already include the work of its children on its thread); whole
programs (``otel-carbon run``, process- or machine-scope tracked runs) are totalled apart,
since they overlap everything else that ran. ``--json`` prints the same as strict JSON;
``--html OUT`` writes one self-contained HTML file (charts as inline SVG, no JavaScript,
no network) with energy and CO2e per route and over time, and the table.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List

from otel_carbon.cli._common import HelpFormatter, epilog, error, output_problem
from otel_carbon.cli.report_data import counted_once, dumps, group_spans, ranked
from otel_carbon.cli.span_lines import ReadStats, SpanRecord, read_spans
from otel_carbon.units_text import format_energy, format_grams, format_seconds


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "report",
        help="energy and CO2e per span name / route from an OTLP JSON lines file",
        description="Summarise spans from OTLP JSON lines (the Collector file exporter's format, "
        "or `otel-carbon run --output`) per span name / http.route.\n"
        "Unusable lines (not JSON, NaN, infinite or negative figures...) are skipped and counted on stderr.",
        epilog=epilog(
            "  0  the table was printed\n"
            "  2  bad usage, FILE unreadable, no span in FILE, or no span with carbon figures",
            "  otel-carbon run --output spans.jsonl -- python app.py\n"
            "  otel-carbon report spans.jsonl --top 10 --html report.html",
        ),
        formatter_class=HelpFormatter,
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


def totals(spans: List[SpanRecord]) -> Dict[str, Any]:
    """Each piece of work once (see the module docstring)."""
    requests, programs = counted_once(spans)
    return {
        "counted_spans": len(requests),
        "energy_total_j": sum(s.energy_j or 0.0 for s in requests),
        "emissions_total_g": sum(s.emissions_g for s in requests),
        "whole_program_spans": len(programs),
        "whole_program_energy_j": sum(s.energy_j or 0.0 for s in programs),
        "whole_program_emissions_g": sum(s.emissions_g for s in programs),
    }


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
            format_seconds(r["duration_mean_s"]),
            r["method"],
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(headers)]
    left = {0, 7}

    def line(cells: Any) -> str:
        return "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    return "\n".join([line(headers), line("-" * w for w in widths)] + [line(row) for row in body])


def format_totals(t: Dict[str, Any], with_figures: int, stats: ReadStats) -> str:
    lines = [f"total: {format_energy(t['energy_total_j'])}, {format_grams(t['emissions_total_g'])} CO2e over "
             f"{t['counted_spans']} top-level spans (children are inside their parents' figures; "
             f"{with_figures} spans with figures, {stats.spans - with_figures} without)"]
    if t["whole_program_spans"]:
        lines.append(f"whole programs: {format_energy(t['whole_program_energy_j'])}, "
                     f"{format_grams(t['whole_program_emissions_g'])} CO2e over {t['whole_program_spans']} "
                     "process-level spans (otel-carbon run, process or machine scope; they include the above)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    problem = output_problem(args.html)
    if problem:
        return error("report", f"cannot write --html: {problem}")
    stats = ReadStats()
    try:
        spans = read_spans(args.file, stats)
    except OSError as exc:
        return error("report", f"cannot read {args.file}: {exc.strerror or exc}")
    if stats.bad_lines:
        print(f"otel-carbon report: {stats.describe()}", file=sys.stderr)
    if not spans:
        return error("report", f"no span in {args.file} ({stats.lines} lines read)")
    all_rows = summary_rows(spans)
    if not all_rows:
        return error("report", f"no span with carbon figures in {args.file} ({stats.spans} spans, "
                     f"{stats.lines} lines read): was the CarbonSpanProcessor on?")
    rows = all_rows[: args.top] if args.top and args.top > 0 else all_rows
    with_figures = sum(r["count"] for r in all_rows)
    t = totals(spans)
    if args.json:
        print(dumps({"rows": rows, "totals": t, "spans": stats.spans, "bad_lines": stats.bad_lines,
                     "skipped": stats.skipped}))
    else:
        print(format_table(rows))
        print()
        print(format_totals(t, with_figures, stats))
        if any(r["method"] != "measured" for r in rows):
            print("Figures marked estimated come from power models, not hardware counters (ESTIMATED).")
    if args.html:
        from otel_carbon.cli.report_html import write_html

        try:
            write_html(args.html, spans, rows, source=args.file)
        except OSError as exc:
            return error("report", f"cannot write {args.html}: {exc.strerror or exc}")
        print(f"HTML report: {args.html}", file=sys.stderr)
    return 0
