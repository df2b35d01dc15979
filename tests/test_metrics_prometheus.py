"""A real Prometheus server scrapes ``opentelemetry-exporter-prometheus`` in an instrumented
Flask app, all on loopback; PromQL through Prometheus's HTTP API returns energy per route:
the totals of every recorded span, with the traces sampled at 10 % (parent-based ratio).

Needs the ``prometheus`` binary (Debian package ``prometheus``; ``.ci/run`` installs it).
"""

import time
from collections import defaultdict

import pytest

from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio

from otel_carbon import attributes as A

if __package__:
    from .metrics_flask_app import COST, InstrumentedApp
    from .prometheus_server import PrometheusServer, http_get, prometheus_binary
else:
    from metrics_flask_app import COST, InstrumentedApp
    from prometheus_server import PrometheusServer, http_get, prometheus_binary

pytestmark = pytest.mark.skipif(
    prometheus_binary() is None,
    reason="the prometheus binary is not installed (apt-get install prometheus; .ci/run installs it)",
)

REQUESTS_PER_ROUTE = 150
WAIT_S = 20.0


def by_route(prom, promql):
    return {r["metric"].get("http_route"): float(r["value"][1]) for r in prom.query(promql)}


def test_prometheus_query_gives_energy_per_route_in_order_of_cost(ccf_sampler):
    app = InstrumentedApp(ccf_sampler, trace_sampler=ParentBasedTraceIdRatio(0.1)).start()
    try:
        with PrometheusServer([f"127.0.0.1:{app.metrics_port}"], scrape_interval_s=1) as prom:
            app.request_each_route(REQUESTS_PER_ROUTE)

            # The same sums from the recorded spans' own attributes (exported or not).
            expected_j, expected_g = defaultdict(float), defaultdict(float)
            for span in app.recorded.spans:
                route = span.attributes.get("http.route")
                expected_j[route] += span.attributes[A.ENERGY_TOTAL]
                expected_g[route] += span.attributes[A.EMISSIONS]
            exported = len(app.spans.get_finished_spans())

            # Wait (bounded) until a scrape taken after the last request has been stored.
            deadline = time.monotonic() + WAIT_S
            while True:
                counts = by_route(prom, "sum by (http_route) (carbon_span_count_total)")
                if all(counts.get(route) == REQUESTS_PER_ROUTE for route in COST):
                    break
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"Prometheus did not get all {REQUESTS_PER_ROUTE} requests per route in {WAIT_S}s: "
                        f"{counts}; targets: {prom.targets_health()}\n{prom.log_tail()}"
                    )
                time.sleep(0.25)

            energy = by_route(prom, "sum by (http_route) (carbon_span_energy_joules_total)")
            grams = by_route(prom, "sum by (http_route) (carbon_span_emissions_grams_total)")
            exposition = http_get(f"http://127.0.0.1:{app.metrics_port}/metrics").decode()
            hw = prom.query('hw_energy_joules_total{hw_type="cpu"}')
            intensity = prom.query("carbon_grid_intensity_grams_per_kWh")
            process = prom.query("sum(carbon_process_energy_joules_total)")
    finally:
        app.stop()

    assert len(app.recorded.spans) == REQUESTS_PER_ROUTE * len(COST)
    assert 0 < exported < len(app.recorded.spans) / 3  # ~10 % of the traces exported
    routes = sorted(COST, key=COST.get)  # cheapest first
    assert set(energy) == set(COST), energy
    assert all(energy[route] > 0 for route in routes), energy
    assert [energy[r] for r in routes] == sorted(energy[r] for r in routes), energy
    assert energy[routes[-1]] > energy[routes[0]]
    for route in routes:  # Prometheus holds exactly what the spans carried
        assert energy[route] == pytest.approx(expected_j[route], rel=1e-9)
        assert grams[route] == pytest.approx(expected_g[route], rel=1e-9)
    assert grams[routes[-1]] > grams[routes[0]] > 0

    assert "carbon_span_energy_joules_total{" in exposition and "carbon_span_count_total{" in exposition
    assert "carbon_span_energy_distribution" not in exposition  # the histogram is opt-in
    assert len(hw) == 1 and float(hw[0]["value"][1]) > 0 and hw[0]["metric"]["carbon_method"] == "estimated"
    assert hw[0]["metric"]["job"] and hw[0]["metric"]["hw_id"] == "cpu-model"
    assert [float(r["value"][1]) for r in intensity] == [100.0] and intensity[0]["metric"]["carbon_zone"] == "TEST"
    assert float(process[0]["value"][1]) > 0
