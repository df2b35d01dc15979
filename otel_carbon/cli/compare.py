"""``otel-carbon compare BASE NEW``: energy per call before and after a change, with budgets.

Both files are OTLP JSON lines (e.g. a test or load run on the main branch and on a pull
request). Per span name / route present in both: calls, energy and CO2e per call, change
in %, and how noisy the figures are. The energy compared is ``carbon.energy.total``, which
is CPU time x price of a CPU-second, so it does not grow with time spent waiting (I/O,
locks, a slow neighbour) the way wall-time power x duration does. ``--basis cpu`` goes one
step further: both runs' CPU time priced at the BASE run's average price, so a change of
machine or host load between the runs cancels out.

Noise: each row shows the spread across calls (coefficient of variation of BASE and NEW)
and ``noise``: twice the standard error of the difference of the means, in % of BASE
(about a 95 % interval). A change inside it is marked ``~``.

Budgets: ``--budget 5%`` fails (exit 1) when any route got more than 5 % costlier per call;
``--route-budget 'GET /users/{id}=10%'`` sets one route's own budget; ``--overall-budget``
limits the change of the whole (the NEW per-call figures weighted by BASE's call counts,
so a different traffic mix does not count as a regression). ``--significant-only`` fails
only when the change is also larger than the noise.

Lines that cannot be used (not JSON, a NaN, infinite or negative figure...) are skipped and
counted on stderr: they never reach a figure or a budget. The span ``otel-carbon run`` adds
over a program (and the program's root span under it) is not a route and is left out.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from typing import Any, Dict, List, Optional, Tuple

from otel_carbon.cli._common import HelpFormatter, epilog, error
from otel_carbon.cli.report_data import Group, dumps, group_spans, run_wrapper_ids
from otel_carbon.cli.span_lines import ReadStats, read_spans
from otel_carbon.units_text import format_energy, format_grams, format_number


def _percent(text: str) -> float:
    raw = text.strip()
    value = float(raw[:-1] if raw.endswith("%") else raw)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a percentage >= 0 such as 5%, got {text!r}")
    return value


def _percent_arg(text: str) -> float:
    try:
        return _percent(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage >= 0 such as 5%, got {text!r}") from None


def _route_budget(text: str) -> Tuple[str, float]:
    key, sep, pct = text.rpartition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected ROUTE=PERCENT such as 'GET /users=10%', got {text!r}")
    return key.strip(), _percent_arg(pct)


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "compare",
        help="compare energy per call of two OTLP JSON lines files; fail over a budget",
        description="Compare energy and CO2e per call per span name / route between BASE and NEW.\n"
        "Route keys are span names, or METHOD ROUTE for HTTP server spans, e.g. 'GET /work' "
        "(the first column of `otel-carbon report`).",
        epilog=epilog(
            "  0  no budget exceeded (or no budget given)\n"
            "  1  a route, or the whole, got costlier per call than its budget\n"
            "  2  bad usage, a file unreadable or without spans with figures, or --route-budget\n"
            "     naming a route that is in neither file",
            "  otel-carbon compare main.jsonl pr.jsonl --budget 5% \\\n"
            "      --route-budget 'GET /work=10%' --significant-only",
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("base", help="OTLP JSON lines of the reference run")
    parser.add_argument("new", help="OTLP JSON lines of the run to check")
    parser.add_argument("--budget", type=_percent_arg, metavar="PCT", help="largest allowed increase per call for every route, e.g. 5%%")
    parser.add_argument("--route-budget", type=_route_budget, action="append", default=[], metavar="ROUTE=PCT",
                        help="a route's own budget (repeatable); beats --budget")
    parser.add_argument("--overall-budget", type=_percent_arg, metavar="PCT", help="largest allowed increase overall")
    parser.add_argument("--basis", choices=("energy", "cpu"), default="energy",
                        help="energy: carbon.energy.total as recorded (default); cpu: CPU time at BASE's price")
    parser.add_argument("--min-calls", type=int, default=1, metavar="N", help="ignore routes with fewer calls in either file")
    parser.add_argument("--significant-only", action="store_true", help="fail only on changes larger than the noise")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    parser.set_defaults(func=run)


def _base_price(groups: Dict[str, Group]) -> Optional[float]:
    energy = math.fsum(g.total_energy_j for g in groups.values())
    cpu = math.fsum(g.total_cpu_time_s for g in groups.values())
    return energy / cpu if cpu > 0 and energy > 0 else None


def _per_call(group: Group, price: Optional[float]) -> List[float]:
    return [c * price for c in group.cpu_time_s] if price is not None else list(group.energy_j)


def _mean_se(values: List[float]) -> Tuple[float, float, float]:
    """mean, standard error of the mean, coefficient of variation."""
    n = len(values)
    mean = math.fsum(values) / n if n else 0.0
    if n < 2:
        return mean, 0.0, 0.0
    sd = statistics.stdev(values)
    return mean, sd / math.sqrt(n), (sd / mean if mean > 0 else 0.0)


def compare(base: Dict[str, Group], new: Dict[str, Group], basis: str = "energy", min_calls: int = 1) -> Dict[str, Any]:
    price = _base_price(base) if basis == "cpu" else None
    if basis == "cpu" and price is None:
        basis = "energy"  # BASE has no CPU time: nothing to price
    rows = []
    for key in sorted(set(base) | set(new)):
        b, n = base.get(key), new.get(key)
        if b is None or not b.count or n is None or not n.count:
            rows.append({"key": key, "status": "new" if (b is None or not b.count) else "gone",
                         "base_calls": b.count if b else 0, "new_calls": n.count if n else 0})
            continue
        if b.count < min_calls or n.count < min_calls:
            rows.append({"key": key, "status": "too few calls", "base_calls": b.count, "new_calls": n.count})
            continue
        bm, bse, bcv = _mean_se(_per_call(b, price))
        nm, nse, ncv = _mean_se(_per_call(n, price))
        change = (nm / bm - 1.0) * 100.0 if bm > 0 else (0.0 if nm == 0 else math.inf)
        noise = 2.0 * math.sqrt(bse**2 + nse**2) / bm * 100.0 if bm > 0 else 0.0
        rows.append({
            "key": key, "status": "compared", "base_calls": b.count, "new_calls": n.count,
            "base_energy_per_call_j": bm, "new_energy_per_call_j": nm, "change_pct": change,
            "noise_pct": noise, "base_cv": bcv, "new_cv": ncv,
            "base_emissions_per_call_g": b.mean_emissions_g, "new_emissions_per_call_g": n.mean_emissions_g,
        })
    compared = [r for r in rows if r["status"] == "compared"]
    overall_base = math.fsum(r["base_calls"] * r["base_energy_per_call_j"] for r in compared)
    overall_new = math.fsum(r["base_calls"] * r["new_energy_per_call_j"] for r in compared)
    overall = (overall_new / overall_base - 1.0) * 100.0 if overall_base > 0 else 0.0
    return {"basis": basis, "base_price_j_per_cpu_s": price, "rows": rows, "overall_change_pct": overall,
            "overall_base_j": overall_base, "overall_new_j": overall_new}


def judge(result: Dict[str, Any], budget: Optional[float], route_budgets: Dict[str, float],
          overall_budget: Optional[float], significant_only: bool) -> List[str]:
    """Mark rows over their budget; return the failures as sentences."""
    failures = []
    for row in result["rows"]:
        if row["status"] != "compared":
            continue
        limit = route_budgets.get(row["key"], budget)
        row["budget_pct"] = limit
        significant = abs(row["change_pct"]) > row["noise_pct"]
        over = limit is not None and row["change_pct"] > limit and (significant or not significant_only)
        row["over_budget"] = over
        if over:
            failures.append(f"{row['key']}: {_pct(row['change_pct'])} per call > budget {format_number(limit)}%")
    result["overall_budget_pct"] = overall_budget
    if overall_budget is not None and result["overall_change_pct"] > overall_budget:
        failures.append(f"overall: {_pct(result['overall_change_pct'])} > budget {format_number(overall_budget)}%")
    return failures


def _pct(value: float) -> str:
    return f"{value:+.1f}%" if math.isfinite(value) else "new cost (BASE was 0)"


def format_result(result: Dict[str, Any], failures: List[str]) -> str:
    headers = ("span / route", "calls base/new", "energy/call base", "new", "change", "noise", "spread b/n", "CO2e/call base", "new", "")
    body = []
    for r in result["rows"]:
        if r["status"] != "compared":
            body.append((r["key"], f"{r['base_calls']}/{r['new_calls']}", "", "", r["status"], "", "", "", "", ""))
            continue
        mark = "~" if abs(r["change_pct"]) <= r["noise_pct"] else ""
        verdict = f"OVER BUDGET ({format_number(r['budget_pct'])}%)" if r.get("over_budget") else ""
        body.append((
            r["key"], f"{r['base_calls']}/{r['new_calls']}",
            format_energy(r["base_energy_per_call_j"]), format_energy(r["new_energy_per_call_j"]),
            f"{mark}{_pct(r['change_pct'])}", f"±{r['noise_pct']:.1f}%",
            f"{r['base_cv'] * 100:.0f}%/{r['new_cv'] * 100:.0f}%",
            format_grams(r["base_emissions_per_call_g"]), format_grams(r["new_emissions_per_call_g"]), verdict,
        ))
    widths = [max([len(h)] + [len(row[i]) for row in body]) for i, h in enumerate(headers)]

    def line(cells: Any) -> str:
        return "  ".join(c.ljust(widths[i]) if i in (0, 9) else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = [line(headers), line("-" * w for w in widths)] + [line(row) for row in body]
    basis = ("carbon.energy.total (CPU time x price per CPU-second)" if result["basis"] == "energy"
             else f"CPU time x BASE price {format_energy(result['base_price_j_per_cpu_s'])} per CPU-second")
    out.append("")
    out.append(f"overall (BASE call mix): {format_energy(result['overall_base_j'])} -> "
               f"{format_energy(result['overall_new_j'])} ({_pct(result['overall_change_pct'])})")
    out.append(f"energy basis: {basis}; noise = 2 x standard error of the difference; spread = stdev/mean "
               "across calls; ~ = within noise")
    out.extend(f"FAIL {f}" for f in failures)
    if not failures:
        out.append("OK: within budget" if any(r.get("budget_pct") is not None for r in result["rows"])
                   or result.get("overall_budget_pct") is not None else "no budget given")
    return "\n".join(out)


def _read(path: str) -> "Dict[str, Group] | str":
    """The routes of ``path``, or why it cannot be compared."""
    stats = ReadStats()
    try:
        spans = read_spans(path, stats)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if stats.bad_lines:
        print(f"otel-carbon compare: {path}: {stats.describe()}", file=sys.stderr)
    wrapper = run_wrapper_ids(spans)
    grouped = group_spans(s for s in spans if (s.trace_id, s.span_id) not in wrapper)
    if not any(g.count for g in grouped.values()):
        return f"no span with carbon figures in {path}"
    return grouped


def run(args: argparse.Namespace) -> int:
    groups = []
    for path in (args.base, args.new):
        grouped = _read(path)
        if isinstance(grouped, str):
            return error("compare", grouped)
        groups.append(grouped)
    route_budgets = dict(args.route_budget)
    known = set(groups[0]) | set(groups[1])
    unknown = sorted(k for k in route_budgets if k not in known)
    if unknown:
        return error("compare", f"--route-budget names {', '.join(repr(k) for k in unknown)}, which is in neither "
                     f"file; routes: {', '.join(repr(k) for k in sorted(known)[:20])}")
    result = compare(groups[0], groups[1], args.basis, max(args.min_calls, 1))
    failures = judge(result, args.budget, route_budgets, args.overall_budget, args.significant_only)
    if args.json:
        print(dumps({**result, "failures": failures}))
    else:
        print(format_result(result, failures))
    return 1 if failures else 0
