"""The compiled sampler tick (``_speedups.TickCore``) against the Python tick.

For the built-in model sensors the sampler ticks in C. The Python path (the sensors'
``read`` and ``Ledger.append_reading``) is the reference: fed the same host readings
through ``Sampler.tick(host=...)``, both must give the same tick, slot for slot and bit for
bit, the same sampler state, and the same calls to span counters and tick listeners.
These tests fail when the extension was not built (CI builds it; see test_speedups.py).
"""

from __future__ import annotations

import logging
import os
from typing import List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_carbon.cpu_clock import speedups
from otel_carbon.intensity import Intensity, StaticIntensitySource
from otel_carbon.ledger import Tick
from otel_carbon.sampler import Sampler
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.cpu_model import CpuModelSensor
from otel_carbon.sensors.memory_model import memory_model_sensor
from otel_carbon.sensors.probe import Probe

pytestmark = [
    pytest.mark.usefixtures("clean_carbon_env"),
    pytest.mark.skipif(
        os.environ.get("OTEL_CARBON_SPEEDUPS", "").strip().lower() == "off",
        reason="OTEL_CARBON_SPEEDUPS=off: no compiled tick to compare",
    ),
]

INTENSITY = Intensity(g_per_kwh=321.0, zone="test", source="test", pue=1.2)

CONFIGS = {
    "ccf+memory": lambda: [
        CpuModelSensor(curve="ccf", min_w_per_vcpu=0.74, max_w_per_vcpu=3.5, n_vcpus=4),
        memory_model_sensor(16 * 10**9),
    ],
    "tdp+memory": lambda: [CpuModelSensor(curve="tdp", tdp_w=125.0, n_vcpus=8), memory_model_sensor(8 * 10**9)],
    "constant": lambda: [ConstantPowerSensor(power_w=90.0, idle_power_w=30.0)],
}

# One step of the host: (ns since the last tick, busy CPU-s, all CPU-s, process CPU-s) added.
Step = Tuple[int, float, float, float]
STEPS = st.tuples(
    st.sampled_from([0, 1, 10**6, 10**8, 10**8 + 7, 2 * 10**9, 11 * 10**9]),
    st.floats(-0.5, 8.0, allow_nan=False),  # a /proc/stat stutter can step busy back
    st.floats(-0.5, 8.0, allow_nan=False),
    st.floats(-0.01, 2.0, allow_nan=False),
)


class Counter:
    """A span counter whose answer the test scripts (and which may fail)."""

    def __init__(self) -> None:
        self.values: List[object] = []
        self.calls = 0

    def __call__(self) -> int:
        value = self.values[self.calls % len(self.values)] if self.values else 0
        self.calls += 1
        if isinstance(value, BaseException):
            raise value
        return value  # type: ignore[return-value]


def make(config: str, compiled: bool, counter: Counter, seen: List[Tick]) -> Sampler:
    sampler = Sampler(Probe(sensors=CONFIGS[config]()), interval_s=0.1, intensity=StaticIntensitySource(INTENSITY))
    assert sampler._core is not None, "the compiled tick applies to the model sensors"  # noqa: SLF001
    if not compiled:
        sampler._core = None  # noqa: SLF001 - the Python reference
    sampler.register_span_counter(counter)
    sampler.add_tick_listener(seen.append)
    return sampler


def slots(tick: Optional[Tick]) -> Optional[dict]:
    if tick is None:
        return None
    return {name: getattr(tick, name) for name in Tick.__slots__}


def run_both(config: str, steps: List[Step], counts: List[object]) -> None:
    results = []
    for compiled in (True, False):
        counter = Counter()
        counter.values = list(counts)
        seen: List[Tick] = []
        sampler = make(config, compiled, counter, seen)
        t_ns, busy_s, total_s, proc_s = 5 * 10**12, 1000.0, 4000.0, 3.0
        ticks = [slots(sampler.tick(host=(t_ns, busy_s, total_s, proc_s)))]
        quiet = [sampler._quiet]  # noqa: SLF001
        for d_ns, d_busy, d_total, d_proc in steps:
            t_ns, busy_s, total_s, proc_s = t_ns + d_ns, busy_s + d_busy, total_s + d_total, proc_s + d_proc
            ticks.append(slots(sampler.tick(host=(t_ns, busy_s, total_s, proc_s))))
            quiet.append(sampler._quiet)  # noqa: SLF001
        results.append(
            {
                "ticks": ticks,
                "quiet": quiet,
                "count": sampler.ticks,
                "listener": [slots(t) for t in seen],
                "ring": [slots(t) for t in sampler.ledger.ticks()],
                "latest": slots(sampler.ledger.latest),
                "counter_calls": counter.calls,
            }
        )
    compiled, python = results
    assert compiled["ticks"][0] is not None
    for i, (a, b) in enumerate(zip(compiled["ticks"], python["ticks"])):
        assert a == b, f"tick {i} differs:\n{a}\n{b}"
    assert compiled == python


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_compiled_tick_equals_python_tick(config: str) -> None:
    steps = [
        (10**8, 0.05, 0.4, 0.02),
        (10**8, 0.3, 0.4, 0.1),
        (0, 0.0, 0.0, 0.0),  # the clock did not move: no energy
        (10**8, -0.2, 0.4, 0.0),  # busy stepped back
        (11 * 10**9, 0.0, 44.0, 0.0),  # a long quiet gap: the price window resets
        (10**8, 0.2, 0.4, 0.05),
    ] + [(10**8, 0.1 * (i % 4), 0.4, 0.01 * i) for i in range(30)]
    steps += [(10**8, 0.0, 0.4, 0.0)] * 105  # an idle host: the window stops at its 10 s cap
    steps += [(10**8, 0.0002, 0.4, 0.0)] * 20
    run_both(config, steps, [1, 0, 2, 3, 0])


@pytest.mark.parametrize("config", sorted(CONFIGS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEPS, max_size=40), counts=st.lists(st.sampled_from([0, 1, 5, 2.7, "x", ValueError()]), max_size=5))
def test_compiled_tick_equals_python_tick_for_any_readings(config: str, steps: List[Step], counts: List[object]) -> None:
    run_both(config, steps, counts)


def test_the_real_tick_is_compiled_for_model_sensors_only() -> None:
    assert speedups is not None and hasattr(speedups, "TickCore"), "the compiled part was not built"
    sampler = Sampler(Probe(sensors=CONFIGS["ccf+memory"]()), interval_s=0.1)
    assert sampler._core is not None  # noqa: SLF001
    first, second = sampler.tick(), None
    while second is None or second.t_ns == first.t_ns:
        second = sampler.tick()
    assert second.seq == first.seq + 1 and sampler.ticks == 2
    assert second.energy_j[0] > first.energy_j[0] > -1  # the ccf model's static part at least
    assert second.g_per_j == second.intensity.g_per_joule
    assert sampler.ledger.latest is second and sampler.ledger.ticks() == [first, second]
    # Anything else ticks in Python: a sensor of another kind, a GPU, an injected clock.
    mixed = Probe(sensors=[*CONFIGS["constant"](), _OtherSensor()])
    assert Sampler(mixed, interval_s=0.1)._core is None  # noqa: SLF001
    assert Sampler(Probe(sensors=CONFIGS["constant"]()), interval_s=0.1, clock_ns=lambda: 1)._core is None  # noqa: SLF001


def test_speedups_off_ticks_in_python(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess
    import sys

    code = (
        "from otel_carbon.sampler import Sampler; from otel_carbon.sensors.probe import probe_sensors; "
        "s = Sampler(probe_sensors(), interval_s=0.1); print(s._core is None, s.tick() is not None)"
    )
    env = {**os.environ, "OTEL_CARBON_SPEEDUPS": "off", "OTEL_CARBON_COUNTRY": "FR"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "True"], out.stderr


def test_a_failing_tick_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def current(self) -> Intensity:
            raise RuntimeError("intensity down")

        def shutdown(self, timeout_s: float = 0.0) -> bool:
            return True

    sampler = Sampler(Probe(sensors=CONFIGS["constant"]()), interval_s=0.1, intensity=Down())  # type: ignore[arg-type]
    assert sampler._core is not None  # noqa: SLF001
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        assert sampler.tick() is None
    assert sampler.ticks == 0 and sampler.ledger.latest is None
    assert "intensity down" in caplog.text
    # A ledger whose latest entry is not a Tick is refused, not read.
    sampler._intensity = StaticIntensitySource(INTENSITY)  # noqa: SLF001
    sampler.ledger.latest = object()  # type: ignore[assignment]
    assert sampler.tick() is None


@pytest.mark.parametrize("broken", ["closed", "not /proc/stat"])
def test_an_unreadable_proc_stat_fd_falls_back_to_psutil(tmp_path, monkeypatch: pytest.MonkeyPatch, broken: str) -> None:
    # e.g. a daemonising fork that closed every fd: the kept /proc/stat fd is gone
    from otel_carbon import sampler as sampler_mod

    stand_in = tmp_path / "stat"
    stand_in.write_text("intr 1 2 3\n")
    proc_stat = sampler_mod._ProcStat(str(stand_in))
    if broken == "closed":
        os.close(proc_stat.fd)
    monkeypatch.setattr(sampler_mod, "_proc_stat", proc_stat)
    sampler = Sampler(Probe(sensors=CONFIGS["ccf+memory"]()), interval_s=0.1)
    assert sampler._core is not None  # noqa: SLF001
    first = sampler.tick()
    second = sampler.tick()
    assert first is not None and second is not None and sampler.ticks == 2
    assert second.busy_s >= first.busy_s > 0 and second.total_s > first.total_s * 0.99  # real host figures
    assert second.t_ns > first.t_ns and second.energy_j[0] > 0


def test_a_failing_listener_is_reported_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    sampler = Sampler(Probe(sensors=CONFIGS["constant"]()), interval_s=0.1)
    seen: List[Tick] = []

    def broken(tick: Tick) -> None:
        raise KeyError("listener bug")

    sampler.add_tick_listener(broken)
    sampler.add_tick_listener(seen.append)
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        tick = sampler.tick()
    assert tick is not None and seen == [tick]
    assert "listener bug" in caplog.text


class _OtherSensor:
    name = "other"
    component = "memory"
    method = "measured"
    idle_power_w = 0.0

    def read(self, sample: object) -> float:
        return 1.0

    def info(self) -> object:
        return None

    def close(self) -> None:
        pass
