"""otel-carbon compare: energy per call before/after, noise, budgets and exit codes."""

from __future__ import annotations

import json
import math
import random
import statistics

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_carbon import attributes as A
from otel_carbon.cli import main
from otel_carbon.exporters.otlp_json import OtlpJsonFileSpanExporter

T0 = 1_700_000_000_000_000_000


def write(path, calls):
    """calls: {route: [(energy J, cpu s), ...]}"""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
    tracer = provider.get_tracer("t")
    for route, items in calls.items():
        method, _, path_ = route.partition(" ")
        for energy, cpu in items:
            attrs = {"http.route": path_, "http.request.method": method, A.ENERGY_TOTAL: energy,
                     A.EMISSIONS: energy * 0.1, A.CPU_TIME: cpu, A.METHOD: A.ESTIMATED}
            tracer.start_span(method, attributes=attrs, start_time=T0).end(end_time=T0 + 1_000_000)
    provider.shutdown()
    return str(path)


def noisy(mean, n, spread, seed):
    rng = random.Random(seed)
    return [mean * (1 + rng.uniform(-spread, spread)) for _ in range(n)]


@pytest.fixture
def files(tmp_path):
    a_base = noisy(1.0, 30, 0.02, 1)
    a_new = [x * 1.2 for x in noisy(1.0, 30, 0.02, 2)]
    b = noisy(2.0, 30, 0.02, 3)
    base = write(tmp_path / "base.jsonl", {"GET /a": [(e, e / 4) for e in a_base], "GET /b": [(e, e / 4) for e in b],
                                           "GET /gone": [(1.0, 0.25)]})
    new = write(tmp_path / "new.jsonl", {"GET /a": [(e, e / 4) for e in a_new], "GET /b": [(e, e / 4) for e in b],
                                         "GET /added": [(1.0, 0.25)]})
    return base, new, a_base, a_new, b


def run_json(capsys, *argv):
    code = main(["compare", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_change_and_noise_are_derived_from_the_calls(files, capsys):
    base, new, a_base, a_new, b = files
    code, data = run_json(capsys, base, new)
    assert code == 0  # no budget, no failure
    rows = {r["key"]: r for r in data["rows"]}
    a = rows["GET /a"]
    mb, mn = statistics.fmean(a_base), statistics.fmean(a_new)
    assert a["base_energy_per_call_j"] == pytest.approx(mb)
    assert a["new_energy_per_call_j"] == pytest.approx(mn)
    assert a["change_pct"] == pytest.approx((mn / mb - 1) * 100)
    se = math.sqrt(statistics.variance(a_base) / 30 + statistics.variance(a_new) / 30)
    assert a["noise_pct"] == pytest.approx(2 * se / mb * 100)
    assert a["base_cv"] == pytest.approx(statistics.stdev(a_base) / mb)
    assert a["base_emissions_per_call_g"] == pytest.approx(mb * 0.1)
    assert rows["GET /b"]["change_pct"] == pytest.approx(0.0, abs=1e-9)
    assert rows["GET /gone"]["status"] == "gone" and rows["GET /added"]["status"] == "new"
    overall = (sum(a_new) + sum(b)) / (sum(a_base) + sum(b)) - 1
    assert data["overall_change_pct"] == pytest.approx(overall * 100)


def test_budget_fails_the_costlier_route(files, capsys):
    base, new, *_ = files
    assert main(["compare", base, new, "--budget", "5%"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("GET /a"))
    assert "OVER BUDGET (5%)" in line
    assert "OVER BUDGET" not in next(x for x in out.splitlines() if x.startswith("GET /b"))
    assert "FAIL GET /a" in out and "noise" in out
    assert main(["compare", base, new, "--budget", "25"]) == 0
    assert main(["compare", base, new, "--budget", "5%", "--route-budget", "GET /a=30%"]) == 0


def test_overall_budget_uses_the_base_mix(files, capsys):
    base, new, a_base, a_new, b = files
    overall = ((sum(a_new) + sum(b)) / (sum(a_base) + sum(b)) - 1) * 100  # about +6.7 %
    assert main(["compare", base, new, "--overall-budget", f"{overall + 1:.3f}%"]) == 0
    assert main(["compare", base, new, "--overall-budget", f"{overall - 1:.3f}%"]) == 1
    assert "FAIL overall" in capsys.readouterr().out


def test_cpu_basis_cancels_a_price_change(tmp_path, capsys):
    cpu = [0.1] * 10
    base = write(tmp_path / "b.jsonl", {"GET /x": [(c * 4.0, c) for c in cpu]})
    new = write(tmp_path / "n.jsonl", {"GET /x": [(c * 5.0, c) for c in cpu]})  # dearer CPU-seconds, same work
    code, data = run_json(capsys, base, new, "--budget", "5%")
    assert code == 1 and data["rows"][0]["change_pct"] == pytest.approx(25.0)
    code, data = run_json(capsys, base, new, "--budget", "5%", "--basis", "cpu")
    assert code == 0 and data["rows"][0]["change_pct"] == pytest.approx(0.0, abs=1e-9)
    assert data["base_price_j_per_cpu_s"] == pytest.approx(4.0)


def test_significant_only_ignores_changes_inside_the_noise(tmp_path, capsys):
    base = write(tmp_path / "b.jsonl", {"GET /n": [(e, e) for e in noisy(1.0, 5, 0.5, 7)]})
    new = write(tmp_path / "n.jsonl", {"GET /n": [(e * 1.06, e) for e in noisy(1.0, 5, 0.5, 7)]})
    code, data = run_json(capsys, base, new, "--budget", "5%")
    row = data["rows"][0]
    assert row["change_pct"] == pytest.approx(6.0) and row["noise_pct"] > 6.0
    assert code == 1
    assert main(["compare", base, new, "--budget", "5%", "--significant-only"]) == 0


def test_bad_input(tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    good = write(tmp_path / "g.jsonl", {"GET /x": [(1.0, 0.25)]})
    assert main(["compare", str(empty), good]) == 2
    assert main(["compare", good, str(tmp_path / "missing.jsonl")]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["compare", good, good, "--budget", "-3%"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["compare", good, good, "--route-budget", "no-equals-sign"])
