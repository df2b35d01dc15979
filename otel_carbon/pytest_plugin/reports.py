"""The plugin's outputs: the terminal summary, the Markdown report, and the files.

One table serves the terminal and Markdown: the tests ranked by energy (most first), each
with its CPU time, energy, CO2e, share of the total and duration, and, against a
baseline, its change and noise. The JSON report is the run's test spans as OTLP JSON
lines, the format ``otel-carbon report`` and ``otel-carbon compare`` read (and the
baseline format); the HTML report is ``otel-carbon report --html``'s.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from otel_carbon import attributes as A
from otel_carbon.cli.report_data import group_spans, ranked
from otel_carbon.cli.span_lines import SpanRecord
from otel_carbon.pytest_plugin.gate import Comparison
from otel_carbon.units_text import format_energy, format_grams, format_number, format_seconds

_METHODS = {
    A.MEASURED: "measured (hardware energy counters)",
    A.ESTIMATED: "estimated (power models: no hardware energy counter was readable)",
    A.MIXED: "mixed (some components measured, some estimated)",
    A.UNAVAILABLE: "unavailable",
}


def totals(records: Sequence[SpanRecord]) -> Dict[str, Any]:
    with_figures = [r for r in records if r.energy_j is not None]
    methods = {str(r.attributes.get(A.METHOD, A.UNAVAILABLE)) for r in with_figures}
    zones = sorted({(str(r.attributes.get(A.ZONE, "")), r.number(A.INTENSITY) or 0.0) for r in with_figures})
    method = methods.pop() if len(methods) == 1 else (A.MIXED if methods else A.UNAVAILABLE)
    return {
        "tests": len(records),
        "energy_j": math.fsum(r.energy_j or 0.0 for r in with_figures),
        "emissions_g": math.fsum(r.emissions_g for r in with_figures),
        "cpu_time_s": math.fsum(r.cpu_time_s for r in with_figures),
        "method": method,
        "grid": ", ".join(f"{zone or '?'} {format_number(g)} g/kWh" for zone, g in zones) or "unknown",
    }


def table(records: Sequence[SpanRecord], comparison: Optional[Comparison],
          top: Optional[int], detail: bool = False) -> Tuple[List[str], List[List[str]]]:
    """The table of tests; ``detail``: also the energy per component and each test's method
    (the full report; the terminal keeps to the totals)."""
    groups = ranked(group_spans(records))
    total_j = math.fsum(g.total_energy_j for g in groups)
    components = [name for name in A.ENERGY_BY_COMPONENT.values() if any(name in g.component_j for g in groups)] if detail else []
    headers = ["test", "CPU", "energy", *(name.rsplit(".", 1)[-1] for name in components), "CO2e", "share", "duration"]
    if detail:
        headers.append("method")
    changes = {r.key: r for r in comparison.rows} if comparison is not None else {}
    if comparison is not None:
        headers += ["change", "noise", ""]
    rows = []
    for g in groups if top is None else groups[:top]:
        row = [g.key, format_seconds(g.total_cpu_time_s), format_energy(g.total_energy_j),
               *(format_energy(g.component_j[name]) if name in g.component_j else "-" for name in components),
               format_grams(g.total_emissions_g), f"{g.total_energy_j / total_j * 100:.0f}%" if total_j > 0 else "-",
               format_seconds(g.mean_duration_s)]
        if detail:
            row.append(g.method)
        if comparison is not None:
            c = changes.get(g.key)
            if c is None or c.status != "compared":
                row += [c.status if c is not None else "", "", ""]
            else:
                mark = "~" if abs(c.change_pct) <= c.noise_pct else ""
                row += [f"{mark}{c.change_pct:+.1f}%", f"±{c.noise_pct:.1f}%",
                        "OVER BUDGET" if c.over else ("" if c.gated else "below floor")]
        rows.append(row)
    return headers, rows


def _total_sentences(records: Sequence[SpanRecord], comparison: Optional[Comparison]) -> List[str]:
    t = totals(records)
    out = [
        f"total: {t['tests']} tests, {format_energy(t['energy_j'])}, {format_grams(t['emissions_g'])} CO2e, "
        f"{format_seconds(t['cpu_time_s'])} of CPU",
        f"grid: {t['grid']}; figures {_METHODS.get(t['method'], t['method'])}",
        "energy = the test's CPU time x the price of a CPU-second (setup, call and teardown)",
    ]
    if comparison is not None:
        c = comparison
        gone = sum(r.status == "gone" for r in c.rows)
        new = sum(r.status == "new" for r in c.rows)
        out.append(
            f"against the baseline: {format_energy(c.base_total_j)} -> {format_energy(c.new_total_j)} "
            f"({c.total_change_pct:+.1f}%, noise ±{c.total_noise_pct:.1f}%) over the tests in both runs "
            f"({new} new, {gone} gone); compared as CPU time x the baseline's price "
            f"({format_energy(c.price_j_per_cpu_s)} per CPU-second); ~ = within noise"
        )
        out.extend(f"FAIL {f}" for f in c.failures)
    return out


def terminal_lines(records: Sequence[SpanRecord], comparison: Optional[Comparison], top: int) -> List[str]:
    headers, rows = table(records, comparison, top)
    out: List[str] = []
    if rows:
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(widths[i]) if i in (0, len(cells) - 1) else c.rjust(widths[i])
                             for i, c in enumerate(cells)).rstrip()

        shown = f"{len(rows)} most energy-hungry tests" if len(rows) < len(records) else "tests by energy"
        out += [shown + ":", line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows] + [""]
    return out + _total_sentences(records, comparison)


def markdown(records: Sequence[SpanRecord], comparison: Optional[Comparison], top: Optional[int] = None) -> str:
    headers, rows = table(records, comparison, top, detail=True)

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    out = ["## Energy and CO2e per test", ""]
    if comparison is not None:
        verdict = "FAILED: over budget" if comparison.failures else "within budget"
        out += [f"**{verdict}**", ""]
    align = ["---"] + ["---:"] * (len(headers) - 1)
    out += ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    out += ["", "### Totals", ""] + [f"- {cell(s)}" for s in _total_sentences(records, comparison)]
    return "\n".join(out) + "\n"


def write_report(kind: str, path: str, lines: Sequence[str], records: Sequence[SpanRecord],
                 comparison: Optional[Comparison]) -> None:
    """Write one report (``OSError`` if the file cannot be written)."""
    _make_folder(path)
    if kind == "json":
        write_lines(path, lines, append=False)
    elif kind == "md":
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(markdown(records, comparison))
    else:
        from otel_carbon.cli.report import summary_rows
        from otel_carbon.cli.report_html import write_html

        write_html(path, list(records), summary_rows(list(records)), source="pytest")


def write_lines(path: str, lines: Sequence[str], append: bool) -> None:
    _make_folder(path)
    with open(path, "a" if append else "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")


def _make_folder(path: str) -> None:
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
