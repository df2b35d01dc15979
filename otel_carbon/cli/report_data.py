"""Summaries of span records (:mod:`otel_carbon.cli.span_lines`) per span name /
``http.route``: totals, means and p95 per group, the time series of the HTML page, which
spans a whole-program run already counts, and JSON output without NaN or Infinity.

p95 is the nearest-rank percentile (the smallest value with at least 95 % of the values at
or below it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Tuple

from otel_carbon import attributes as A
from otel_carbon.cli.span_lines import SpanRecord


def p95(values: List[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


@dataclass
class Group:
    """The spans of one key that carry carbon figures, and how many did not."""

    key: str
    energy_j: List[float] = field(default_factory=list)
    emissions_g: List[float] = field(default_factory=list)
    cpu_time_s: List[float] = field(default_factory=list)
    duration_s: List[float] = field(default_factory=list)
    methods: Dict[str, int] = field(default_factory=dict)
    #: total energy per component attribute (``carbon.energy.cpu``, ...) of the spans that have it
    component_j: Dict[str, float] = field(default_factory=dict)
    without_figures: int = 0

    @property
    def count(self) -> int:
        return len(self.energy_j)

    @property
    def total_energy_j(self) -> float:
        return math.fsum(self.energy_j)

    @property
    def mean_energy_j(self) -> float:
        return self.total_energy_j / self.count if self.count else 0.0

    @property
    def p95_energy_j(self) -> float:
        return p95(self.energy_j)

    @property
    def total_emissions_g(self) -> float:
        return math.fsum(self.emissions_g)

    @property
    def mean_emissions_g(self) -> float:
        return self.total_emissions_g / self.count if self.count else 0.0

    @property
    def mean_duration_s(self) -> float:
        return math.fsum(self.duration_s) / len(self.duration_s) if self.duration_s else 0.0

    @property
    def total_cpu_time_s(self) -> float:
        return math.fsum(self.cpu_time_s)

    @property
    def method(self) -> str:
        if not self.methods:
            return A.UNAVAILABLE
        if len(self.methods) == 1:
            return next(iter(self.methods))
        return A.MIXED


def group_spans(spans: Iterable[SpanRecord]) -> Dict[str, Group]:
    groups: Dict[str, Group] = {}
    for span in spans:
        group = groups.get(span.key)
        if group is None:
            group = groups[span.key] = Group(span.key)
        energy = span.energy_j
        if energy is None:
            group.without_figures += 1
            continue
        group.energy_j.append(energy)
        group.emissions_g.append(span.emissions_g)
        group.cpu_time_s.append(span.cpu_time_s)
        group.duration_s.append(span.duration_s)
        method = str(span.attributes.get(A.METHOD, A.UNAVAILABLE))
        group.methods[method] = group.methods.get(method, 0) + 1
        for name in A.ENERGY_BY_COMPONENT.values():
            value = span.number(name)
            if value is not None:
                group.component_j[name] = group.component_j.get(name, 0.0) + value
    return groups


def ranked(groups: Dict[str, Group]) -> List[Group]:
    """Groups with figures, most energy first (ties by key)."""
    return sorted((g for g in groups.values() if g.count), key=lambda g: (-g.total_energy_j, g.key))


def time_series(spans: Iterable[SpanRecord], buckets: int = 40) -> Tuple[int, int, List[Tuple[int, float, float]]]:
    """Energy and CO2e per time bucket (by span end time): (t0_ns, width_ns, [(t_ns, J, g)])."""
    points = [(s.end_ns, s.energy_j, s.emissions_g) for s in spans if s.energy_j is not None and s.end_ns > 0]
    if not points:
        return 0, 0, []
    t0 = min(p[0] for p in points)
    t1 = max(p[0] for p in points)
    n = max(1, min(buckets, len(points)))
    width = max((t1 - t0) // n + 1, 1)
    energy = [0.0] * n
    emissions = [0.0] * n
    for t, e, g in points:
        i = min((t - t0) // width, n - 1)
        energy[i] += e  # type: ignore[operator]
        emissions[i] += g
    return t0, width, [(t0 + i * width, energy[i], emissions[i]) for i in range(n)]


RUN_WRAPPER_SCOPES = (A.SCOPE_PROCESS_TREE,)
WHOLE_PROGRAM_SCOPES = (A.SCOPE_PROCESS, A.SCOPE_MACHINE, A.SCOPE_PROCESS_TREE)


def run_wrapper_ids(spans: Iterable[SpanRecord]) -> "set[Tuple[str, str]]":
    """(trace, span) ids of what ``otel-carbon run`` adds around a program: its own span
    over the process tree and the program's root span under it. Neither is a route."""
    spans = list(spans)
    wrappers = {(s.trace_id, s.span_id) for s in spans if s.attributes.get(A.RUN_SCOPE) in RUN_WRAPPER_SCOPES}
    return wrappers | {(s.trace_id, s.span_id) for s in spans if (s.trace_id, s.parent_span_id) in wrappers}


def counted_once(spans: Iterable[SpanRecord]) -> Tuple[List[SpanRecord], List[SpanRecord]]:
    """The spans whose figures make a total without counting anything twice: spans with
    figures that have no ancestor with figures in their own process in ``spans`` (a parent's
    figures include the work of its children; a remote parent's do not: two services'
    spans of one request in one file both count). Returns (requests and other local roots, whole
    programs): spans of a process, machine or process-tree scope are the second list, as they
    overlap everything else that ran at the time."""
    spans = list(spans)
    by_id = {(s.trace_id, s.span_id): s for s in spans if s.span_id}
    requests: List[SpanRecord] = []
    programs: List[SpanRecord] = []
    for span in spans:
        if span.energy_j is None:
            continue
        parent_id, hops, covered = "" if span.parent_remote else span.parent_span_id, 0, False
        while parent_id and hops < len(by_id):  # bounded: a malformed file may hold a cycle
            parent = by_id.get((span.trace_id, parent_id))
            if parent is None:
                break
            if parent.energy_j is not None:
                covered = True
                break
            parent_id, hops = "" if parent.parent_remote else parent.parent_span_id, hops + 1
        if not covered:
            (programs if span.attributes.get(A.RUN_SCOPE) in WHOLE_PROGRAM_SCOPES else requests).append(span)
    return requests, programs


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Strict JSON (never NaN or Infinity) for ``--json`` outputs."""
    return json.dumps(json_safe(value), indent=2, allow_nan=False, default=str)
