"""The plugin's gate on given figures: the change, the noise and the verdict."""

from __future__ import annotations

import math
import statistics

import pytest

from otel_carbon.pytest_plugin import gate
from otel_carbon.report_data import Group

PRICE = 3.0  # J per CPU-second


def _groups(cpu_by_test):
    groups = {}
    for key, runs in cpu_by_test.items():
        g = groups[key] = Group(key)
        for cpu_s in runs:
            g.cpu_time_s.append(cpu_s)
            g.energy_j.append(cpu_s * PRICE)
            g.emissions_g.append(0.0)
            g.duration_s.append(cpu_s)
    return groups


def test_change_is_cpu_time_at_the_baseline_price_and_one_run_each_has_no_noise():
    base = _groups({"a": [0.100], "b": [0.200]})
    new = _groups({"a": [0.150], "b": [0.200]})
    result = gate.compare(base, new, min_cpu_s=0.01)
    rows = {r.key: r for r in result.rows}
    assert result.price_j_per_cpu_s == pytest.approx(PRICE)
    assert rows["a"].change_pct == pytest.approx(50.0)
    assert rows["a"].new_j == pytest.approx(0.150 * PRICE)
    assert rows["a"].noise_pct == 0.0 and result.total_noise_pct == 0.0
    assert result.total_change_pct == pytest.approx(50.0 / 3)
    failures = gate.judge(result, budget_total_pct=20.0, budget_test_pct=10.0)
    assert failures == ["a: +50.0% energy (300 mJ -> 450 mJ), over the 10% budget and the noise ±0.0%"]
    assert rows["a"].over and not rows["b"].over


def test_repeated_baseline_gives_the_noise_and_a_change_inside_it_passes():
    base = _groups({"a": [0.05, 0.15], "b": [0.20, 0.20]})
    new = _groups({"a": [0.15], "b": [0.20]})
    result = gate.compare(base, new, min_cpu_s=0.01)
    rows = {r.key: r for r in result.rows}
    cv_a = statistics.stdev([0.05, 0.15]) / 0.10
    assert rows["a"].noise_pct == pytest.approx(gate.Z * cv_a * math.sqrt(1 / 2 + 1) * 100)
    # b did not move, but the pooled spread of the gated tests applies to it too
    assert rows["b"].noise_pct == pytest.approx(gate.Z * cv_a / math.sqrt(2) * math.sqrt(1 / 2 + 1) * 100)
    assert rows["a"].change_pct == pytest.approx(50.0)
    assert gate.judge(result, 10.0, 10.0) == []


def test_scatter_across_many_tests_is_the_noise_and_one_outlier_fails():
    changes = [0.96, 1.04, 0.98, 1.02, 0.97, 1.03, 0.99, 1.01]
    base = _groups({f"t{i}": [0.1] for i in range(9)})
    new = _groups({**{f"t{i}": [0.1 * c] for i, c in enumerate(changes)}, "t8": [0.2]})
    result = gate.compare(base, new, min_cpu_s=0.01)
    rows = {r.key: r for r in result.rows}
    assert 0 < rows["t0"].noise_pct < 20
    failures = gate.judge(result, budget_total_pct=None, budget_test_pct=5.0)
    assert [f.split(":")[0] for f in failures] == ["t8"]
    # fewer than 8 gated tests: their scatter is not taken as noise
    few = gate.compare({k: base[k] for k in ("t0", "t1", "t8")}, {k: new[k] for k in ("t0", "t1", "t8")}, 0.01)
    assert all(r.noise_pct == 0.0 for r in few.rows)


def test_tests_below_the_floor_are_not_gated_and_new_or_gone_tests_not_counted():
    base = _groups({"tiny": [0.001], "big": [0.5], "gone": [0.3]})
    new = _groups({"tiny": [0.004], "big": [0.5], "new": [9.0]})
    result = gate.compare(base, new, min_cpu_s=0.01)
    rows = {r.key: r for r in result.rows}
    assert not rows["tiny"].gated and rows["big"].gated
    assert rows["gone"].status == "gone" and rows["new"].status == "new"
    assert result.total_change_pct == pytest.approx((0.504 / 0.501 - 1) * 100)
    assert gate.judge(result, 10.0, 10.0) == []
