"""The summary ``otel-carbon run`` prints at exit (and writes with ``--summary-json``): the
process tree's energy and CO2e (its CPU time x the host's price over the run's window), the
Python program's own spans from the spans file, and the exit status as a shell reports it.
Nothing here changes the exit code: the caller catches whatever it raises."""

from __future__ import annotations

import signal
from typing import Any, Dict, List, Tuple

from otel_carbon import attribution, config
from otel_carbon import attributes as A
from otel_carbon.cli.report_data import group_spans, ranked
from otel_carbon.cli.span_lines import ReadStats, SpanRecord, bounded_lines, iter_spans
from otel_carbon.units_text import format_energy, format_grams, format_number, format_seconds, format_si


def exit_status(returncode: int) -> int:
    """The status a shell reports: 128 + N for a child ended by signal N."""
    return returncode if returncode >= 0 else 128 - returncode


def tree_figures(sampler: Any, t0_ns: int, t1_ns: int, cpu_s: float, start: Any = None) -> Tuple[Dict[str, float], Any, str]:
    """Energy per component of ``cpu_s`` CPU-seconds over [t0, t1]: the window's price
    when it saw enough busy CPU time, else the latest trailing price."""
    ledger = sampler.ledger
    tick = ledger.latest
    if tick is None:
        return {}, None, A.UNAVAILABLE
    window = ledger.window(t0_ns, t1_ns, start=start)
    prices: Any = tick
    if window is not None and window.busy_s >= 0.05 and window.duration_s >= 0.2:
        # the host's price over the window (the children are not in this process's charge)
        prices = attribution.WindowPrices(
            [window.active_j.get(name, 0.0) / window.busy_s for name in ledger.components],
            sum(window.idle_j.values()) / window.busy_s,
            0.0,
        )
    energy_j, _, idle_j, _ = attribution.charge(cpu_s, prices)
    energy: Dict[str, float] = {A.CPU: 0.0, A.MEMORY: 0.0}
    for name, component_j in zip(ledger.components, energy_j):
        energy[name] = energy.get(name, 0.0) + component_j
    if config.idle_policy() == "cpu":
        energy["idle"] = idle_j
    return energy, tick.intensity, tick.method


def summarise(sampler: Any, name: str, command: List[str], python: bool, returncode: int, t0_ns: int, t1_ns: int,
               cpu_s: float, spans_path: str, start_offset: int, our_span_id: str, span: Any,
               top: int, start_tick: Any = None) -> Dict[str, Any]:
    energy, intensity, method = tree_figures(sampler, t0_ns, t1_ns, cpu_s, start_tick)
    spans: List[SpanRecord] = []
    stats = ReadStats()
    try:
        with open(spans_path, "rb") as fh:
            fh.seek(start_offset)  # only what this run wrote
            spans = list(iter_spans(bounded_lines(fh), stats))
    except OSError:
        spans = []
    roots = [s for s in spans if s.parent_span_id == our_span_id]
    inner = [s for s in spans if s.parent_span_id != our_span_id and s.span_id != our_span_id]
    gpu_j = sum(s.number(A.RUN_ENERGY_GPU) or 0.0 for s in roots)
    if gpu_j:
        energy[A.GPU] = gpu_j
    total_j = attribution.total_j(energy.values())
    g_per_kwh = intensity.g_per_kwh if intensity is not None else 0.0
    pue = intensity.pue if intensity is not None else 1.0
    emissions_g = attribution.emissions_g(total_j, intensity.g_per_joule) if intensity is not None else 0.0
    duration_s = (t1_ns - t0_ns) / 1e9
    attributes = {
        A.CPU_TIME: cpu_s, A.ENERGY_TOTAL: total_j, A.EMISSIONS: emissions_g, A.INTENSITY: g_per_kwh,
        A.ZONE: intensity.zone if intensity is not None else "", A.METHOD: method, "process.exit.code": returncode,
    }
    for component, key in A.ENERGY_BY_COMPONENT.items():
        if component in energy:
            attributes[key] = energy[component]
    span.set_attributes(attributes)
    span.end()
    top_rows = []
    for g in ranked(group_spans(inner))[: max(top, 0)]:
        top_rows.append({"key": g.key, "count": g.count, "energy_total_j": g.total_energy_j,
                         "energy_mean_j": g.mean_energy_j, "emissions_total_g": g.total_emissions_g,
                         "duration_mean_s": g.mean_duration_s})
    return {
        "command": command, "python_instrumented": python and bool(roots), "exit_code": exit_status(returncode),
        "signal": _signal_name(-returncode) if returncode < 0 else None, "skipped_lines": stats.describe() or None,
        "duration_s": duration_s, "cpu_time_s": cpu_s, "energy_j": energy, "energy_total_j": total_j,
        "energy_kwh": total_j / A.JOULES_PER_KWH, "emissions_g": emissions_g, "intensity_g_per_kwh": g_per_kwh,
        "pue": pue, "zone": attributes[A.ZONE], "method": method, "spans": len(inner),
        "spans_energy_j": sum(s.energy_j or 0.0 for s in inner if not s.parent_span_id),
        "top_spans": top_rows, "spans_file": spans_path, "python_expected": python,
        "python_root_energy_j": sum(s.number(A.RUN_ENERGY_TOTAL) or 0.0 for s in roots),
        "python_root_duration_s": sum(s.duration_s for s in roots),
    }


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def format_summary(s: Dict[str, Any], top: int) -> str:
    parts = ", ".join(f"{k} {format_energy(v)}" for k, v in s["energy_j"].items())
    method = s["method"]
    if method == A.MEASURED:
        how = "measured (hardware energy counters)"
    elif method in (A.ESTIMATED, A.MIXED):
        how = ("ESTIMATED: no hardware energy counter could be read for every component, so the figures come from "
               "power models (run `otel-carbon sensors` to see which and why)")
        if method == A.MIXED:
            how = "MIXED: partly " + how
    else:
        how = "UNAVAILABLE: the energy sensors could not be read"
    lines = [
        f"otel-carbon run: {' '.join(s['command'])}",
        f"  exit code   {s['exit_code']}" + (f" (ended by {s['signal']})" if s.get("signal") else ""),
        f"  duration    {format_seconds(s['duration_s'])}",
        f"  CPU time    {format_seconds(s['cpu_time_s'])} (the process tree)",
        f"  energy      {format_energy(s['energy_total_j'])} = {format_si(s['energy_total_j'] / 3600, 'Wh')}  ({parts})",
        f"  CO2e        {format_grams(s['emissions_g'])}  ({format_number(s['intensity_g_per_kwh'])} g/kWh, "
        f"zone {s['zone']}, PUE {format_number(s['pue'])})",
        f"  method      {how}",
    ]
    if s["zone"] == "world":
        lines.append("  location    not configured: world-average intensity used; set OTEL_CARBON_COUNTRY "
                     "(e.g. FR), OTEL_CARBON_REGION or cloud.region")
    if s["python_expected"] and not s["python_instrumented"]:
        lines.append("  spans       none received from the Python program (it exited early, or could not "
                     "import otel_carbon): measured as a process only")
    if s["python_instrumented"]:
        lines.append(f"  in Python   {format_energy(s['python_root_energy_j'])} over {format_seconds(s['python_root_duration_s'])} "
                     "from the end of start-up (interpreter and instrumentation start-up are in the totals above)")
    if s["top_spans"]:
        lines.append(f"  top spans by energy ({s['spans']} span{'' if s['spans'] == 1 else 's'} inside the program):")
        width = max(len(r["key"]) for r in s["top_spans"])
        for r in s["top_spans"]:
            lines.append(f"    {r['key']:<{width}}  x{r['count']:<6} {format_energy(r['energy_total_j']):>10}"
                         f"  mean {format_energy(r['energy_mean_j']):>10}  {format_grams(r['emissions_total_g']):>9} CO2e")
    if s.get("skipped_lines"):
        lines.append(f"  spans file  {s['skipped_lines']}")
    if s.get("spans_file"):
        lines.append(f"  spans file  {s['spans_file']} (otel-carbon report {s['spans_file']})")
    return "\n".join(lines)
