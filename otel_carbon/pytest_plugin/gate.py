"""This run's tests against a baseline: the change of each test and of the total, the
noise, and which of them are over budget.

**What is compared.** CPU time x the baseline's price of a CPU-second (its energy over its
CPU time): energy at one price, so the change is the change of CPU time. CPU time is the
steadier figure on shared CI machines: it does not grow while a test waits, and a
different price (another machine, host load, a RAPL reading) between the runs cancels out.

**Noise.** The run-to-run spread of one test's CPU time, relative to its mean, is taken
as the largest of: the test's own spread across the runs in the files (a baseline saved
with ``--carbon-save-append`` over several runs), the spread pooled over all gated tests
that were repeated, and, with at least 8 gated tests, the spread of their changes in this
comparison (1.4826 x their median absolute deviation, robust to the few tests that did
change). A test's noise is ``3 x spread x sqrt(1/runs_base + 1/runs_new)`` (three standard
errors of the difference: a gate over every test of a suite needs few false alarms); the
total's adds the tests' variances. With one run on each side and fewer than 8 gated
tests, nothing measures the spread: the noise is 0 and the budget alone decides.

**Budgets.** A test whose baseline CPU time is at least the floor fails when its change
is over the per-test budget *and* over its noise; the total (the tests present in both
runs) fails the same way against the total budget. New and removed tests are listed, not
counted.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from otel_carbon.report_data import Group, format_energy

Z = 3.0
MAD_TO_SD = 1.4826
MIN_TESTS_ACROSS = 8  # fewer changes say too little about their scatter


@dataclass
class Row:
    key: str
    status: str  # compared | new | gone
    base_runs: int = 0
    new_runs: int = 0
    base_cpu_s: float = 0.0  # mean per run
    new_cpu_s: float = 0.0
    base_j: float = 0.0  # base_cpu_s and new_cpu_s at the baseline's price
    new_j: float = 0.0
    change_pct: float = 0.0
    noise_pct: float = 0.0
    gated: bool = False
    over: bool = False


@dataclass
class Comparison:
    price_j_per_cpu_s: float
    rows: List[Row]
    base_total_j: float
    new_total_j: float
    total_change_pct: float
    total_noise_pct: float
    failures: List[str] = field(default_factory=list)


def _mean(values: List[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def _cv(values: List[float]) -> Optional[float]:
    mean = _mean(values)
    return statistics.stdev(values) / mean if len(values) >= 2 and mean > 0 else None


def compare(base: Dict[str, Group], new: Dict[str, Group], min_cpu_s: float) -> Comparison:
    base_cpu = math.fsum(g.total_cpu_time_s for g in base.values())
    base_energy = math.fsum(g.total_energy_j for g in base.values())
    price = base_energy / base_cpu if base_cpu > 0 and base_energy > 0 else 0.0
    rows: List[Row] = []
    own: Dict[str, float] = {}  # each test's spread across its runs (0 when it ran once a side)
    for key in sorted(set(base) | set(new)):
        b, n = base.get(key), new.get(key)
        if b is None or not b.count or n is None or not n.count:
            rows.append(Row(key, "new" if b is None or not b.count else "gone",
                            b.count if b else 0, n.count if n else 0))
            continue
        bm, nm = _mean(b.cpu_time_s), _mean(n.cpu_time_s)
        row = Row(key, "compared", b.count, n.count, bm, nm, bm * price, nm * price,
                  (nm / bm - 1.0) * 100.0 if bm > 0 else (0.0 if nm == 0 else math.inf))
        row.gated = bm >= min_cpu_s and bm > 0
        own[key] = _pooled([_cv(b.cpu_time_s), _cv(n.cpu_time_s)], [b.count - 1, n.count - 1])
        rows.append(row)
    gated = [r for r in rows if r.gated]
    spread = max(_pooled([own[r.key] for r in gated], [r.base_runs + r.new_runs - 2 for r in gated]), _across(gated))
    compared = [r for r in rows if r.status == "compared"]
    variance_s2 = 0.0
    for r in compared:
        s = max(spread, own[r.key])
        factor = math.sqrt(1.0 / r.base_runs + 1.0 / r.new_runs)
        r.noise_pct = Z * s * factor * 100.0
        variance_s2 += (s * r.base_cpu_s * factor) ** 2
    base_s = math.fsum(r.base_cpu_s for r in compared)
    new_s = math.fsum(r.new_cpu_s for r in compared)
    return Comparison(
        price_j_per_cpu_s=price,
        rows=rows,
        base_total_j=base_s * price,
        new_total_j=new_s * price,
        total_change_pct=(new_s / base_s - 1.0) * 100.0 if base_s > 0 else 0.0,
        total_noise_pct=Z * math.sqrt(variance_s2) / base_s * 100.0 if base_s > 0 else 0.0,
    )


def _pooled(cvs: List[Optional[float]], dofs: List[int]) -> float:
    """Relative spreads pooled by their degrees of freedom (0.0 when none has any)."""
    pairs = [(cv, dof) for cv, dof in zip(cvs, dofs) if cv is not None and dof > 0]
    total = sum(dof for _, dof in pairs)
    return math.sqrt(sum(cv * cv * dof for cv, dof in pairs) / total) if total else 0.0


def _across(rows: List[Row]) -> float:
    """The spread of one run's figure implied by how much the gated tests' changes scatter."""
    logs = [math.log(r.new_cpu_s / r.base_cpu_s) for r in rows if r.base_cpu_s > 0 and r.new_cpu_s > 0]
    if len(logs) < MIN_TESTS_ACROSS:
        return 0.0
    centre = statistics.median(logs)
    sd = MAD_TO_SD * statistics.median(abs(x - centre) for x in logs)
    runs = _mean([1.0 / r.base_runs + 1.0 / r.new_runs for r in rows])
    return sd / math.sqrt(runs)


def judge(result: Comparison, budget_total_pct: Optional[float], budget_test_pct: Optional[float]) -> List[str]:
    """Mark the rows over budget; return the failures as sentences (also kept on ``result``)."""
    failures = []
    if budget_test_pct is not None:
        for r in result.rows:
            if r.gated and r.change_pct > budget_test_pct and r.change_pct > r.noise_pct:
                r.over = True
                failures.append(_sentence(r.key, r.change_pct, r.base_j, r.new_j, budget_test_pct, r.noise_pct))
    change, noise = result.total_change_pct, result.total_noise_pct
    if budget_total_pct is not None and change > budget_total_pct and change > noise:
        failures.append(_sentence("total", change, result.base_total_j, result.new_total_j, budget_total_pct, noise))
    result.failures = failures
    return failures


def _sentence(what: str, change_pct: float, base_j: float, new_j: float, budget_pct: float, noise_pct: float) -> str:
    return (f"{what}: {change_pct:+.1f}% energy ({format_energy(base_j)} -> {format_energy(new_j)}), "
            f"over the {budget_pct:g}% budget and the noise ±{noise_pct:.1f}%")
