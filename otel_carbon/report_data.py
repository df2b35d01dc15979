"""Reading OTLP JSON lines and summarising spans per span name / ``http.route``.

Shared by ``otel-carbon report``, ``compare`` and ``run``. Input: one
``ExportTraceServiceRequest`` per line (the Collector's file exporter, our
:class:`~otel_carbon.exporters.otlp_json.OtlpJsonFileSpanExporter`); lines that hold no
spans (metrics, logs) are skipped, and so are lines that are not JSON (counted).

Grouping key of a span: ``METHOD ROUTE`` when it has ``http.route`` (method from
``http.request.method`` or the older ``http.method``), else the route alone, else the span
name. p95 is the nearest-rank percentile (the smallest value with at least 95 % of the
values at or below it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

from otel_carbon import attributes as A

ROUTE = "http.route"
METHODS = ("http.request.method", "http.method")


@dataclass(frozen=True)
class SpanRecord:
    name: str
    key: str
    start_ns: int
    end_ns: int
    attributes: Dict[str, Any]
    service: str = ""
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    def number(self, name: str) -> Optional[float]:
        value = self.attributes.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def energy_j(self) -> Optional[float]:
        return self.number(A.ENERGY_TOTAL)

    @property
    def emissions_g(self) -> float:
        return self.number(A.EMISSIONS) or 0.0

    @property
    def cpu_time_s(self) -> float:
        return self.number(A.CPU_TIME) or 0.0


@dataclass
class ReadStats:
    lines: int = 0
    bad_lines: int = 0
    spans: int = 0


def _value(any_value: Dict[str, Any]) -> Any:
    """An OTLP JSON ``AnyValue`` as a Python value."""
    if not isinstance(any_value, dict):
        return None
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in any_value:
            value = any_value[kind]
            return float(value) if kind == "doubleValue" else value
    if "intValue" in any_value:
        try:
            return int(any_value["intValue"])
        except (TypeError, ValueError):
            return None
    if "arrayValue" in any_value:
        return [_value(v) for v in (any_value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in any_value:
        return {kv.get("key"): _value(kv.get("value", {})) for kv in (any_value["kvlistValue"] or {}).get("values", [])}
    return None


def _attributes(items: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for kv in items or ():
        if isinstance(kv, dict) and "key" in kv:
            out[kv["key"]] = _value(kv.get("value", {}))
    return out


def group_key(name: str, attributes: Dict[str, Any]) -> str:
    route = attributes.get(ROUTE)
    if isinstance(route, str) and route:
        for m in METHODS:
            method = attributes.get(m)
            if isinstance(method, str) and method and method != "_OTHER":
                return f"{method} {route}"
        return route
    return name


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def iter_spans(lines: Iterable[str], stats: Optional[ReadStats] = None) -> Iterator[SpanRecord]:
    stats = stats if stats is not None else ReadStats()
    for line in lines:
        line = line.strip()
        if not line:
            continue
        stats.lines += 1
        try:
            message = json.loads(line)
        except ValueError:
            stats.bad_lines += 1
            continue
        if not isinstance(message, dict):
            stats.bad_lines += 1
            continue
        for rs in message.get("resourceSpans") or ():
            resource = _attributes(((rs or {}).get("resource") or {}).get("attributes"))
            service = str(resource.get("service.name", ""))
            for ss in (rs or {}).get("scopeSpans") or ():
                for span in (ss or {}).get("spans") or ():
                    if not isinstance(span, dict):
                        continue
                    attrs = _attributes(span.get("attributes"))
                    name = str(span.get("name", ""))
                    stats.spans += 1
                    yield SpanRecord(
                        name=name,
                        key=group_key(name, attrs),
                        start_ns=_int(span.get("startTimeUnixNano")),
                        end_ns=_int(span.get("endTimeUnixNano")),
                        attributes=attrs,
                        service=service,
                        trace_id=str(span.get("traceId", "")),
                        span_id=str(span.get("spanId", "")),
                        parent_span_id=str(span.get("parentSpanId", "") or ""),
                    )


def read_spans(path: str, stats: Optional[ReadStats] = None) -> List[SpanRecord]:
    """Every span in the OTLP JSON lines file ``path`` (``OSError`` if unreadable)."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return list(iter_spans(fh, stats))


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


def format_energy(joules: float) -> str:
    """Joules with a readable unit (mJ, J, kJ)."""
    magnitude = abs(joules)
    if magnitude == 0:
        return "0 J"
    if magnitude < 1e-3:
        return f"{joules * 1e6:.3g} uJ"
    if magnitude < 1:
        return f"{joules * 1e3:.3g} mJ"
    if magnitude < 1e3:
        return f"{joules:.3g} J"
    return f"{joules / 1e3:.3g} kJ"


def format_grams(grams: float) -> str:
    magnitude = abs(grams)
    if magnitude == 0:
        return "0 g"
    if magnitude < 1e-3:
        return f"{grams * 1e6:.3g} ug"
    if magnitude < 1:
        return f"{grams * 1e3:.3g} mg"
    if magnitude < 1e3:
        return f"{grams:.3g} g"
    return f"{grams / 1e3:.3g} kg"
