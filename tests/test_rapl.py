"""RAPL through real powercap trees built under tmp_path (``tests/powercap_tree.py``).

Every case goes through the injectable root (``probe_rapl(root)``,
``probe_sensors(powercap_root=...)`` or ``OTEL_CARBON_POWERCAP_ROOT``); ``open`` is never
patched. Expected energies come from the counter values the test writes.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from pathlib import Path

import pytest

from otel_carbon import config
from otel_carbon.attributes import CPU, ESTIMATED, MEASURED, MEMORY, UNAVAILABLE
from otel_carbon.intensity import Intensity, StaticIntensitySource
from otel_carbon.sampler import Sampler
from otel_carbon.sensors import rapl
from otel_carbon.sensors.base import HostSample, SensorError
from otel_carbon.sensors.cpu_model import CpuModelSensor
from otel_carbon.sensors.probe import Probe, probe_sensors
from otel_carbon.sensors.rapl import MAX_ZONE_POWER_W, RaplSensor, probe_rapl

if __package__:  # tests/ is a package (tests/__init__.py exists)
    from .powercap_tree import CounterDriver, build_amd_tree, build_intel_tree
else:  # rootdir-relative import mode: tests/ itself is on sys.path
    from powercap_tree import CounterDriver, build_amd_tree, build_intel_tree

INTENSITY = StaticIntensitySource(Intensity(g_per_kwh=100.0, zone="test"))


pytestmark = pytest.mark.usefixtures("clean_carbon_env")


@pytest.fixture
def proc_root(tmp_path):
    """A /proc with a CPU that is not in the TDP table, on a VM: the model is ccf."""
    root = tmp_path / "proc"
    root.mkdir()
    (root / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Test CPU 0000\nflags\t\t: fpu hypervisor\n\n")
    return str(root)


def sample(t_s: float) -> HostSample:
    return HostSample(t_ns=int(t_s * 1e9), busy_s=0.0, total_s=0.0, n_cpus=1)


def by_component(sensors):
    out = {s.component: s for s in sensors}
    assert len(out) == len(sensors)
    return out


def close_all(sensors):
    for sensor in sensors:
        sensor.close()


def advance(zones, key, joules):
    zones[key].write_uj(zones[key].read_uj() + int(round(joules * 1e6)))


# -- what is summed -------------------------------------------------------------------------


def test_intel_two_sockets_cpu_is_the_packages_memory_is_the_drams(tmp_path):
    zones = build_intel_tree(tmp_path / "powercap", sockets=2, dram=True, psys=True)
    sensors, diagnostics = probe_rapl(str(tmp_path / "powercap"))
    try:
        assert diagnostics == []
        found = by_component(sensors)
        assert set(found) == {CPU, MEMORY}
        cpu, memory = found[CPU], found[MEMORY]
        assert sorted(z.path for z in cpu.zones) == sorted(str(zones[k].path) for k in ("package-0", "package-1"))
        assert sorted(z.path for z in memory.zones) == sorted(
            str(zones[k].path) for k in ("package-0/dram", "package-1/dram")
        )
        assert cpu.method == MEASURED and memory.method == MEASURED
        assert cpu.read(sample(0)) == 0.0 and memory.read(sample(0)) == 0.0  # first read: origin
        written = {
            "package-0": 11.5,
            "package-1": 7.25,
            "package-0/dram": 3.0,
            "package-1/dram": 2.125,
            # parts of the package, and the whole platform: never added
            "package-0/core": 9.0,
            "package-1/core": 4.0,
            "package-0/uncore": 1.5,
            "package-1/uncore": 0.75,
            "psys": 200.0,
        }
        for key, joules in written.items():
            advance(zones, key, joules)
        assert cpu.read(sample(1)) == pytest.approx(written["package-0"] + written["package-1"], abs=1e-9)
        assert memory.read(sample(1)) == pytest.approx(written["package-0/dram"] + written["package-1/dram"], abs=1e-9)
        # cumulative: a second step adds to the first
        advance(zones, "package-1", 0.5)
        assert cpu.read(sample(2)) == pytest.approx(11.5 + 7.25 + 0.5, abs=1e-9)
        info = cpu.info()
        assert info.source == "rapl" and info.details["names"] == ["package-0", "package-1"]
    finally:
        close_all(sensors)


def test_subzones_are_counted_once_despite_the_top_level_links(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=1, dram=True)
    assert (root / "intel-rapl:0:2").is_symlink()  # like real sysfs
    sensors, _ = probe_rapl(str(root))
    try:
        memory = by_component(sensors)[MEMORY]
        assert [z.path for z in memory.zones] == [str(zones["package-0/dram"].path)]
        memory.read(sample(0))
        advance(zones, "package-0/dram", 2.0)
        assert memory.read(sample(1)) == pytest.approx(2.0)
    finally:
        close_all(sensors)


def test_amd_package_mirrored_on_every_die_is_counted_once(tmp_path):
    zones = build_amd_tree(tmp_path / "powercap", dies=4)
    sensors, diagnostics = probe_rapl(str(tmp_path / "powercap"))
    try:
        assert diagnostics == []
        found = by_component(sensors)
        assert set(found) == {CPU}  # AMD has no dram zone
        cpu = found[CPU]
        assert len(cpu.zones) == 1
        cpu.read(sample(0))
        value = zones["die-0"].read_uj() + 8_000_000
        for die in range(4):  # one counter seen through every die
            zones[f"die-{die}"].write_uj(value)
            advance(zones, f"die-{die}/core", 5.0)
        assert cpu.read(sample(1)) == pytest.approx(8.0)
    finally:
        close_all(sensors)


def test_mirrored_package_read_a_moment_apart_is_still_counted_once(tmp_path):
    """The counter advances between the reads of two dies at probe time: the values differ
    a little, the name is the same."""
    root = tmp_path / "powercap"
    zones = build_amd_tree(root, dies=2)
    zones["die-1"].write_uj(zones["die-0"].read_uj() + 15)
    sensors, _ = probe_rapl(str(root))
    try:
        cpu = by_component(sensors)[CPU]
        assert len(cpu.zones) == 1
        cpu.read(sample(0))
        for die in range(2):
            advance(zones, f"die-{die}", 6.0)
        assert cpu.read(sample(1)) == pytest.approx(6.0)
    finally:
        close_all(sensors)


def test_package_zones_moving_in_lockstep_under_different_names_are_counted_once(tmp_path):
    root = tmp_path / "powercap"
    zones = build_amd_tree(root, dies=2)
    (zones["die-1"].path / "name").write_text("package-1\n")
    sensors, _ = probe_rapl(str(root))
    try:
        cpu = by_component(sensors)[CPU]
        assert len(cpu.zones) == 1
    finally:
        close_all(sensors)


def test_a_driven_amd_tree_measures_the_package_once(tmp_path):
    zones = build_amd_tree(tmp_path / "powercap", dies=2)
    sensors, _ = probe_rapl(str(tmp_path / "powercap"))
    try:
        cpu = by_component(sensors)[CPU]
        watts = 30.0
        with CounterDriver({zones["die-0"]: watts}, mirror=[[zones["die-0"], zones["die-1"]]]) as driver:
            t0 = time.monotonic_ns()
            cpu.read(HostSample(t0, 0.0, 0.0, 1))
            time.sleep(0.3)
            t1 = time.monotonic_ns()
            energy_j = cpu.read(HostSample(t1, 0.0, 0.0, 1))
        assert driver.t0_ns is not None
        assert energy_j / ((t1 - t0) / 1e9) == pytest.approx(watts, rel=0.15)  # not 2x
    finally:
        close_all(sensors)


# -- wraparound and resets ------------------------------------------------------------------


def test_wrap_between_two_reads(tmp_path):
    max_range_uj = 262143328850
    zones = build_intel_tree(tmp_path / "powercap", sockets=1, dram=False, max_range_uj=max_range_uj)
    sensors, _ = probe_rapl(str(tmp_path / "powercap"))
    try:
        cpu = by_component(sensors)[CPU]
        before_uj = max_range_uj - 1_500_000
        after_uj = 2_250_000
        zones["package-0"].write_uj(before_uj)
        cpu.read(sample(10))
        zones["package-0"].write_uj(after_uj)
        energy_j = cpu.read(sample(11))
        assert energy_j == pytest.approx((max_range_uj - before_uj + after_uj) / 1e6)
        assert cpu.zones[0].resets == 0
        # and it keeps counting forward from there
        zones["package-0"].write_uj(after_uj + 4_000_000)
        assert cpu.read(sample(12)) == pytest.approx(energy_j + 4.0)
    finally:
        close_all(sensors)


def test_backwards_counter_without_a_plausible_wrap_is_a_reset(tmp_path, caplog):
    max_range_uj = 262143328850
    zones = build_intel_tree(tmp_path / "powercap", sockets=1, dram=False, max_range_uj=max_range_uj)
    zone_path = str(zones["package-0"].path)
    sensors, _ = probe_rapl(str(tmp_path / "powercap"))
    try:
        cpu = by_component(sensors)[CPU]
        budget_j = MAX_ZONE_POWER_W * 1.0  # what one zone can draw in the 1 s between reads
        zones["package-0"].write_uj(int(0.8 * max_range_uj))
        cpu.read(sample(0))
        # 100 J after a reset: a wrap would mean 0.2 * range + 100 J in 1 s (~52 kJ: no)
        small_uj = int(0.1 * budget_j * 1e6)
        zones["package-0"].write_uj(small_uj)
        with caplog.at_level("WARNING", logger="otel_carbon"):
            energy_j = cpu.read(sample(1))
        assert energy_j == pytest.approx(small_uj / 1e6)  # the energy since the reset
        assert cpu.zones[0].resets == 1
        assert any(zone_path in r.getMessage() and "reset" in r.getMessage() for r in caplog.records)
        # counting goes on from the new value
        zones["package-0"].write_uj(small_uj + 2_000_000)
        assert cpu.read(sample(2)) == pytest.approx(energy_j + 2.0)
        assert cpu.info().details["resets"] == 1
    finally:
        close_all(sensors)


def test_reset_to_a_large_value_neither_goes_negative_nor_jumps(tmp_path):
    max_range_uj = 262143328850
    zones = build_intel_tree(tmp_path / "powercap", sockets=1, dram=False, max_range_uj=max_range_uj)
    sensors, _ = probe_rapl(str(tmp_path / "powercap"))
    try:
        cpu = by_component(sensors)[CPU]
        zones["package-0"].write_uj(int(0.9 * max_range_uj))
        cpu.read(sample(0))
        zones["package-0"].write_uj(int(0.9 * max_range_uj) + 5_000_000)
        e1 = cpu.read(sample(1))
        assert e1 == pytest.approx(5.0)
        zones["package-0"].write_uj(int(0.4 * max_range_uj))  # went back by ~131 kJ in 1 s
        e2 = cpu.read(sample(2))
        assert e2 == pytest.approx(e1)  # neither negative nor a wrap's worth of joules
    finally:
        close_all(sensors)


def test_max_read_interval_is_half_the_shortest_wrap_at_the_highest_power(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=True, max_range_uj=262143328850)
    short_uj = 65712999613
    (zones["package-1"].path / "max_energy_range_uj").write_text(f"{short_uj}\n")
    sensors, _ = probe_rapl(str(root))
    try:
        found = by_component(sensors)
        expected_s = short_uj / 1e6 / MAX_ZONE_POWER_W / 2
        assert found[CPU].max_read_interval_s() == pytest.approx(expected_s)
        assert found[MEMORY].max_read_interval_s() == pytest.approx(262143328850 / 1e6 / MAX_ZONE_POWER_W / 2)
        assert found[CPU].info().details["max_read_interval_s"] == pytest.approx(expected_s, abs=0.05)
        # the sampler never waits longer than that between reads
        sampler = Sampler(Probe(sensors=list(sensors)), interval_s=3600.0, intensity=INTENSITY)
        assert sampler.interval_s == pytest.approx(expected_s)
    finally:
        close_all(sensors)


# -- failures ---------------------------------------------------------------------------------


def _poison_fd(fd: int, directory: Path) -> None:
    """Make reads on a kept-open descriptor fail, as kernfs does once a zone is removed
    (reads then return ENODEV). A regular file keeps its data after unlink, so the zone's
    descriptor is replaced (dup2) by one on a directory, which pread refuses (EISDIR)."""
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.dup2(dir_fd, fd)
    finally:
        os.close(dir_fd)


def _remove_zone(root: Path, zone_dir: Path) -> None:
    for entry in root.iterdir():  # the top-level links into the zone go too
        if entry.is_symlink() and entry.name.startswith(zone_dir.name + ":"):
            entry.unlink()
    shutil.rmtree(zone_dir)


def test_a_zone_that_disappears_raises_sensor_error(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=False)
    sensors, _ = probe_rapl(str(root))
    try:
        cpu = by_component(sensors)[CPU]
        cpu.read(sample(0))
        gone = next(z for z in cpu.zones if z.path == str(zones["package-1"].path))
        _remove_zone(root, zones["package-1"].path)
        _poison_fd(gone.fd, tmp_path)
        with pytest.raises(SensorError, match="intel-rapl:1"):
            cpu.read(sample(1))
    finally:
        close_all(sensors)


def test_a_zone_with_garbage_mid_run_raises_sensor_error(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=1, dram=False)
    sensors, _ = probe_rapl(str(root))
    try:
        cpu = by_component(sensors)[CPU]
        cpu.read(sample(0))
        fd = os.open(zones["package-0"].energy_path, os.O_WRONLY | os.O_TRUNC)
        os.close(fd)  # an empty file
        with pytest.raises(SensorError, match="not a number"):
            cpu.read(sample(1))
        zones["package-0"].write_uj(123)
        (zones["package-0"].energy_path).write_text("ERROR\n")
        with pytest.raises(SensorError, match="not a number"):
            cpu.read(sample(2))
    finally:
        close_all(sensors)


def test_sampler_marks_a_vanished_zone_unavailable_and_keeps_sampling(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=1, dram=True)
    sensors, _ = probe_rapl(str(root))
    sampler = Sampler(Probe(sensors=list(sensors)), interval_s=0.01, intensity=INTENSITY)
    sampler.register_span_counter(lambda: 1)  # a span is open: tick at the interval
    try:
        sampler.start()
        assert _wait(lambda: sampler.ticks >= 3)
        assert sampler.ledger.latest.method == MEASURED
        memory = by_component(sensors)[MEMORY]
        _remove_zone(root, zones["package-0/dram"].path)
        _poison_fd(memory.zones[0].fd, tmp_path)
        assert _wait(lambda: sampler.ledger.latest.method == UNAVAILABLE)
        failed_at = sampler.ticks
        assert _wait(lambda: sampler.ticks >= failed_at + 5)
        assert sampler.running
        assert "rapl-memory" in sampler.sensor_errors
        # the CPU zone is still read
        advance(zones, "package-0", 3.0)
        cpu_index = sampler.ledger.components.index(CPU)
        start = sampler.ledger.latest.energy_j[cpu_index]
        assert _wait(lambda: sampler.ledger.latest.energy_j[cpu_index] - start >= 3.0 - 1e-9)
    finally:
        assert sampler.shutdown(timeout_s=5)
        close_all(sensors)


def _wait(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.mark.parametrize(
    "key, filename, content",
    [
        ("package-1", "energy_uj", "not-a-number\n"),
        ("package-1", "energy_uj", ""),
        ("package-0/dram", "max_energy_range_uj", "n/a\n"),
        ("package-1", "max_energy_range_uj", "\n"),
    ],
)
def test_garbage_in_a_powercap_file_skips_that_zone_with_a_diagnostic(tmp_path, key, filename, content):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=True)
    (zones[key].path / filename).write_text(content)
    sensors, diagnostics = probe_rapl(str(root))
    try:
        expected_path = zones[key].path / "energy_uj" if filename == "energy_uj" else zones[key].path
        assert [d.path for d in diagnostics] == [str(expected_path)]
        assert diagnostics[0].fix
        kept = {z.path for s in sensors for z in s.zones}
        assert str(zones[key].path) not in kept
        expected = {str(zones[k].path) for k in ("package-0", "package-1", "package-0/dram", "package-1/dram")}
        assert kept == expected - {str(zones[key].path)}
    finally:
        close_all(sensors)


def test_a_missing_name_file_skips_the_zone(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=False)
    (zones["package-0"].path / "name").unlink()
    sensors, diagnostics = probe_rapl(str(root))
    try:
        assert [d.path for d in diagnostics] == [str(zones["package-0"].path)]
        assert [z.path for z in by_component(sensors)[CPU].zones] == [str(zones["package-1"].path)]
    finally:
        close_all(sensors)


# -- permissions (at the opener seam) ---------------------------------------------------------
#
# energy_uj is root-only on Linux >= 5.10. These tests run as root, where file modes do not
# deny reads (chmod 000 would not stop us), so the denial is injected at the narrowest seam:
# the ``opener`` that probe_rapl uses to open each energy_uj file.


def _denying_opener(denied_names=("energy_uj",), only=None):
    def opener(path: str) -> int:
        if os.path.basename(path) in denied_names and (only is None or only in path):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return os.open(path, os.O_RDONLY)

    return opener


def test_permission_denied_gives_a_diagnostic_naming_the_file_with_the_fix(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=True)
    sensors, diagnostics = probe_rapl(str(root), opener=_denying_opener())
    assert sensors == []
    assert {d.path for d in diagnostics} == {str(z.energy_path) for z in zones.values()}
    for diagnostic in diagnostics:
        assert "permission denied" in diagnostic.problem.lower()
        assert diagnostic.fix == rapl._PERMISSION_FIX
        assert "root" in diagnostic.fix and "CVE-2020-8694" in diagnostic.fix


def test_permission_denied_falls_back_to_the_models(tmp_path, proc_root):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=1, dram=True)
    probe = probe_sensors(powercap_root=str(root), proc_root=proc_root, opener=_denying_opener(), gpus=False)
    try:
        found = by_component(probe.sensors)
        assert isinstance(found[CPU], CpuModelSensor)
        assert found[CPU].method == ESTIMATED and found[MEMORY].method == ESTIMATED
        assert found[MEMORY].name == "memory-model"
        assert str(zones["package-0"].energy_path) in {d.path for d in probe.diagnostics}
    finally:
        probe.close()


def test_permission_denied_on_dram_only_keeps_the_measured_cpu(tmp_path, proc_root):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=1, dram=True)
    dram_dir = zones["package-0/dram"].path.name
    probe = probe_sensors(powercap_root=str(root), proc_root=proc_root, opener=_denying_opener(only=dram_dir), gpus=False)
    try:
        found = by_component(probe.sensors)
        assert isinstance(found[CPU], RaplSensor)
        assert found[MEMORY].name == "memory-model"
        assert [d.path for d in probe.diagnostics] == [str(zones["package-0/dram"].energy_path)]
    finally:
        probe.close()


def test_other_open_errors_skip_the_zone(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=False)

    def opener(path: str) -> int:
        if path == str(zones["package-1"].energy_path):
            raise OSError(errno.EIO, "Input/output error", path)
        return os.open(path, os.O_RDONLY)

    sensors, diagnostics = probe_rapl(str(root), opener=opener)
    try:
        assert [d.path for d in diagnostics] == [str(zones["package-1"].energy_path)]
        assert diagnostics[0].fix != rapl._PERMISSION_FIX
        assert [z.path for z in by_component(sensors)[CPU].zones] == [str(zones["package-0"].path)]
    finally:
        close_all(sensors)


# -- the injectable root ----------------------------------------------------------------------


def test_probe_sensors_reads_the_root_from_the_environment(tmp_path, monkeypatch, proc_root):
    root = tmp_path / "elsewhere"
    zones = build_intel_tree(root, sockets=1, dram=True)
    monkeypatch.setenv(config.OTEL_CARBON_POWERCAP_ROOT, str(root))
    monkeypatch.setenv(config.OTEL_CARBON_IDLE_POWER_W, "12.5")
    probe = probe_sensors(proc_root=proc_root, gpus=False)
    try:
        found = by_component(probe.sensors)
        assert isinstance(found[CPU], RaplSensor) and isinstance(found[MEMORY], RaplSensor)
        assert [z.path for z in found[CPU].zones] == [str(zones["package-0"].path)]
        assert found[CPU].idle_power_w == 12.5
        assert probe.diagnostics == []
    finally:
        probe.close()


def test_a_missing_root_falls_back_to_the_models_with_a_note(tmp_path, proc_root):
    missing = tmp_path / "no-powercap"
    probe = probe_sensors(powercap_root=str(missing), proc_root=proc_root, gpus=False)
    try:
        found = by_component(probe.sensors)
        assert found[CPU].method == ESTIMATED and found[MEMORY].method == ESTIMATED
        assert any(str(missing) in note for note in probe.notes)
    finally:
        probe.close()


def test_close_releases_the_descriptors(tmp_path):
    build_intel_tree(tmp_path / "powercap", sockets=2, dram=True)
    sensors, _ = probe_rapl(str(tmp_path / "powercap"))
    fds = [z.fd for s in sensors for z in s.zones]
    assert fds and all(os.fstat(fd) for fd in fds)
    close_all(sensors)
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    close_all(sensors)  # twice is fine


# -- measured power with a driver process ------------------------------------------------------


def _slope_w(ticks, index):
    """Least-squares slope of cumulative joules over time (W): robust to one late write."""
    xs = [t.t_ns / 1e9 for t in ticks]
    ys = [t.energy_j[index] for t in ticks]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def _measure(sampler, seconds):
    sampler.register_span_counter(lambda: 1)  # a span is open: tick at the interval
    sampler.start()
    time.sleep(seconds)
    sampler.shutdown(timeout_s=5)
    return sampler.ledger.ticks()


def test_sampler_over_rapl_measures_the_driven_wattage(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=True, psys=True)
    watts = {
        zones["package-0"]: 35.0,
        zones["package-1"]: 20.0,
        zones["package-0/dram"]: 4.0,
        zones["package-1/dram"]: 3.0,
        zones["package-0/core"]: 30.0,  # inside the package: not added
        zones["psys"]: 150.0,  # the whole platform: not added
    }
    sensors, _ = probe_rapl(str(root))
    sampler = Sampler(Probe(sensors=list(sensors)), interval_s=0.02, intensity=INTENSITY)
    try:
        with CounterDriver(watts):
            ticks = _measure(sampler, 1.0)
        assert len(ticks) >= 10
        components = sampler.ledger.components
        assert _slope_w(ticks, components.index(CPU)) == pytest.approx(35.0 + 20.0, rel=0.04)
        assert _slope_w(ticks, components.index(MEMORY)) == pytest.approx(4.0 + 3.0, rel=0.04)
        assert all(t.method == MEASURED for t in ticks)
    finally:
        close_all(sensors)


def test_driven_counter_that_wraps_several_times_is_still_measured(tmp_path):
    root = tmp_path / "powercap"
    range_j = 20.0
    zones = build_intel_tree(root, sockets=1, dram=False, max_range_uj=int(range_j * 1e6))
    zones["package-0"].write_uj(int(range_j * 1e6) - 1_000_000)  # 1 J before the first wrap
    watts = 30.0  # wraps every 2/3 s
    sensors, _ = probe_rapl(str(root))
    sampler = Sampler(Probe(sensors=list(sensors)), interval_s=1.0, intensity=INTENSITY)
    try:
        assert sampler.interval_s == pytest.approx(range_j / MAX_ZONE_POWER_W / 2)  # capped by the range
        with CounterDriver({zones["package-0"]: watts}):
            ticks = _measure(sampler, 1.0)
        energies = [t.energy_j[0] for t in ticks]
        assert all(b >= a for a, b in zip(energies, energies[1:]))
        assert energies[-1] - energies[0] > range_j  # at least one wrap went through
        assert _slope_w(ticks, 0) == pytest.approx(watts, rel=0.04)
        assert sensors[0].zones[0].resets == 0
    finally:
        close_all(sensors)
