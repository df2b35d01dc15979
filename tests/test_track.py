"""The tracking API: decorator (sync, async), tracker object, context manager; each a span."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_carbon import CarbonSpanProcessor, EmissionsTracker, track_emissions
from otel_carbon import attributes as A
from otel_carbon.intensity import resolve_intensity

from conftest import burn_cpu_s

PRICE_J_PER_CPU_S = 4.0  # the ccf_sampler fixture: max - min watts per vCPU
G_PER_KWH = 100.0  # make_sampler's intensity




@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def opts(sampler, provider, **kw):
    return dict(sampler=sampler, tracer_provider=provider, save_to_file=False, **kw)


def test_bare_decorator_process_scope(ccf_sampler, traced, monkeypatch):
    provider, exporter = traced
    monkeypatch.setenv("OTEL_CARBON_SAVE_TO_FILE", "false")

    @track_emissions
    def work(x):
        return x * 2

    # a bare decorator uses the global provider and sampler; it must work and return the value
    assert work(21) == 42
    assert work.last_result is not None and work.last_result.name.endswith("work")

    @track_emissions(**opts(ccf_sampler, provider))
    def job(seconds):
        return burn_cpu_s(seconds)

    p0 = time.process_time()
    used = job(0.05)
    process_used = time.process_time() - p0
    r = job.last_result
    assert r.scope == "process" and r.final
    assert used <= r.cpu_time_s <= process_used + 1e-3
    assert r.energy_j[A.CPU] == pytest.approx(r.cpu_time_s * PRICE_J_PER_CPU_S, rel=1e-6)
    assert r.energy_total_j == pytest.approx(sum(r.energy_j.values()))
    assert r.emissions_g == pytest.approx(r.energy_total_j * G_PER_KWH / 3.6e6)
    assert r.energy_kwh == pytest.approx(r.energy_total_j / 3.6e6)
    assert r.emissions_kg == pytest.approx(r.emissions_g / 1000) == float(r)
    assert f"{r:.3e}" == f"{r.emissions_kg:.3e}"
    assert r.zone == "TEST" and r.intensity_g_per_kwh == G_PER_KWH and r.method == A.ESTIMATED and r.estimated
    assert r.duration_s >= used
    (span,) = exporter.get_finished_spans()
    assert span.name.endswith("job")
    attrs = span.attributes
    assert attrs[A.RUN_SCOPE] == "process" and attrs[A.RUN_ID] == r.run_id
    assert uuid.UUID(r.run_id).version == 4 and str(uuid.UUID(r.run_id)) == r.run_id
    assert attrs[A.RUN_ENERGY_TOTAL] == pytest.approx(r.energy_total_j)
    assert attrs[A.RUN_CPU_TIME] == pytest.approx(r.cpu_time_s)
    # the span's own share (its thread) is there too, as on every span
    assert attrs[A.CPU_TIME] == pytest.approx(used, rel=0.1)
    assert attrs[A.ENERGY_CPU] == pytest.approx(attrs[A.CPU_TIME] * PRICE_J_PER_CPU_S, rel=1e-6)
    assert r.span_energy_j == pytest.approx(attrs[A.ENERGY_TOTAL])
    window = r.ledger_window()
    assert window is not None and window.duration_s == pytest.approx(r.duration_s, rel=0.05)


def test_span_scope_counts_only_the_span_work(ccf_sampler, traced):
    provider, exporter = traced
    import threading

    stop = threading.Event()

    def background():
        while not stop.is_set():
            burn_cpu_s(0.005)

    t = threading.Thread(target=background)
    t.start()
    try:
        with EmissionsTracker("spanned", scope="span", **opts(ccf_sampler, provider)) as tracker:
            used = burn_cpu_s(0.04)
    finally:
        stop.set()
        t.join()
    r = tracker.result
    assert r.scope == "span"
    assert r.cpu_time_s == pytest.approx(used, rel=0.1)  # not the background thread's
    assert r.energy_total_j == pytest.approx(used * PRICE_J_PER_CPU_S, rel=0.1)
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.ENERGY_TOTAL] == pytest.approx(r.energy_total_j)
    assert A.RUN_ENERGY_TOTAL not in span.attributes  # same as the span's own figures


@pytest.mark.parametrize("sdk", [True, False])
def test_async_decorator_concurrent_calls_each_pay_their_own(ccf_sampler, traced, sdk):
    """Also without an SDK provider, where every span is the same no-op object."""
    from opentelemetry.trace import NoOpTracerProvider

    provider, exporter = traced
    if not sdk:
        provider = NoOpTracerProvider()
    results = {}

    @track_emissions(scope="span", on_result=lambda r: results.setdefault(r.run_id, r), **opts(ccf_sampler, provider))
    async def handler(steps, step_s):
        for _ in range(steps):
            burn_cpu_s(step_s)
            await asyncio.sleep(0)
        return steps

    async def main():
        return await asyncio.gather(handler(4, 0.005), handler(4, 0.015))

    assert asyncio.run(main()) == [4, 4]
    by_cpu = sorted(results.values(), key=lambda r: r.cpu_time_s)
    assert len(by_cpu) == 2
    assert by_cpu[0].cpu_time_s == pytest.approx(0.02, rel=0.35)
    assert by_cpu[1].cpu_time_s == pytest.approx(0.06, rel=0.35)
    assert all(r.method == A.ESTIMATED for r in by_cpu)
    assert len(exporter.get_finished_spans()) == (2 if sdk else 0)


def test_tracker_is_reusable_and_flush_is_cumulative(ccf_sampler, traced):
    provider, exporter = traced
    tracker = EmissionsTracker("batch", scope="span", **opts(ccf_sampler, provider))
    assert tracker.stop() is None and tracker.flush() is None  # not running: no error
    tracker.start()
    first = burn_cpu_s(0.02)
    partial = tracker.flush()
    second = burn_cpu_s(0.03)
    final = tracker.stop()
    assert not partial.final and final.final and partial.run_id == final.run_id
    assert partial.cpu_time_s == pytest.approx(first, rel=0.15)
    assert final.cpu_time_s == pytest.approx(first + second, rel=0.15)
    assert final.energy_total_j == pytest.approx(final.cpu_time_s * PRICE_J_PER_CPU_S, rel=1e-6)
    tracker.start()
    again = tracker.stop()
    assert again.run_id != final.run_id
    assert tracker.final_emissions == again.emissions_kg
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    assert spans[0].attributes[A.CPU_TIME] == pytest.approx(final.cpu_time_s)


def test_context_manager_records_errors_and_still_measures(ccf_sampler, traced):
    provider, exporter = traced
    with pytest.raises(KeyError):
        with EmissionsTracker("failing", **opts(ccf_sampler, provider)) as tracker:
            burn_cpu_s(0.01)
            raise KeyError("boom")
    assert tracker.result is not None and tracker.result.cpu_time_s > 0
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in span.events)


def test_nested_spans_are_children_of_the_tracked_run(ccf_sampler, traced):
    provider, exporter = traced
    tracer = provider.get_tracer("t")

    @track_emissions(**opts(ccf_sampler, provider))
    def outer():
        with tracer.start_as_current_span("inner"):
            burn_cpu_s(0.005)

    outer()
    inner, run = exporter.get_finished_spans()
    assert inner.parent is not None and inner.parent.span_id == run.context.span_id


def test_machine_scope_is_the_ledger_window(ccf_sampler, traced):
    provider, _ = traced
    with EmissionsTracker("machine", scope="machine", **opts(ccf_sampler, provider)) as tracker:
        time.sleep(0.3)
    r = tracker.result
    window = r.ledger_window()
    assert r.energy_total_j == pytest.approx(sum(window.energy_j.values()), rel=1e-6)
    # the CCF line's static part: n_vcpus x 1 W for the whole run, at least
    assert r.energy_total_j >= 0.9 * (os.cpu_count() or 1) * 1.0 * r.duration_s


def test_codecarbon_arguments_are_accepted(ccf_sampler, traced):
    provider, exporter = traced
    fr = resolve_intensity({}, country="FRA")

    @track_emissions(offline=True, country_iso_code="FRA", measure_power_secs=1, log_level="error",
                     tracking_mode="process", **opts(ccf_sampler, provider))
    def f():
        burn_cpu_s(0.01)

    f()
    r = f.last_result
    assert r.zone == "FR" and r.intensity_g_per_kwh == fr.g_per_kwh
    assert r.emissions_g == pytest.approx(r.energy_total_j * fr.g_per_kwh * fr.pue / 3.6e6)
    # the span says the same place and price as the run (the sampler's own intensity is
    # another: make_sampler's G_PER_KWH)
    (span,) = exporter.get_finished_spans()
    attrs = span.attributes
    assert fr.g_per_kwh != G_PER_KWH
    assert attrs[A.ZONE] == "FR" and attrs[A.INTENSITY] == fr.g_per_kwh
    assert attrs[A.ENERGY_TOTAL] > 0
    assert attrs[A.EMISSIONS] == pytest.approx(attrs[A.ENERGY_TOTAL] * fr.g_per_kwh * fr.pue / 3.6e6, rel=1e-12)


def test_a_tracker_with_its_own_location_does_not_warn_about_none(tmp_path):
    """A fresh process whose only pricing is a tracker given a country: no "no location
    configured" warning (its figures are not the world average); without the country, the
    warning is there."""
    code = (
        "import sys\n"
        "from otel_carbon import track_emissions\n"
        "kw = {'country_iso_code': 'FRA'} if sys.argv[1] == 'own' else {}\n"
        "@track_emissions(save_to_file=False, **kw)\n"
        "def f():\n"
        "    return sum(range(1000))\n"
        "f()\n"
        "print(f.last_result.zone)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_CARBON_CPU_MODEL"] = "ccf"
    seen = {}
    for mode in ("own", "none"):
        out = subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        seen[mode] = (out.stdout.strip(), "no location configured" in out.stderr)
    assert seen == {"own": ("FR", False), "none": ("world", True)}


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"scope": "galaxy"}, "scope"),
        ({"country_iso_code": "ZZZ"}, "country_iso_code"),
        ({"region": "XX-NOWHERE"}, "region"),
        ({"cloud_provider": "aws"}, "cloud_provider"),
        ({"output_dir": "/nonexistent/dir"}, "output_dir"),
        ({"unknown_option": 1}, "unknown_option"),
        ({"on_csv_write": "update"}, "on_csv_write"),
        ({"tracking_mode": "galaxy"}, "tracking_mode"),
        ({"on_result": 3}, "on_result"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(kwargs, argument):
    with pytest.raises(ValueError, match=argument):
        EmissionsTracker("x", **kwargs)
    with pytest.raises(ValueError, match=argument):
        track_emissions(**kwargs)(lambda: None)


def test_a_broken_pipeline_never_breaks_the_function(ccf_sampler):
    class Broken:
        def get_tracer(self, *a, **k):
            raise RuntimeError("no tracer for you")

    @track_emissions(sampler=ccf_sampler, tracer_provider=Broken(), save_to_file=False)
    def f():
        return "value"

    assert f() == "value"
    assert f.last_result is None
    tracker = EmissionsTracker("x", sampler=ccf_sampler, tracer_provider=Broken(), save_to_file=False)
    tracker.start()
    assert tracker.stop() is None


def test_global_carbon_processor_and_tracker_agree(ccf_sampler):
    """With our processor on the provider too, the exported span has one consistent set."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CarbonSpanProcessor(sampler=ccf_sampler))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with EmissionsTracker("both", scope="span", **opts(ccf_sampler, provider)) as tracker:
        burn_cpu_s(0.03)
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.CPU_TIME] == pytest.approx(tracker.result.cpu_time_s, rel=0.05)
    provider.shutdown()


@pytest.mark.parametrize("route", ["drop-in", "wrapping"])
def test_a_global_processor_keeps_the_figures_of_a_tracker_with_its_own_location(ccf_sampler, route):
    """The tracker prices its span at its own location; our processor on the same provider
    keeps those figures instead of pricing the span again at the process's (make_sampler's
    G_PER_KWH), on both routes, compiled and pure Python; the meter's listener gets them."""
    fr = resolve_intensity({}, country="FRA")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    if route == "drop-in":
        processor = CarbonSpanProcessor(sampler=ccf_sampler)
        provider.add_span_processor(processor)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        processor = CarbonSpanProcessor(SimpleSpanProcessor(exporter), sampler=ccf_sampler)
        provider.add_span_processor(processor)
    heard = []
    processor.add_listener(lambda span, values: heard.append(dict(values)))
    with EmissionsTracker("located", scope="span", country_iso_code="FRA", **opts(ccf_sampler, provider)) as tracker:
        burn_cpu_s(0.03)
    with provider.get_tracer("t").start_as_current_span("plain"):
        burn_cpu_s(0.01)
    located, plain = sorted(exporter.get_finished_spans(), key=lambda s: s.name)
    attrs = located.attributes
    assert attrs[A.ZONE] == "FR" and attrs[A.INTENSITY] == fr.g_per_kwh
    assert attrs[A.CPU_TIME] == tracker.result.span_cpu_time_s
    assert attrs[A.ENERGY_TOTAL] == tracker.result.span_energy_j
    assert attrs[A.EMISSIONS] == pytest.approx(attrs[A.ENERGY_TOTAL] * fr.g_per_joule, rel=1e-12)
    assert heard[0][A.ZONE] == "FR" and heard[0][A.EMISSIONS] == attrs[A.EMISSIONS]
    # any other span is still the processor's, at the process's intensity
    assert plain.attributes[A.INTENSITY] == G_PER_KWH and plain.attributes[A.ENERGY_TOTAL] > 0
    provider.shutdown()


def test_without_any_sdk_the_figures_still_exist(tmp_path):
    """A fresh process with no tracer provider at all: the span is a no-op, the result is not."""
    code = (
        "import time\n"
        "from otel_carbon import track_emissions\n"
        "@track_emissions(save_to_file=False)\n"
        "def f():\n"
        "    t = time.thread_time()\n"
        "    while time.thread_time() - t < 0.05: pass\n"
        "f()\n"
        "r = f.last_result\n"
        "assert r.cpu_time_s >= 0.05 and r.energy_total_j > 0 and r.emissions_g > 0, r\n"
        "print('ok', r.method)\n"
    )
    env = dict(os.environ, OTEL_CARBON_CPU_MODEL="ccf")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok estimated")


def test_a_detached_run_is_a_child_of_its_parent_and_never_the_current_span(ccf_sampler, traced):
    from opentelemetry import trace

    from otel_carbon.track.api import start_detached_run

    provider, exporter = traced
    tracer = provider.get_tracer("t")
    outer = tracer.start_span("outer")
    stop = start_detached_run("program", trace.set_span_in_context(outer), **opts(ccf_sampler, provider))
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing was made current
    with tracer.start_as_current_span("request"):
        burn_cpu_s(0.02)
    first = stop()
    assert stop() is None  # once only
    outer.end()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    program, request = spans["program"], spans["request"]
    assert program.parent is not None and program.parent.span_id == outer.get_span_context().span_id
    assert request.parent is None  # the request keeps its own trace
    assert first is not None and first.scope == "process" and first.final
    assert program.attributes[A.RUN_ID] == first.run_id and first.cpu_time_s >= 0.02
