"""The sampler thread over a probe of real sensor objects (no patched sensors).

Sensors here are the package's own (ConstantPowerSensor, the NVML sensor over
``tests/fake_nvml.py``) or tiny classes defined below that raise, hang, return NaN or block.
The sampler's own CPU cost is not asserted here (the benchmarks do that).
"""

from __future__ import annotations

import os
import threading
import time
from typing import List, Optional

import pytest

from otel_carbon import host_cpu
from otel_carbon import sampler as sampler_mod
from otel_carbon import sensor_reading
from otel_carbon.attributes import CPU, ESTIMATED, MEASURED, MEMORY, MIXED, UNAVAILABLE
from otel_carbon.intensity import Intensity, StaticIntensitySource
from otel_carbon import process_sampler
from otel_carbon.process_sampler import set_sampler
from otel_carbon.sampler import STALE_TICKS, Sampler
from otel_carbon.sensors.base import HostSample, SensorInfo
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.nvml import probe_nvml
from otel_carbon.sensors.probe import Probe

if __package__:  # tests/ is a package (tests/__init__.py exists)
    from .conftest import fork_and_report, wait_for
    from .fake_nvml import FakeDevice, FakeNvml
    from .powercap_tree import build_intel_tree
else:  # rootdir-relative import mode: tests/ itself is on sys.path
    from conftest import fork_and_report, wait_for
    from fake_nvml import FakeDevice, FakeNvml
    from powercap_tree import build_intel_tree

INTENSITY = Intensity(g_per_kwh=123.0, zone="test", source="test")


pytestmark = pytest.mark.usefixtures("clean_carbon_env")


@pytest.fixture
def no_pair_drops(monkeypatch):
    """For tests that tick by hand and count reads: a busy shared machine must not make
    the pairing check read again (that check has its own tests)."""
    monkeypatch.setattr(sensor_reading, "MAX_PAIR_NS", 10**12)


class FakeClock:
    def __init__(self, start_ns: int = 10**12) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        self.now_ns += int(seconds * 1e9)


class ScriptedSensor:
    """A measured counter whose next value and behaviour the test sets."""

    def __init__(self, name: str = "scripted", component: str = CPU, method: str = MEASURED) -> None:
        self.name = name
        self.component = component
        self.method = method
        self.idle_power_w = 0.0
        self.value_j = 0.0
        self.error: Optional[BaseException] = None
        self.nan = False
        self.reads = 0
        self.hang = threading.Event()  # set: the next read blocks until `release` is set
        self.release = threading.Event()
        self.hanging = threading.Event()

    def read(self, sample: HostSample) -> float:
        self.reads += 1
        if self.hang.is_set():
            self.hanging.set()
            self.release.wait(30)
        if self.error is not None:
            raise self.error
        if self.nan:
            return float("nan")
        return self.value_j

    def info(self) -> SensorInfo:
        return SensorInfo(self.name, self.component, self.method, "test")

    def close(self) -> None:
        pass


def make_sampler(sensors, interval_s: float = 1.0, clock=None, span_open: bool = False) -> Sampler:
    """``span_open``: a span counter that always says one span is open, so the thread ticks
    at ``interval_s`` (a sampler with nothing to measure may back off)."""
    kwargs = {} if clock is None else {"clock_ns": clock}
    sampler = Sampler(Probe(sensors=list(sensors)), interval_s=interval_s, intensity=StaticIntensitySource(INTENSITY), **kwargs)
    if span_open:
        sampler.register_span_counter(lambda: 1)
    return sampler


# -- ticks ----------------------------------------------------------------------------------


def test_thread_appends_ticks_with_the_sensor_energy():
    power_w = 42.0
    sampler = make_sampler([ConstantPowerSensor(power_w=power_w)], interval_s=0.01, span_open=True)
    try:
        sampler.start()
        assert wait_for(lambda: len(sampler.ledger.ticks()) >= 6)
    finally:
        assert sampler.shutdown(timeout_s=5)
    ticks = sampler.ledger.ticks()
    assert all(b.t_ns > a.t_ns for a, b in zip(ticks, ticks[1:]))
    for a, b in zip(ticks, ticks[1:]):
        # the constant sensor integrates over the same t_ns the tick carries
        assert b.energy_j[0] - a.energy_j[0] == pytest.approx(power_w * (b.t_ns - a.t_ns) / 1e9, rel=1e-9)
        assert b.method == ESTIMATED
        assert b.busy_s >= a.busy_s and b.proc_cpu_s >= a.proc_cpu_s
    assert ticks[-1].intensity is INTENSITY
    assert sampler.ticks == len(ticks)


def test_first_tick_is_taken_by_start():
    sampler = make_sampler([ConstantPowerSensor(power_w=1.0)], interval_s=30)
    try:
        assert sampler.ledger.latest is None
        sampler.start()
        assert sampler.ledger.latest is not None  # a baseline before the thread's first wait
        thread = sampler._thread
        sampler.start()  # a second start neither ticks again nor starts a second thread
        assert sampler._thread is thread
        assert len(sampler.ledger.ticks()) == 1
    finally:
        sampler.shutdown()


def test_manual_ticks_follow_the_clock(no_pair_drops):
    clock = FakeClock()
    power_w = 7.5
    sampler = make_sampler([ConstantPowerSensor(power_w=power_w)], clock=clock)
    sampler.tick()
    for step_s in (0.1, 0.25, 2.0):
        clock.advance(step_s)
        tick = sampler.tick()
        assert tick is not None and tick.t_ns == clock.now_ns
    first, last = sampler.ledger.ticks()[0], sampler.ledger.latest
    assert last.energy_j[0] - first.energy_j[0] == pytest.approx(power_w * 2.35)


def test_two_methods_combine_to_mixed(no_pair_drops):
    measured = ScriptedSensor("dram", component=MEMORY)
    sampler = make_sampler([ConstantPowerSensor(power_w=3.0), measured], clock=FakeClock())
    assert sampler.tick().method == MIXED


# -- failures --------------------------------------------------------------------------------


def test_a_raising_sensor_marks_ticks_unavailable_and_the_thread_keeps_going():
    flaky = ScriptedSensor("flaky")
    sampler = make_sampler([flaky], interval_s=0.01, span_open=True)
    try:
        sampler.start()
        flaky.value_j = 5.0
        assert wait_for(lambda: sampler.ledger.latest.energy_j[0] == 5.0)
        flaky.error = OSError(19, "No such device")
        assert wait_for(lambda: sampler.ledger.latest.method == UNAVAILABLE)
        failed_at = sampler.ticks
        # the thread survives: more ticks arrive while the sensor keeps failing
        assert wait_for(lambda: sampler.ticks >= failed_at + 5)
        assert sampler.running and sampler._thread.is_alive()
        assert "No such device" in sampler.sensor_errors["flaky"]
        assert all(t.energy_j[0] == 5.0 for t in sampler.ledger.ticks()[-5:])  # held, not zeroed
        flaky.error = None
        flaky.value_j = 9.0
        assert wait_for(lambda: sampler.ledger.latest.method == MEASURED)
        assert wait_for(lambda: sampler.ledger.latest.energy_j[0] == 9.0)
        assert "flaky" not in sampler.sensor_errors
    finally:
        assert sampler.shutdown(timeout_s=5)


def test_a_failing_sensor_is_logged_once(caplog, no_pair_drops):
    flaky = ScriptedSensor("flaky")
    flaky.error = RuntimeError("boom")
    sampler = make_sampler([flaky], clock=FakeClock())
    with caplog.at_level("WARNING", logger="otel_carbon"):
        for _ in range(5):
            assert sampler.tick().method == UNAVAILABLE
    assert len([r for r in caplog.records if "flaky" in r.getMessage()]) == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_reading_is_unavailable(no_pair_drops, bad):
    sensor = ScriptedSensor("weird")
    clock = FakeClock()
    sampler = make_sampler([sensor], clock=clock)
    sensor.value_j = 2.0
    sampler.tick()
    sensor.value_j = bad
    clock.advance(0.1)
    tick = sampler.tick()
    assert tick.method == UNAVAILABLE
    assert tick.energy_j[0] == 2.0
    assert "weird" in sampler.sensor_errors


def test_a_hanging_sensor_stalls_the_ledger_which_then_reads_stale():
    interval_s = 0.01
    sensor = ScriptedSensor("hangs")
    sampler = make_sampler([sensor], interval_s=interval_s, span_open=True)
    try:
        sampler.start()
        assert wait_for(lambda: sampler.ticks >= 3)
        sensor.hang.set()
        assert sensor.hanging.wait(10)
        stuck = sampler.ledger.latest
        time.sleep(20 * interval_s)
        assert sampler.ledger.latest is stuck  # no tick while the read hangs
        assert sampler.shutdown(timeout_s=0.05) is False  # cannot join a thread stuck in a read
        # "stale" is at least STALE_TICKS intervals; an hour without a tick certainly is
        assert sampler.stale(stuck, stuck.t_ns + 3600 * 10**9)
        assert not sampler.stale(stuck, stuck.t_ns + int(STALE_TICKS * interval_s * 1e9) // 2)
        assert sampler.stale(None, time.monotonic_ns())
    finally:
        sensor.release.set()
    assert sampler.shutdown(timeout_s=5) is True


def test_stale_follows_the_interval_when_it_is_long():
    interval_s = 100.0
    sampler = make_sampler([ConstantPowerSensor(power_w=1.0)], interval_s=interval_s)
    tick = sampler.tick()
    limit_ns = int(STALE_TICKS * interval_s * 1e9)
    assert not sampler.stale(tick, tick.t_ns)
    assert not sampler.stale(tick, tick.t_ns + limit_ns - 1)
    assert sampler.stale(tick, tick.t_ns + limit_ns + 1)


def test_a_slow_pair_is_read_again():
    """Energy and CPU times read too far apart are read again; the retry's values are kept."""
    sensor = ScriptedSensor("slow")
    clock = FakeClock()
    sampler = make_sampler([sensor], clock=clock)
    assert sampler.tick() is not None  # the first reading is kept whatever it took
    slow_s = 3 * sensor_reading.MAX_PAIR_NS / 1e9
    calls = []

    def slow_once(sample):
        calls.append(sample.t_ns)
        if len(calls) == 1:
            time.sleep(slow_s)
            return 1.0
        return 2.0

    sensor.read = slow_once
    clock.advance(0.1)
    tick = sampler.tick()
    assert tick is not None and tick.energy_j[0] == 2.0  # the second, tight reading
    assert len(calls) == 2
    assert sampler.reading.dropped_pairs == 1 and sampler.reading.skewed_pairs == 0
    assert len(sampler.ledger.ticks()) == 2


def test_a_pair_that_is_always_slow_is_kept_and_counted():
    sensor = ScriptedSensor("always-slow")
    clock = FakeClock()
    sampler = make_sampler([sensor], clock=clock)
    sampler.tick()
    slow_s = 2 * sensor_reading.MAX_PAIR_NS / 1e9
    calls = []

    def slow(sample):
        calls.append(sample.t_ns)
        time.sleep(slow_s)
        return 3.0

    sensor.read = slow
    clock.advance(0.1)
    tick = sampler.tick()
    assert tick is not None and tick.energy_j[0] == 3.0  # not lost: cumulative totals
    assert len(calls) == sensor_reading.PAIR_ATTEMPTS
    assert sampler.reading.dropped_pairs == sensor_reading.PAIR_ATTEMPTS and sampler.reading.skewed_pairs == 1


def test_models_are_read_once_per_tick_however_slow(monkeypatch):
    """A model is computed from the tick's own /proc/stat reading: nothing to pair, so a slow
    tick is not read again (each retry would wait for the GIL again)."""
    from otel_carbon.sensors.cpu_model import CpuModelSensor

    monkeypatch.setattr(sensor_reading, "MAX_PAIR_NS", -1)  # every reading counts as too slow
    models = make_sampler([CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=4.0, n_vcpus=2), ConstantPowerSensor(power_w=2.0)])
    counter = make_sampler([ConstantPowerSensor(power_w=2.0), ScriptedSensor()])
    for sampler in (models, counter):
        assert sampler.tick() is not None and sampler.tick() is not None
    assert models.reading.dropped_pairs == 0 and models.reading.skewed_pairs == 0
    assert counter.reading.dropped_pairs == sensor_reading.PAIR_ATTEMPTS and counter.reading.skewed_pairs == 1


# -- lifecycle -------------------------------------------------------------------------------


def test_shutdown_is_idempotent_and_joins_in_time():
    sampler = make_sampler([ConstantPowerSensor(power_w=1.0)], interval_s=60)
    assert sampler.shutdown() is True  # before start: nothing to join
    sampler.start()
    assert sampler.running
    t0 = time.monotonic()
    assert sampler.shutdown(timeout_s=5) is True
    assert time.monotonic() - t0 < 2.0  # the 60 s wait is interrupted, not served
    assert not sampler.running and not sampler._thread.is_alive()
    assert sampler.shutdown(timeout_s=5) is True
    ticks = sampler.ticks
    time.sleep(0.05)
    assert sampler.ticks == ticks


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "0.1"])
def test_bad_interval_raises_naming_it(bad):
    with pytest.raises(ValueError, match="interval_s"):
        make_sampler([ConstantPowerSensor(power_w=1.0)], interval_s=bad)


def test_interval_is_capped_by_a_sensor_max_read_interval():
    class Wrapping(ScriptedSensor):
        def max_read_interval_s(self) -> float:
            return 0.02

    sampler = make_sampler([ConstantPowerSensor(power_w=1.0), Wrapping()], interval_s=1.0)
    assert sampler.interval_s == 0.02


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_SAMPLE_INTERVAL", "0.25")
    sampler = Sampler(Probe(sensors=[ConstantPowerSensor(power_w=1.0)]), intensity=StaticIntensitySource(INTENSITY))
    assert sampler.interval_s == 0.25


def _default_interval(sensors) -> float:
    return Sampler(Probe(sensors=list(sensors)), intensity=StaticIntensitySource(INTENSITY)).interval_s


def test_the_default_interval_follows_the_sensors(tmp_path):
    from otel_carbon.sensors.cpu_model import CpuModelSensor
    from otel_carbon.sensors.memory_model import memory_model_sensor
    from otel_carbon.sensors.rapl import probe_rapl

    ccf = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=4.0, n_vcpus=2)
    tdp = CpuModelSensor("tdp", tdp_w=100.0, n_vcpus=2)
    build_intel_tree(tmp_path, sockets=1, dram=True)
    rapl_sensors, _ = probe_rapl(str(tmp_path))
    assert rapl_sensors
    # models linear in CPU time: a CPU-second costs the same at any tick rate
    assert _default_interval([ccf, memory_model_sensor(8 * 10**9)]) == sensor_reading.LINEAR_INTERVAL_S
    assert _default_interval([ConstantPowerSensor(power_w=5.0)]) == sensor_reading.LINEAR_INTERVAL_S
    # a curve, a counter, a GPU or an unknown sensor need fresher prices; the shortest wins
    assert _default_interval([tdp, memory_model_sensor(8 * 10**9)]) == sensor_reading.CURVE_INTERVAL_S
    assert _default_interval(rapl_sensors) == sensor_reading.COUNTER_INTERVAL_S
    assert _default_interval([tdp, ScriptedSensor()]) == sensor_reading.COUNTER_INTERVAL_S
    gpus, _ = probe_nvml(nvml=FakeNvml([FakeDevice(kind="volta", energy_mj=5_000_000)]))
    assert gpus
    assert _default_interval([ccf, *gpus]) == sensor_reading.COUNTER_INTERVAL_S
    assert sensor_reading.COUNTER_INTERVAL_S < sensor_reading.CURVE_INTERVAL_S < sensor_reading.LINEAR_INTERVAL_S
    for sensor in rapl_sensors:
        sensor.close()


def test_the_environment_overrides_the_sensors_default(monkeypatch):
    from otel_carbon.sensors.cpu_model import CpuModelSensor

    monkeypatch.setenv("OTEL_CARBON_SAMPLE_INTERVAL", "0.5")
    assert _default_interval([CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=4.0, n_vcpus=2)]) == 0.5


def test_a_counters_wrap_period_caps_the_default():
    class Wrapping(ScriptedSensor):
        def max_read_interval_s(self) -> float:
            return 0.03

    assert _default_interval([ConstantPowerSensor(power_w=1.0), Wrapping()]) == 0.03


# -- fork ------------------------------------------------------------------------------------



@pytest.fixture
def global_sampler():
    created: List[Sampler] = []

    def install(sampler: Sampler) -> Sampler:
        created.append(sampler)
        old = set_sampler(sampler)
        assert old is None or old in created
        return sampler

    saved = set_sampler(None)
    try:
        yield install
    finally:
        set_sampler(saved)
        for sampler in created:
            sampler.shutdown(timeout_s=5)


def test_fork_child_gets_its_own_thread_and_a_fresh_ledger(global_sampler):
    sampler = global_sampler(make_sampler([ConstantPowerSensor(power_w=5.0)], interval_s=0.01, span_open=True))
    sampler.start()
    assert wait_for(lambda: sampler.ticks >= 5)
    parent_ledger = sampler.ledger
    parent_thread = sampler._thread
    fork_ns = time.monotonic_ns()

    def child():
        ledger = sampler.ledger
        first = ledger.ticks()[0]
        assert wait_for(lambda: len(sampler.ledger.ticks()) >= 5, timeout_s=5)
        return {
            "pid": os.getpid(),
            "sampler_pid": sampler.reading.pid,
            "fresh_ledger": ledger is not parent_ledger,
            "first_tick_ns": first.t_ns,
            "ticks": len(sampler.ledger.ticks()),
            "own_thread": sampler._thread is not parent_thread and sampler._thread.is_alive(),
            "running": sampler.running,
        }

    report = fork_and_report(child, timeout_s=10.0)
    assert report["pid"] != os.getpid()
    assert report["sampler_pid"] == report["pid"]
    assert report["fresh_ledger"] and report["own_thread"] and report["running"]
    assert report["first_tick_ns"] >= fork_ns  # nothing inherited from the parent's history
    assert report["ticks"] >= 5
    # the parent is untouched and keeps sampling
    assert sampler.ledger is parent_ledger and sampler._thread is parent_thread
    ticks = sampler.ticks
    assert wait_for(lambda: sampler.ticks > ticks)


def test_fork_while_a_sensor_read_is_in_progress_does_not_hang_the_child(global_sampler):
    """A sensor holds its own lock while it reads (the RAPL sensor does, across preads
    that release the GIL). A fork at that moment must not leave the child waiting forever
    on a lock whose owner thread does not exist there."""

    class LockedSlowSensor(ScriptedSensor):
        def __init__(self) -> None:
            super().__init__("locked-slow")
            self._lock = threading.Lock()
            self.in_read = threading.Event()

        def read(self, sample: HostSample) -> float:
            with self._lock:
                self.reads += 1
                if self.reads == 3:
                    self.in_read.set()
                    time.sleep(0.3)
                return float(self.reads)

    sensor = LockedSlowSensor()
    sampler = global_sampler(make_sampler([sensor], interval_s=0.01, span_open=True))
    sampler.start()
    assert sensor.in_read.wait(10)

    def child():
        assert wait_for(lambda: len(sampler.ledger.ticks()) >= 3, timeout_s=5)
        return {"ticks": len(sampler.ledger.ticks()), "running": sampler.running}

    report = fork_and_report(child, timeout_s=8)
    assert report["running"] and report["ticks"] >= 3


def test_fork_during_a_read_that_outlasts_the_wait_leaves_the_child_responsive(global_sampler, monkeypatch):
    """When the read in progress does not end within FORK_WAIT_S, fork goes ahead: the
    child's sampler thread may be stuck on the inherited lock (its ledger stays empty and
    spans read unavailable), but the child process itself carries on."""
    monkeypatch.setattr(sampler_mod, "FORK_WAIT_S", 0.05)
    release = threading.Event()

    class StuckSensor(ScriptedSensor):
        def __init__(self) -> None:
            super().__init__("stuck")
            self._lock = threading.Lock()
            self.in_read = threading.Event()

        def read(self, sample: HostSample) -> float:
            with self._lock:
                self.reads += 1
                if self.reads == 3:
                    self.in_read.set()
                    release.wait(30)
                return float(self.reads)

    sensor = StuckSensor()
    sampler = global_sampler(make_sampler([sensor], interval_s=0.01, span_open=True))
    sampler.start()
    try:
        assert sensor.in_read.wait(10)
        t0 = time.monotonic()

        def child():
            time.sleep(0.1)
            return {"latest": sampler.ledger.latest is not None, "thread": sampler._thread is not None}

        report = fork_and_report(child, timeout_s=8)
        assert time.monotonic() - t0 < 5
        assert report == {"latest": False, "thread": True}
    finally:
        release.set()
    ticks = sampler.ticks
    assert wait_for(lambda: sampler.ticks > ticks)  # the parent recovers when the read ends


# -- GPU -------------------------------------------------------------------------------------


def test_gpu_energy_of_the_process_is_split_among_open_spans(no_pair_drops):
    me, other = os.getpid(), os.getppid()
    device = FakeDevice(kind="volta", energy_mj=5_000_000)
    fake = FakeNvml([device])
    gpus, diagnostics = probe_nvml(nvml=fake)
    assert diagnostics == [] and len(gpus) == 1
    clock = FakeClock()
    sampler = make_sampler([ConstantPowerSensor(power_w=10.0), *gpus], clock=clock)
    open_spans = [0]
    counter = lambda: open_spans[0]  # noqa: E731
    sampler.register_span_counter(counter)
    t_us = [1_000_000]

    def step(energy_j: float, own_util: int, other_util: int, spans: int):
        t_us[0] += 100_000
        device.add_sample(me, t_us[0], own_util)
        if other_util:
            device.add_sample(other, t_us[0], other_util)
        device.energy_mj += int(energy_j * 1000)
        open_spans[0] = spans
        clock.advance(0.1)
        tick = sampler.tick()
        assert tick is not None
        return tick

    base = sampler.tick()  # baseline: the first GPU reading sets the origin
    assert base.gpu_proc_j == 0.0
    # 6 J on the device, this process did 60 of 90 % SM -> 4 J, three spans open
    t1 = step(6.0, own_util=60, other_util=30, spans=3)
    assert t1.gpu_proc_j == pytest.approx(6.0 * 60 / 90)
    assert t1.gpu_per_span_j == pytest.approx(6.0 * 60 / 90 / 3)
    assert t1.gpu_per_span_w == pytest.approx(6.0 * 60 / 90 / 3 / 0.1)
    assert t1.gpu_unattributed_j == 0.0
    assert t1.method == MIXED  # estimated constant + measured GPU
    # 3 J, all ours, no span open: nobody to give it to
    t2 = step(3.0, own_util=50, other_util=0, spans=0)
    assert t2.gpu_proc_j == pytest.approx(4.0 + 3.0)
    assert t2.gpu_per_span_j == pytest.approx(4.0 / 3)
    assert t2.gpu_unattributed_j == pytest.approx(3.0)
    # two processors' counters add up; an unregistered one stops counting
    second = lambda: 1  # noqa: E731
    sampler.register_span_counter(second)
    t3 = step(2.0, own_util=10, other_util=0, spans=1)
    assert t3.gpu_per_span_j == pytest.approx(4.0 / 3 + 2.0 / 2)
    sampler.unregister_span_counter(second)
    t4 = step(1.0, own_util=10, other_util=0, spans=1)
    assert t4.gpu_per_span_j == pytest.approx(4.0 / 3 + 1.0 + 1.0)
    window = sampler.ledger.window(base.t_ns, t4.t_ns)
    assert window.gpu_proc_j == pytest.approx(4.0 + 3.0 + 2.0 + 1.0)
    # a lost GPU: unavailable, its energy held
    device.lose()
    t5 = step(5.0, own_util=10, other_util=0, spans=1)
    assert t5.method == UNAVAILABLE
    assert t5.gpu_proc_j == pytest.approx(t4.gpu_proc_j)
    sampler.probe.close()
    assert fake.shutdown_calls == 1


def test_gpus_are_not_in_the_cpu_ledger():
    fake = FakeNvml([FakeDevice(kind="volta")])
    gpus, _ = probe_nvml(nvml=fake)
    sampler = make_sampler([ConstantPowerSensor(power_w=1.0), *gpus])
    assert sampler.gpus == gpus
    assert sampler.ledger.components == (CPU,)
    sampler.probe.close()


def test_proc_stat_first_line_is_parsed(tmp_path):
    stat = tmp_path / "stat"
    #           user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 20 30 400 50 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 5 1 2\n")
    reader = host_cpu.ProcStat(str(stat))
    hz = os.sysconf("SC_CLK_TCK")
    busy, total = reader.read()
    assert busy == (100 + 20 + 30 + 6 + 7) / hz
    assert total == (100 + 20 + 30 + 6 + 7 + 400 + 50 + 8) / hz  # guest time is inside user
    for garbage in ("intr 1 2 3\n", "cpu  1 2 3\n", "cpu  1 2 x 4 5 6 7 8\n", ""):
        stat.write_text(garbage)
        with pytest.raises(ValueError):
            reader.read()
    os.close(reader.fd)


# -- hosts without /proc or RAPL (macOS, Windows, locked-down containers) ----------------------


def test_without_proc_and_rapl_the_models_run_on_psutil(tmp_path):
    """/proc and the powercap tree pointed at empty directories: the probe falls back to the
    models, the sampler to psutil's CPU times, and spans still get estimated figures."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_carbon import CarbonSpanProcessor
    from otel_carbon import attributes as A
    from otel_carbon.sensors.probe import probe_sensors

    empty_proc, empty_powercap = tmp_path / "proc", tmp_path / "powercap"
    empty_proc.mkdir()
    empty_powercap.mkdir()
    probe = probe_sensors(powercap_root=str(empty_powercap), proc_root=str(empty_proc), gpus=False)
    assert {s.method for s in probe.sensors} == {ESTIMATED}
    assert host_cpu.open_proc_stat(str(empty_proc)) is None
    sampler = Sampler(probe, interval_s=0.05, intensity=StaticIntensitySource(INTENSITY), proc_root=str(empty_proc))
    assert sampler.reading._proc_stat is None  # noqa: SLF001 - the psutil path is the one under test
    first = sampler.tick()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CarbonSpanProcessor(sampler=sampler))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("work"):
        deadline = time.thread_time() + 0.05
        while time.thread_time() < deadline:
            pass
    last = sampler.tick()
    assert first is not None and last is not None and last.total_s > first.total_s > 0
    (span,) = exporter.get_finished_spans()
    assert span.attributes[A.METHOD] == ESTIMATED
    assert span.attributes[A.CPU_TIME] > 0.04 and span.attributes[A.ENERGY_TOTAL] > 0
    provider.shutdown()


def test_the_cpu_count_and_memory_size_are_psutil_s():
    import psutil

    assert host_cpu.logical_cpus() == (psutil.cpu_count(logical=True) or 1)
    assert host_cpu.total_memory_bytes() == psutil.virtual_memory().total


def test_psutil_and_proc_stat_agree_on_the_host_cpu_times():
    if host_cpu.open_proc_stat() is None:
        pytest.skip("no /proc/stat on this platform: only the psutil path exists")
    a = host_cpu.host_cpu_seconds(host_cpu.open_proc_stat())
    b = host_cpu.host_cpu_seconds(None)
    c = host_cpu.host_cpu_seconds(host_cpu.open_proc_stat())
    assert a[0] <= b[0] + 0.02 and b[0] <= c[0] + 0.02  # psutil rounds to 10 ms ticks too
    assert a[1] <= b[1] + 0.02 and b[1] <= c[1] + 0.02
    assert c[1] - a[1] < 5.0  # the same counters, read a moment apart


# -- the process-wide sampler ------------------------------------------------------------------


def test_callers_racing_for_the_process_sampler_get_one(global_sampler):
    made: List[Sampler] = []
    gate = threading.Barrier(8)

    def make() -> Sampler:
        sampler = make_sampler([ConstantPowerSensor(power_w=1.0)])
        made.append(sampler)
        return sampler

    results = []

    def caller() -> None:
        gate.wait(10)
        results.append(process_sampler.get_or_create_sampler(make))

    set_sampler(None)
    threads = [threading.Thread(target=caller) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for sampler in made:
        global_sampler(sampler)  # installed again (the same one) and shut down at the end
    assert len(made) == 1 and made[0].running
    assert {id(s) for s, _ in results} == {id(made[0])}
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    assert process_sampler.current_sampler() is made[0] and process_sampler.get_sampler() is made[0]


def test_a_failing_factory_installs_nothing(global_sampler):
    def make() -> Sampler:
        raise OSError("no sensors")

    set_sampler(None)
    with pytest.raises(OSError):
        process_sampler.get_or_create_sampler(make)
    assert process_sampler.current_sampler() is None


def test_a_companion_is_made_once_and_goes_away_with_its_sampler():
    """What lives exactly as long as a sampler (the tracking API's private processor): made
    once whatever the threads, never keeping the sampler alive."""
    import gc
    import weakref

    from otel_carbon.processor import CarbonSpanProcessor

    sampler = make_sampler([ConstantPowerSensor(power_w=5.0)])
    made = []

    def make():
        made.append(CarbonSpanProcessor(sampler=sampler))
        return made[-1]

    barrier = threading.Barrier(8)
    got = []

    def ask():
        barrier.wait(5)
        got.append(sampler.companion("test.processor", make))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and all(g is made[0] for g in got)
    assert sampler.companion("test.processor", make) is made[0] and len(made) == 1
    sampler_ref, processor_ref = weakref.ref(sampler), weakref.ref(made[0])
    del sampler, made, got, threads
    gc.collect()
    assert sampler_ref() is None and processor_ref() is None


def test_memory_in_use_is_read_from_meminfo_or_psutil(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       1000 kB\nMemFree:         300 kB\nMemAvailable:    600 kB\nBuffers: 10 kB\n")
    assert host_cpu.memory_in_use(str(meminfo)) == (40.0, 400 * 1024)
    meminfo.write_text("MemTotal:       1000 kB\nMemFree:         300 kB\nMemAvailable:   5000 kB\n")  # a container's
    assert host_cpu.memory_in_use(str(meminfo)) == (70.0, 700 * 1024)
    import psutil

    meminfo.write_text("MemTotal: 1000 kB\n")  # no MemAvailable: psutil's figures
    percent, used = host_cpu.memory_in_use(str(meminfo))
    vm = psutil.virtual_memory()
    assert abs(percent - vm.percent) < 5 and abs(used - (vm.total - vm.available)) < 0.05 * vm.total
    if os.path.exists("/proc/meminfo"):
        percent, used = host_cpu.memory_in_use()
        assert abs(percent - psutil.virtual_memory().percent) < 5
