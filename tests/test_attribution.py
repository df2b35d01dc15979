"""The attribution function (otel_carbon/attribution.py) and its compiled mirror: random
ticks and spans priced by both give the same figures, to 1e-12 relative; a host with two
measured components (RAPL package + DRAM) takes the compiled span path and gets the same
figures as the Python one."""

from __future__ import annotations

import importlib
import math
import os
import random
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_carbon import CarbonSpanProcessor
from otel_carbon import attributes as A
from otel_carbon.attribution import Layout, attribute, gpu_share_j
from otel_carbon.intensity import Intensity
from otel_carbon.ledger import Tick
from otel_carbon.sensors.rapl import probe_rapl

from conftest import burn_cpu_s as burn, make_sampler
from powercap_tree import CounterDriver, build_intel_tree

COMPONENT_NAMES = (A.ENERGY_CPU, A.ENERGY_MEMORY, "carbon.energy.x", "carbon.energy.y")


def compiled():
    """The extension itself (whatever OTEL_CARBON_SPEEDUPS says: this compares the two)."""
    try:
        return importlib.import_module("otel_carbon._speedups")
    except ImportError as exc:
        raise AssertionError(f"otel_carbon._speedups was not built (no C compiler at install?): {exc}") from None


def random_tick(rng: random.Random, n: int) -> Tick:
    def value() -> float:
        return rng.choice([0.0, rng.uniform(0, 1e-3), rng.uniform(0, 50), rng.uniform(1, 1e6), 10 ** rng.uniform(-12, 9)])

    zeros = (0.0,) * n
    intensity = Intensity(g_per_kwh=rng.uniform(0, 1200), zone="TEST", pue=rng.uniform(1, 2), source="test")
    return Tick(
        rng.randrange(1, 1 << 62), zeros, zeros, zeros, 0.0, 0.0, 0.0, tuple(value() for _ in range(n)),
        value(), 0.0, 0.0, 0.0, value(), 0.0, intensity, rng.choice([A.MEASURED, A.ESTIMATED, A.MIXED]),
        wall_s_per_busy_s=value(),
    )  # fmt: skip


def close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)


def test_compiled_figures_equal_the_attribution_function():
    """Every layout: components in any order, with or without a GPU share, the idle share and
    embodied carbon."""
    speedups = compiled()
    rng = random.Random(20261203)
    for _ in range(5000):
        n = rng.randint(1, 4)
        tick = random_tick(rng, n)
        order = rng.sample(range(n), n)  # a layout may show components in any order
        gpu, idle = rng.random() < 0.3, rng.random() < 0.3
        embodied = rng.choice([0.0, 0.0, rng.uniform(0, 0.05), 10 ** rng.uniform(-9, 3)])
        layout = Layout(tuple((COMPONENT_NAMES[i], i) for i in order), gpu, idle, embodied)
        cpu_s = rng.choice([0.0, rng.uniform(0, 1e-4), rng.uniform(0, 2), rng.randrange(0, 1 << 40) / 1e9])
        gpu_j = rng.choice([0.0, rng.uniform(0, 1e-3), rng.uniform(0, 500)]) if gpu else 0.0
        stale = rng.random() < 0.1
        expected = attribute(cpu_s, tick, tick, layout, stale, gpu_j)
        energy, total_j, emissions_g, unavailable, idle_j, embodied_g = speedups.attribute(
            cpu_s, tick, tuple(order), stale, gpu_j if gpu else None, idle, embodied
        )
        where = f"n={n} order={order} gpu={gpu} idle={idle} embodied={embodied!r} cpu_s={cpu_s!r} tick={vars_of(tick)}"
        assert len(energy) == n, where
        assert all(close(a, b) for a, b in zip(energy, expected.energy_j)), where
        assert (idle_j is None) == (expected.idle_j is None) and (idle_j is None or close(idle_j, expected.idle_j)), where
        assert (embodied_g is None) == (expected.embodied_g is None), where
        assert embodied_g is None or close(embodied_g, expected.embodied_g), where
        assert close(total_j, expected.total_j), where
        assert close(emissions_g, expected.emissions_g), where
        assert (expected.method == A.UNAVAILABLE) == bool(unavailable), where


def vars_of(tick: Tick) -> dict:
    return {k: getattr(tick, k) for k in ("price_j_per_cpu_s", "idle_price_j_per_cpu_s", "gpu_per_span_w", "wall_s_per_busy_s")}


def test_cpu_time_without_a_price_is_unavailable_in_both():
    speedups = compiled()
    tick = random_tick(random.Random(1), 2)
    tick.price_j_per_cpu_s = (0.0, 0.0)
    layout = Layout(((A.ENERGY_CPU, 0), (A.ENERGY_MEMORY, 1)))
    assert attribute(0.01, tick, tick, layout).method == A.UNAVAILABLE
    assert speedups.attribute(0.01, tick, (0, 1), False)[3] == 1
    assert attribute(0.0, tick, tick, layout).method == tick.method  # nothing spent, nothing missing
    assert speedups.attribute(0.0, tick, (0, 1), False)[3] == 0


def test_gpu_share_of_a_span_inside_one_tick_is_bounded_by_its_wall_time():
    tick = random_tick(random.Random(2), 1)
    tick.gpu_per_span_w = 30.0
    assert gpu_share_j(tick, tick, since_tick_ns=2_000_000_000, wall_ns=500_000_000) == pytest.approx(15.0)
    assert gpu_share_j(tick, tick, since_tick_ns=100_000_000, wall_ns=500_000_000) == pytest.approx(3.0)


@pytest.fixture
def rapl_two_components(tmp_path):
    zones = build_intel_tree(tmp_path, sockets=1, dram=True)
    driver = CounterDriver({zones["package-0"]: 30.0, zones["package-0/dram"]: 6.0}).start()
    sensors, diagnostics = probe_rapl(str(tmp_path))
    assert sorted(s.component for s in sensors) == [A.CPU, A.MEMORY], diagnostics
    sampler = make_sampler(sensors, interval_s=0.05)
    yield sampler
    sampler.shutdown()
    driver.stop()


def test_a_cpu_and_dram_host_takes_the_compiled_path_with_the_same_figures(rapl_two_components):
    sampler = rapl_two_components
    exporter = InMemorySpanExporter()
    processor = CarbonSpanProcessor(sampler=sampler)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("rapl")
    burn(1.2)  # a trailing price for both components
    time.sleep(0.12)
    if os.environ.get("OTEL_CARBON_SPEEDUPS", "").strip().lower() != "off":
        assert processor._hooks is not None and processor._layout.compiled
    for i in range(30):
        with tracer.start_as_current_span(f"span-{i}"):
            burn(0.002)
    spans = exporter.get_finished_spans()
    assert len(spans) == 30
    for span in spans:
        a = span.attributes
        assert a[A.CPU_CLOCK] == "thread" and a[A.METHOD] == A.MEASURED, a
        assert a[A.ENERGY_CPU] > 0 and a[A.ENERGY_MEMORY] > 0
        # the memory counter draws a fifth of the package's power: so does each span
        assert a[A.ENERGY_MEMORY] / a[A.ENERGY_CPU] == pytest.approx(6.0 / 30.0, rel=0.15)
        assert a[A.ENERGY_TOTAL] == a[A.ENERGY_CPU] + a[A.ENERGY_MEMORY]
        assert a[A.EMISSIONS] == pytest.approx(a[A.ENERGY_TOTAL] * 100.0 / 3.6e6, rel=1e-12)
    provider.shutdown()


def test_a_gpu_idle_and_embodied_layout_takes_the_compiled_path_by_the_same_rules():
    """A host with a GPU, the idle policy on and an embodied rate: the compiled span path prices
    its spans too (any of the three used to send every span to Python), by the attribution
    function's rules: the idle share and embodied carbon are the span's CPU time at the tick's
    prices, the GPU share the tick's watts per open span over the span's wall time, the total
    their sum left to right."""
    try:
        from fake_nvml import FakeDevice, FakeNvml
    except ImportError:  # tests/ imported as a package
        from .fake_nvml import FakeDevice, FakeNvml
    import threading

    from otel_carbon.sensors.cpu_model import CpuModelSensor
    from otel_carbon.sensors.nvml import probe_nvml

    device = FakeDevice("volta", name="NVIDIA Fake H200", energy_mj=0)
    device.compute_pids.append(os.getpid())  # the only process on the board: all of it is ours
    (gpu,), diagnostics = probe_nvml(FakeNvml([device]))
    assert diagnostics == []
    stop = threading.Event()
    t0 = time.monotonic()

    def board() -> None:  # 150 W while the test runs
        while not stop.is_set():
            device.energy_mj = int((time.monotonic() - t0) * 150_000)
            time.sleep(0.002)

    threading.Thread(target=board, daemon=True).start()
    sampler = make_sampler([CpuModelSensor("ccf", 1.0, 5.0, n_vcpus=os.cpu_count() or 1), gpu], interval_s=0.2)
    exporter = InMemorySpanExporter()
    processor = CarbonSpanProcessor(sampler=sampler, idle_policy="cpu", embodied_g_per_hour=36.0)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("gpu")
    # open across every tick: each tick gives the GPU a price per open span (a tick with no
    # span open would give none, and the spans after it nothing to check)
    background = tracer.start_span("background")
    try:
        burn(0.5)
        time.sleep(0.3)
        if os.environ.get("OTEL_CARBON_SPEEDUPS", "").strip().lower() != "off":
            assert processor._hooks is not None and processor._layout.compiled
        checked = 0
        deadline = time.monotonic() + 20
        for i in range(2000):
            if checked >= 30 or time.monotonic() > deadline:
                break
            before = sampler.ledger.latest
            with tracer.start_as_current_span(f"span-{i}"):
                burn(0.002)
            tick = sampler.ledger.latest
            if tick is not before or tick.gpu_per_span_w <= 0:
                continue  # priced over a window: the Python path's case
            span = exporter.get_finished_spans()[-1]
            a = span.attributes
            cpu_s = a[A.CPU_TIME]
            assert a[A.ENERGY_IDLE] == pytest.approx(cpu_s * tick.idle_price_j_per_cpu_s, rel=1e-12)
            assert a[A.EMBODIED] == pytest.approx(cpu_s * tick.wall_s_per_busy_s * 36.0 / 3600.0, rel=1e-12)
            assert 0 < a[A.ENERGY_GPU] <= tick.gpu_per_span_w * (span.end_time - span.start_time) / 1e9 * (1 + 1e-9)
            assert a[A.ENERGY_TOTAL] == a[A.ENERGY_CPU] + a[A.ENERGY_GPU] + a[A.ENERGY_IDLE]
            assert a[A.EMISSIONS] == pytest.approx(a[A.ENERGY_TOTAL] * 100.0 / 3.6e6, rel=1e-12)
            checked += 1
        assert checked >= 30, checked
    finally:
        background.end()
        stop.set()
        provider.shutdown()
        sampler.shutdown()
