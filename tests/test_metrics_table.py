"""The per-span metrics' table, added to by the compiled span path itself.

A local root whose key (span name, carbon.method, the allow-listed attributes) is already in
the :class:`~otel_carbon.metrics._spans.SpanRecorder`'s table is summed there by the C hooks,
with no call to ``on_span``; a new key, the histogram, an allow-listed ``carbon.*`` name or
any other listener beside it sends spans through ``on_span`` as before. Either way the sums
equal the spans' own attributes, whichever path each span took and whatever the threads do.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_carbon import attributes as A
from otel_carbon import cpu_clock
from otel_carbon.metrics import _spans
from otel_carbon.span_listeners import SpanListeners, Table

if __package__:
    from .test_metrics import Pipeline, burn, manual_sampler  # noqa: F401 - the fixture
else:
    from test_metrics import Pipeline, burn, manual_sampler  # noqa: F401

compiled = pytest.mark.skipif(
    cpu_clock.speedups is None or os.environ.get("OTEL_CARBON_SPEEDUPS", "").strip().lower() == "off",
    reason="OTEL_CARBON_SPEEDUPS=off: the pure-Python run has no compiled span path",
)


@pytest.fixture
def on_span_calls(monkeypatch):
    """How many times SpanRecorder.on_span ran (the listener call the table saves)."""
    calls = []
    original = _spans.SpanRecorder.on_span

    def counting(self, span, figures):
        calls.append(span.name)
        return original(self, span, figures)

    monkeypatch.setattr(_spans.SpanRecorder, "on_span", counting)
    return calls


def requests(tracer, n, routes=("/a", "/b", "/c")):
    for i in range(n):
        route = routes[i % len(routes)]
        attrs = {"http.route": route, "http.method": "GET"}  # the old method name: the fallback key
        with tracer.start_as_current_span(f"GET {route}", attributes=attrs):
            with tracer.start_as_current_span("child"):  # a child: never summed
                burn(500)


def sums(spans):
    """{route: (energy J, emissions g, count)} of the local roots, from their own attributes."""
    out = {}
    for span in spans:
        if span.parent is not None:
            continue
        route = span.attributes["http.route"]
        e, g, c = out.get(route, (0.0, 0.0, 0))
        out[route] = (e + span.attributes[A.ENERGY_TOTAL], g + span.attributes[A.EMISSIONS], c + 1)
    return out


def table_sums(recorder):
    out = {}
    for attrs_energy_g_count in recorder._rows():  # noqa: SLF001 - the rows the counters publish
        energy, emissions, count, attrs = attrs_energy_g_count
        out[attrs["http.route"]] = (energy, emissions, count)
    return out


def assert_same(got, expected):
    assert set(got) == set(expected)
    for route, (e, g, c) in expected.items():
        assert got[route][2] == c, (route, got[route], (e, g, c))
        assert math.isclose(got[route][0], e, rel_tol=1e-12) and math.isclose(got[route][1], g, rel_tol=1e-12)


@compiled
def test_a_known_key_is_summed_without_a_listener_call(manual_sampler, on_span_calls):
    p = Pipeline(manual_sampler)
    try:
        requests(p.tracer, 300)
        recorder = p.metrics._spans  # noqa: SLF001
        assert p.processor._listeners.table is not None  # noqa: SLF001
        assert_same(table_sums(recorder), sums(p.exporter.get_finished_spans()))
        # one call per new key (and a few first spans the Python path takes), not 300
        assert len(on_span_calls) < 30, len(on_span_calls)
        keys = list(recorder._cells)  # noqa: SLF001
        assert all(key[1] == A.ESTIMATED and key[-1] == "GET" for key in keys), keys  # method, http.method
        got_attrs = sorted(attrs[A.SPAN_NAME] for *_, attrs in recorder._rows())  # noqa: SLF001
        assert got_attrs == ["GET /a", "GET /b", "GET /c"]
        assert all(attrs[A.HTTP_REQUEST_METHOD] == "GET" for *_, attrs in recorder._rows())  # noqa: SLF001
    finally:
        p.close()


def test_without_the_table_every_root_calls_the_listener(manual_sampler, on_span_calls, monkeypatch):
    """The histogram (a value per span), or an allow-listed carbon.* name: no table."""
    monkeypatch.setenv("OTEL_CARBON_METRIC_HISTOGRAM", "on")
    p = Pipeline(manual_sampler)
    try:
        assert p.metrics._spans.table() is None and p.processor._listeners.table is None  # noqa: SLF001
        requests(p.tracer, 60)
        assert len(on_span_calls) == 60
        assert_same(table_sums(p.metrics._spans), sums(p.exporter.get_finished_spans()))  # noqa: SLF001
    finally:
        p.close()
    monkeypatch.delenv("OTEL_CARBON_METRIC_HISTOGRAM")
    p = Pipeline(manual_sampler, span_attribute_allowlist=["http.route", A.ZONE])
    try:
        assert p.metrics._spans.table() is None  # noqa: SLF001
    finally:
        p.close()


def test_a_second_listener_or_every_span_turns_the_table_off():
    listeners = SpanListeners()
    table = Table({}, ("http.route",))
    listeners.add(lambda span, figures: None, local_roots_only=True, table=table)
    assert listeners.table is table
    other = lambda span, figures: None  # noqa: E731
    listeners.add(other, local_roots_only=True)
    assert listeners.table is None
    listeners.remove(other)
    assert listeners.table is table
    every = SpanListeners()
    every.add(lambda span, figures: None, local_roots_only=False, table=table)
    assert every.table is None
    with pytest.raises(ValueError, match="table"):
        every.add(lambda span, figures: None, table=({}, ()))


def test_threads_on_both_paths_lose_no_span(manual_sampler):
    """Eight threads, three routes; a third of the requests hand work to a pool (those end on
    the Python path, which makes no new cell but adds to the same ones as the C hooks): every
    span is in the sums, once."""
    p = Pipeline(manual_sampler)
    pool = ThreadPoolExecutor(2)
    barrier = threading.Barrier(8)

    def client(k):
        barrier.wait(10)
        for i in range(150):
            route = ("/a", "/b", "/c")[(i + k) % 3]
            with p.tracer.start_as_current_span(f"GET {route}", attributes={"http.route": route}):
                if i % 3 == 0:
                    pool.submit(burn, 300).result()
                else:
                    burn(300)

    try:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        expected = sums(p.exporter.get_finished_spans())
        assert sum(c for _, _, c in expected.values()) == 8 * 150
        assert_same(table_sums(p.metrics._spans), expected)  # noqa: SLF001
    finally:
        pool.shutdown()
        p.close()


@compiled
def test_cell_add_is_one_step_and_checks_the_cell():
    from otel_carbon import _speedups

    cell = [1.0, 2.0, 3, {"x": 1}]
    _speedups.cell_add(cell, 0.5, 0.25)
    assert cell[:3] == [1.5, 2.25, 4] and cell[3] == {"x": 1}
    for bad in ([1, 2.0, 3], [1.0, 2.0], (1.0, 2.0, 3), [1.0, 2.0, 3.0]):
        with pytest.raises(TypeError):
            _speedups.cell_add(bad, 1.0, 1.0)
    with pytest.raises(TypeError):
        _speedups.cell_add(cell, "x", 1.0)
    assert cell[:3] == [1.5, 2.25, 4]
