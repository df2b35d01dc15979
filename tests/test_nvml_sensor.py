"""The NVIDIA GPU sensor against a fake pynvml that follows NVML's documented behaviour."""

import os
import subprocess
import sys
import warnings

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_carbon import config
from otel_carbon.sensors import nvml as nvml_sensor
from otel_carbon.sensors.base import HostSample, SensorError
from otel_carbon.sensors.nvml import SOURCE_ENERGY, SOURCE_POWER, NvmlGpuSensor, probe_nvml

if __package__:  # tests/ is a package (tests/__init__.py exists)
    from .fake_nvml import FakeDevice, FakeNvml
else:  # rootdir-relative import mode: tests/ itself is on sys.path
    from fake_nvml import FakeDevice, FakeNvml

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import pynvml as real_pynvml

ME = os.getpid()
OTHER = os.getppid()  # a process we can see, not us


def tick(t_ns):
    return HostSample(t_ns=t_ns, busy_s=0.0, total_s=0.0, n_cpus=1)


def trapezoid_j(timeline):
    """Energy (J) of a [(t_ns, power_mw)] timeline by the trapezoid rule, computed here."""
    return sum((p0 + p1) / 2 / 1000 * (t1 - t0) / 1e9 for (t0, p0), (t1, p1) in zip(timeline, timeline[1:]))


def invisible_pid():
    """A pid no process in our namespace has (stands for a host pid seen from a container)."""
    pid = 4_000_000
    while psutil.pid_exists(pid):
        pid += 1
    return pid


@pytest.fixture(autouse=True)
def _nvml_auto(monkeypatch):
    monkeypatch.delenv(config.OTEL_CARBON_NVML, raising=False)


def probe_one(device, **kwargs):
    fake = FakeNvml([device], **kwargs)
    sensors, diagnostics = probe_nvml(fake)
    assert diagnostics == []
    assert len(sensors) == 1
    return fake, sensors[0]


# -- the fake itself ----------------------------------------------------------------


def test_fake_uses_pynvml_codes_and_refuses_calls_before_init():
    fake = FakeNvml([FakeDevice()])
    for name in ("NOT_SUPPORTED", "GPU_IS_LOST", "NOT_FOUND", "UNINITIALIZED", "UNKNOWN"):
        assert getattr(fake, "NVML_ERROR_" + name) == getattr(real_pynvml, "NVML_ERROR_" + name)
    with pytest.raises(real_pynvml.NVMLError) as caught:
        fake.nvmlDeviceGetCount()
    assert caught.value.value == real_pynvml.NVML_ERROR_UNINITIALIZED
    fake.nvmlInit()
    assert fake.nvmlDeviceGetCount() == 1
    fake.nvmlShutdown()
    with pytest.raises(real_pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetHandleByIndex(0)


# -- energy counter (Volta+) --------------------------------------------------------------


def test_energy_counter_device_reads_millijoules_as_joules():
    device = FakeDevice("volta", name="NVIDIA H100", uuid="GPU-abc", energy_mj=5_000_000)
    fake, sensor = probe_one(device)
    readings_mj = [5_000_000, 5_012_345, 5_900_001, 7_000_000]
    for i, energy_mj in enumerate(readings_mj):
        device.energy_mj = energy_mj
        assert sensor.read(tick(i * 100_000_000)) == pytest.approx(energy_mj / 1000)
    info = sensor.info()
    assert (info.name, info.component, info.method, info.source) == ("gpu0", "gpu", "measured", SOURCE_ENERGY)
    assert info.details == {"name": "NVIDIA H100", "uuid": "GPU-abc", "index": 0, "energy_counter": True}
    assert (sensor.component, sensor.method, sensor.name, sensor.idle_power_w) == ("gpu", "measured", "gpu0", 0.0)
    sensor.close()


def test_energy_counter_that_restarts_stays_cumulative():
    device = FakeDevice("volta", energy_mj=9_000)
    _, sensor = probe_one(device)
    first_j = sensor.read(tick(0))
    device.energy_mj = 2_000  # driver reloaded: counter restarts from 0
    assert sensor.read(tick(1)) == pytest.approx(first_j + 2_000 / 1000)
    device.energy_mj = 3_500
    assert sensor.read(tick(2)) == pytest.approx(first_j + 3_500 / 1000)


def test_byte_names_are_decoded():
    _, sensor = probe_one(FakeDevice("volta", name=b"Tesla V100"))
    assert sensor.info().details["name"] == "Tesla V100"


# -- power integration (energy NOT_SUPPORTED) ------------------------------------------------


def test_not_supported_energy_falls_back_to_power():
    fake, sensor = probe_one(FakeDevice("old", name="Tesla P100"))
    assert sensor.info().source == SOURCE_POWER
    assert sensor.info().details["energy_counter"] is False
    assert sensor.method == "measured"


def test_function_not_found_energy_falls_back_to_power():
    device = FakeDevice("volta")
    device.fail_next(real_pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, "nvmlDeviceGetTotalEnergyConsumption")
    _, sensor = probe_one(device)
    assert sensor.info().source == SOURCE_POWER


def test_power_is_integrated_with_the_trapezoid_rule():
    device = FakeDevice("old")
    _, sensor = probe_one(device)
    timeline = [(1_000_000_000, 50_000), (1_100_000_000, 250_000), (1_180_000_000, 300_500), (1_500_000_000, 75_000)]
    for i, (t_ns, power_mw) in enumerate(timeline):
        device.power_mw = power_mw
        assert sensor.read(tick(t_ns)) == pytest.approx(trapezoid_j(timeline[: i + 1]))


def test_constant_power_gives_power_times_time():
    device = FakeDevice("old", power_mw=123_000)
    _, sensor = probe_one(device)
    start_ns, step_ns, n = 7_000, 100_000_000, 31
    for i in range(n):
        energy_j = sensor.read(tick(start_ns + i * step_ns))
    assert energy_j == pytest.approx(123.0 * (n - 1) * step_ns / 1e9)


def test_same_tick_twice_adds_nothing():
    device = FakeDevice("old", power_mw=100_000)
    _, sensor = probe_one(device)
    sensor.read(tick(0))
    once_j = sensor.read(tick(10**9))
    device.power_mw = 900_000
    assert sensor.read(tick(10**9)) == once_j


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(min_value=1, max_value=2 * 10**9), st.integers(min_value=0, max_value=1_000_000)),
        min_size=1,
        max_size=40,
    )
)
def test_power_integral_matches_any_timeline(steps):
    device = FakeDevice("old")
    _, sensor = probe_one(device)
    timeline, t_ns, previous_j = [], 0, 0.0
    for dt_ns, power_mw in steps:
        t_ns += dt_ns
        timeline.append((t_ns, power_mw))
        device.power_mw = power_mw
        energy_j = sensor.read(tick(t_ns))
        assert energy_j >= previous_j
        previous_j = energy_j
    assert energy_j == pytest.approx(trapezoid_j(timeline), rel=1e-9, abs=1e-9)
    sensor.close()


def test_device_without_power_readings_is_a_diagnostic():
    fake = FakeNvml([FakeDevice("nopower", name="GeForce Old"), FakeDevice("volta")])
    sensors, diagnostics = probe_nvml(fake)
    assert [s.name for s in sensors] == ["gpu1"]
    assert len(diagnostics) == 1 and diagnostics[0].path == "nvml:gpu0"
    assert "GeForce Old" in diagnostics[0].problem and diagnostics[0].fix


# -- errors mid-run ------------------------------------------------------------------------


def test_lost_device_degrades_only_its_sensor():
    gpu0, gpu1 = FakeDevice("volta", energy_mj=1_000), FakeDevice("old", power_mw=200_000)
    sensors, _ = probe_nvml(FakeNvml([gpu0, gpu1]))
    s0, s1 = sensors
    s0.read(tick(0))
    s1.read(tick(0))
    gpu0.lose()
    with pytest.raises(SensorError) as caught:
        s0.read(tick(10**9))
    assert isinstance(caught.value.__cause__, real_pynvml.NVMLError)
    assert caught.value.__cause__.value == real_pynvml.NVML_ERROR_GPU_IS_LOST
    gpu0.lost = False  # a lost handle never comes back in NVML; the sensor must not trust it
    with pytest.raises(SensorError):  # stays unavailable
        s0.read(tick(2 * 10**9))
    assert s0.process_share(ME) is None
    assert s1.read(tick(2 * 10**9)) == pytest.approx(200.0 * 2)  # the other GPU still reads


def test_transient_error_is_wrapped_and_the_gap_is_bridged():
    device = FakeDevice("old", power_mw=100_000)
    _, sensor = probe_one(device)
    sensor.read(tick(0))
    device.fail_next(real_pynvml.NVML_ERROR_UNKNOWN)
    with pytest.raises(SensorError):
        sensor.read(tick(10**9))
    device.power_mw = 300_000
    assert sensor.read(tick(2 * 10**9)) == pytest.approx(trapezoid_j([(0, 100_000), (2 * 10**9, 300_000)]))


# -- per-process share ------------------------------------------------------------------------


def test_share_from_utilization_samples():
    device = FakeDevice("volta")
    _, sensor = probe_one(device)
    batch = [(ME, 1_000, 30), (OTHER, 1_000, 10), (ME, 1_200, 50), (OTHER, 1_200, 30)]
    for pid, t_us, sm in batch:
        device.add_sample(pid, t_us, sm)
    mine = sum(sm for pid, _, sm in batch if pid == ME)
    assert sensor.process_share(ME) == pytest.approx(mine / sum(sm for _, _, sm in batch))
    assert device.utilization_timestamps == [0]
    # only samples newer than the last seen timestamp count
    device.add_sample(OTHER, 1_500, 40)
    assert sensor.process_share(ME) == 0.0
    assert device.utilization_timestamps[-1] == max(t for _, t, _ in batch)


def test_no_new_sample_reuses_the_last_share_then_falls_back():
    device = FakeDevice("volta")
    _, sensor = probe_one(device)
    device.add_sample(ME, 10, 20)
    device.add_sample(OTHER, 10, 60)
    share = sensor.process_share(ME)
    assert sensor.process_share(ME) == share  # NOT_FOUND within the hold
    sensor.share_hold_s = 0.0
    device.compute_pids = [ME]
    assert sensor.process_share(ME) == 1.0  # hold expired: the running-process list decides


@pytest.mark.parametrize(
    "compute, graphics, expected",
    [
        ([ME], [], 1.0),
        ([], [ME], 1.0),
        ([ME], [ME], 1.0),
        ([ME, OTHER], [], None),  # shared, utilisation unknown: no guessing
        ([OTHER], [], 0.0),  # others use it, we hold no context
        ([], [], None),  # no process listed (containers often hide them)
        (["foreign"], [], None),  # host pids we cannot see: another PID namespace
    ],
)
def test_share_from_running_processes_when_utilization_unsupported(compute, graphics, expected):
    device = FakeDevice("old", process_utilization=False)
    foreign = invisible_pid()
    device.compute_pids = [foreign if p == "foreign" else p for p in compute]
    device.graphics_pids = list(graphics)
    _, sensor = probe_one(device)
    assert sensor.process_share(ME) == expected


def test_samples_from_another_pid_namespace_are_unknown():
    device = FakeDevice("volta")
    device.add_sample(invisible_pid(), 5, 80)
    _, sensor = probe_one(device)
    assert sensor.process_share(ME) is None


# -- probe, session and configuration ----------------------------------------------------------


def test_nvml_shut_down_once_after_the_last_sensor_closes():
    fake = FakeNvml([FakeDevice("volta"), FakeDevice("old")])
    sensors, _ = probe_nvml(fake)
    assert (fake.init_calls, fake.shutdown_calls) == (1, 0)
    sensors[0].close()
    sensors[0].close()
    assert fake.shutdown_calls == 0
    assert sensors[1].read(tick(0)) == 0.0  # NVML still initialised for the other sensor
    sensors[1].close()
    assert fake.shutdown_calls == 1
    with pytest.raises(SensorError):
        sensors[1].read(tick(1))
    assert sensors[1].process_share(ME) is None


def test_probe_without_usable_devices_shuts_nvml_down():
    fake = FakeNvml([])
    sensors, diagnostics = probe_nvml(fake)
    assert sensors == [] and len(diagnostics) == 1
    assert (fake.init_calls, fake.shutdown_calls) == (1, 1)


def test_nvml_init_failing_gives_one_diagnostic_with_a_fix():
    fake = FakeNvml([FakeDevice()], init_error=real_pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    sensors, diagnostics = probe_nvml(fake)
    assert sensors == [] and len(diagnostics) == 1
    assert "nvmlInit" in diagnostics[0].problem
    assert "driver" in diagnostics[0].fix and config.OTEL_CARBON_NVML in diagnostics[0].fix
    assert fake.shutdown_calls == 0


def test_pynvml_not_installed_gives_one_diagnostic_with_a_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    sensors, diagnostics = probe_nvml()
    assert sensors == [] and len(diagnostics) == 1
    assert "not installed" in diagnostics[0].problem and "nvidia-ml-py" in diagnostics[0].fix


def test_real_pynvml_on_this_host():
    sensors, diagnostics = probe_nvml()
    try:
        if sensors:
            assert all(isinstance(s, NvmlGpuSensor) for s in sensors)
        else:  # no GPU or driver here: one diagnostic that says what to do
            assert len(diagnostics) == 1 and diagnostics[0].fix
    finally:
        for sensor in sensors:
            sensor.close()


def test_off_never_loads_nvml(monkeypatch):
    monkeypatch.setenv(config.OTEL_CARBON_NVML, "off")
    fake = FakeNvml([FakeDevice()])
    assert probe_nvml(fake) == ([], [])
    assert fake.init_calls == 0

    def must_not_load():
        raise AssertionError("NVML loaded although OTEL_CARBON_NVML=off")

    monkeypatch.setattr(nvml_sensor, "_load_nvml", must_not_load)
    assert probe_nvml() == ([], [])


def test_import_does_not_import_pynvml():
    code = (
        "import sys, otel_carbon, otel_carbon.sensors.nvml\n"
        "assert 'pynvml' not in sys.modules, 'pynvml imported'\n"
        "otel_carbon.sensors.nvml._load_nvml()\n"
        "assert 'pynvml' in sys.modules\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("driver", ["absent", "present"])
def test_no_driver_on_linux_means_pynvml_is_never_imported(tmp_path, driver):
    """Importing pynvml costs tens of milliseconds of every start; on a Linux host with no
    NVIDIA driver to be seen (its kernel module, control device or WSL's GPU device) nvmlInit
    could only fail, so the probe says why without importing it. A driver path that exists
    (here a stand-in file) means the real probe: pynvml is imported and asked."""
    stand_in = tmp_path / "nvidiactl"
    if driver == "present":
        stand_in.write_text("")
    code = (
        "import sys\n"
        "from otel_carbon.sensors import nvml\n"
        f"nvml.DRIVER_PATHS = ({str(tmp_path / 'no-proc-entry')!r}, {str(stand_in)!r})\n"
        "sensors, diagnostics = nvml.probe_nvml()\n"
        "print('pynvml' in sys.modules, [d.problem for d in diagnostics])\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop(config.OTEL_CARBON_NVML, None)
    result = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    imported, _, problems = result.stdout.strip().partition(" ")
    if driver == "absent":
        assert imported == "False", result.stdout
        assert "no NVIDIA driver on this host" in problems and str(stand_in) in problems
    else:
        assert imported == "True", result.stdout
        assert "no NVIDIA driver" not in problems
