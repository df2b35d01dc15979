"""Configuration: environment variables, the sensors they choose, CPU names and TDPs, and
the model sensors' arguments.

Expected table values are read from ``tests/data`` (the curated source tables), never
typed in here, so a wrong bundled value or a wrong lookup fails a test.
"""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path
from typing import Dict, List

import psutil
import pytest

from otel_carbon import config
from otel_carbon.attributes import CPU, ESTIMATED, MEMORY
from otel_carbon.data import load_table
from otel_carbon.sampler import Sampler
from otel_carbon.sensor_reading import default_interval_s
from otel_carbon.sensors.base import HostSample
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.cpu_model import (
    TEADS_LOAD_PCT,
    TEADS_TDP_FRACTION,
    CpuModelSensor,
    lookup_tdp_w,
    normalise_cpu_name,
)
from otel_carbon.sensors.memory_model import CCF_MEMORY_KWH_PER_GB_HOUR, memory_model_sensor
from otel_carbon.sensors.nvml import probe_nvml
from otel_carbon.sensors.probe import probe_sensors

REFERENCE_DATA = Path(__file__).resolve().parent / "data"


pytestmark = pytest.mark.usefixtures("clean_carbon_env")


def reference_rows(filename: str) -> List[Dict[str, str]]:
    with (REFERENCE_DATA / filename).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def tdp_row(model: str) -> Dict[str, str]:
    return next(r for r in reference_rows("cpu_tdp.csv") if r["model"] == model)


def unknown_rows() -> List[Dict[str, str]]:
    return [r for r in reference_rows("cpu_power_model.csv") if r["microarchitecture"] == "Unknown"]


def warnings_about(caplog, name: str):
    return [r for r in caplog.records if r.levelname == "WARNING" and name in r.getMessage()]


@pytest.fixture
def fake_proc(tmp_path):
    """Write a /proc/cpuinfo with a given model name, on bare metal or a VM."""

    def make(model_name: str, vm: bool = False) -> str:
        root = tmp_path / ("proc-vm" if vm else "proc")
        root.mkdir(exist_ok=True)
        flags = "fpu vme de pse tsc msr" + (" hypervisor" if vm else "")
        text = "".join(
            f"processor\t: {i}\nvendor_id\t: Test\nmodel name\t: {model_name}\nflags\t\t: {flags}\n\n" for i in range(2)
        )
        (root / "cpuinfo").write_text(text)
        return str(root)

    return make


@pytest.fixture
def no_powercap(tmp_path):
    return str(tmp_path / "no-powercap")


# -- invalid environment values ---------------------------------------------------------------

INVALID = [
    (config.OTEL_CARBON_SAMPLE_INTERVAL, "fast", config.sample_interval_s, config.DEFAULT_SAMPLE_INTERVAL_S, "a number >= 0.01 and <= 3600 s"),
    (config.OTEL_CARBON_SAMPLE_INTERVAL, "0", config.sample_interval_s, config.DEFAULT_SAMPLE_INTERVAL_S, "a number >= 0.01 and <= 3600 s"),
    (config.OTEL_CARBON_SAMPLE_INTERVAL, "-0.5", config.sample_interval_s, config.DEFAULT_SAMPLE_INTERVAL_S, "a number >= 0.01 and <= 3600 s"),
    (config.OTEL_CARBON_SAMPLE_INTERVAL, "nan", config.sample_interval_s, config.DEFAULT_SAMPLE_INTERVAL_S, "a number >= 0.01 and <= 3600 s"),
    (config.OTEL_CARBON_SAMPLE_INTERVAL, "inf", config.sample_interval_s, config.DEFAULT_SAMPLE_INTERVAL_S, "a number >= 0.01 and <= 3600 s"),
    (config.OTEL_CARBON_SAMPLE_INTERVAL, "1e10", config.sample_interval_s, config.DEFAULT_SAMPLE_INTERVAL_S, "<= 3600 s"),
    (config.OTEL_CARBON_MAX_OPEN_SPANS, "1.5", config.max_open_spans, config.DEFAULT_MAX_OPEN_SPANS, "a whole number >= 1 and <= 1e+07"),
    (config.OTEL_CARBON_MAX_OPEN_SPANS, "0", config.max_open_spans, config.DEFAULT_MAX_OPEN_SPANS, "a whole number >= 1 and <= 1e+07"),
    (config.OTEL_CARBON_MAX_OPEN_SPANS, "lots", config.max_open_spans, config.DEFAULT_MAX_OPEN_SPANS, "a whole number >= 1 and <= 1e+07"),
    (config.OTEL_CARBON_IDLE_POLICY, "all", config.idle_policy, "none", "one of none, cpu"),
    (
        config.OTEL_CARBON_POWER_W,
        "-5",
        lambda: config.env_number(config.OTEL_CARBON_POWER_W, None),
        None,
        "a number > 0 and <= 100000 W",
    ),
    (
        config.OTEL_CARBON_IDLE_POWER_W,
        "-1",
        lambda: config.env_number(config.OTEL_CARBON_IDLE_POWER_W, None),
        None,
        "a number >= 0 and <= 100000 W",
    ),
    (
        config.OTEL_CARBON_CPU_MODEL,
        "fancy",
        lambda: config.env_choice(config.OTEL_CARBON_CPU_MODEL, "auto", "auto", "ccf", "tdp"),
        "auto",
        "one of auto, ccf, tdp",
    ),
]


@pytest.mark.parametrize("name, raw, read, default, expected_form", INVALID)
def test_an_invalid_value_warns_once_naming_the_variable_and_uses_the_default(
    monkeypatch, caplog, name, raw, read, default, expected_form
):
    monkeypatch.setenv(name, raw)
    with caplog.at_level("WARNING", logger="otel_carbon"):
        results = [read() for _ in range(3)]
    assert results == [default] * 3
    records = warnings_about(caplog, name)
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    message = records[0].getMessage()
    assert repr(raw) in message and expected_form in message
    assert (repr(default) if default is not None else "the default (unset)") in message


@pytest.mark.parametrize(
    "name, raw, read, expected",
    [
        (config.OTEL_CARBON_SAMPLE_INTERVAL, " 0.25 ", config.sample_interval_s, 0.25),
        (config.OTEL_CARBON_SAMPLE_INTERVAL, "2e-2", config.sample_interval_s, 0.02),
        (config.OTEL_CARBON_MAX_OPEN_SPANS, "500", config.max_open_spans, 500),
        (config.OTEL_CARBON_IDLE_POLICY, "CPU", config.idle_policy, "cpu"),
        (config.OTEL_CARBON_POWERCAP_ROOT, "/srv/powercap", config.powercap_root, "/srv/powercap"),
        (config.OTEL_CARBON_SAMPLE_INTERVAL, "   ", config.sample_interval_s, config.DEFAULT_SAMPLE_INTERVAL_S),
        (config.OTEL_CARBON_POWERCAP_ROOT, "", config.powercap_root, config.DEFAULT_POWERCAP_ROOT),
    ],
)
def test_valid_and_blank_values_do_not_warn(monkeypatch, caplog, name, raw, read, expected):
    monkeypatch.setenv(name, raw)
    with caplog.at_level("WARNING", logger="otel_carbon"):
        assert read() == expected
    assert caplog.records == []


def test_unset_variables_give_the_documented_defaults(caplog):
    with caplog.at_level("WARNING", logger="otel_carbon"):
        assert config.sample_interval_s() == config.DEFAULT_SAMPLE_INTERVAL_S
        assert config.max_open_spans() == config.DEFAULT_MAX_OPEN_SPANS
        assert config.powercap_root() == config.DEFAULT_POWERCAP_ROOT == "/sys/class/powercap"
        assert config.idle_policy() == "none"
    assert caplog.records == []


def test_a_bad_interval_in_the_environment_leaves_the_sampler_on_the_default(monkeypatch, caplog):
    monkeypatch.setenv(config.OTEL_CARBON_SAMPLE_INTERVAL, "-1")
    from otel_carbon.intensity import Intensity, StaticIntensitySource
    from otel_carbon.sensors.probe import Probe

    with caplog.at_level("WARNING", logger="otel_carbon"):
        sampler = Sampler(
            Probe(sensors=[ConstantPowerSensor(power_w=1.0)]),
            intensity=StaticIntensitySource(Intensity(g_per_kwh=1.0, zone="test")),
        )
    assert sampler.interval_s == default_interval_s(sampler.probe)
    assert len(warnings_about(caplog, config.OTEL_CARBON_SAMPLE_INTERVAL)) == 1


def test_a_bad_nvml_switch_warns_and_keeps_auto(monkeypatch, caplog):
    monkeypatch.setenv(config.OTEL_CARBON_NVML, "maybe")
    if __package__:
        from .fake_nvml import FakeDevice, FakeNvml
    else:
        from fake_nvml import FakeDevice, FakeNvml
    with caplog.at_level("WARNING", logger="otel_carbon"):
        gpus, _ = probe_nvml(nvml=FakeNvml([FakeDevice()]))
    try:
        assert len(gpus) == 1  # auto: the GPU is used
        records = warnings_about(caplog, config.OTEL_CARBON_NVML)
        assert len(records) == 1 and "one of auto, off" in records[0].getMessage()
    finally:
        for gpu in gpus:
            gpu.close()


# -- what probe_sensors chooses --------------------------------------------------------------------


def by_component(probe):
    return {s.component: s for s in probe.sensors}


def test_constant_power_replaces_cpu_and_memory(monkeypatch, no_powercap, fake_proc):
    monkeypatch.setenv(config.OTEL_CARBON_POWER_W, "120")
    monkeypatch.setenv(config.OTEL_CARBON_IDLE_POWER_W, "30.5")
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Test CPU"), gpus=False)
    assert len(probe.sensors) == 1
    sensor = probe.sensors[0]
    assert isinstance(sensor, ConstantPowerSensor)
    assert sensor.component == CPU and sensor.method == ESTIMATED
    assert sensor.power_w == 120.0 and sensor.idle_power_w == 30.5
    assert any(config.OTEL_CARBON_POWER_W in note for note in probe.notes)


def test_idle_power_above_the_constant_power_is_capped(monkeypatch, no_powercap, fake_proc):
    monkeypatch.setenv(config.OTEL_CARBON_POWER_W, "50")
    monkeypatch.setenv(config.OTEL_CARBON_IDLE_POWER_W, "80")
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Test CPU"), gpus=False)
    assert probe.sensors[0].idle_power_w == 50.0


def test_an_invalid_constant_power_falls_back_to_the_models(monkeypatch, caplog, no_powercap, fake_proc):
    monkeypatch.setenv(config.OTEL_CARBON_POWER_W, "-40")
    with caplog.at_level("WARNING", logger="otel_carbon"):
        probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Test CPU"), gpus=False)
    found = by_component(probe)
    assert set(found) == {CPU, MEMORY}
    assert isinstance(found[CPU], CpuModelSensor)
    assert len(warnings_about(caplog, config.OTEL_CARBON_POWER_W)) == 1


def test_tdp_from_the_environment_chooses_the_tdp_curve(monkeypatch, no_powercap, fake_proc):
    monkeypatch.setenv(config.OTEL_CARBON_CPU_TDP_W, "95")
    # even on a VM and with a CPU the table knows: the user's figure wins
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("AMD EPYC 7763 64-Core Processor", vm=True), gpus=False)
    cpu = by_component(probe)[CPU]
    assert isinstance(cpu, CpuModelSensor)
    assert cpu.curve == "tdp" and cpu.tdp_w == 95.0
    assert cpu.params_source == config.OTEL_CARBON_CPU_TDP_W
    assert cpu.n_vcpus == (psutil.cpu_count(logical=True) or 1)
    assert cpu.idle_power_w == pytest.approx(95.0 * TEADS_TDP_FRACTION[0])
    assert by_component(probe)[MEMORY].name == "memory-model"


def test_ccf_from_the_environment_uses_the_mean_unknown_row(monkeypatch, no_powercap, fake_proc):
    monkeypatch.setenv(config.OTEL_CARBON_CPU_MODEL, "ccf")
    rows = unknown_rows()
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("AMD EPYC 7763 64-Core Processor"), gpus=False)
    cpu = by_component(probe)[CPU]
    assert cpu.curve == "ccf"
    assert cpu.min_w_per_vcpu == pytest.approx(sum(float(r["min_watts_per_vcpu"]) for r in rows) / len(rows))
    assert cpu.max_w_per_vcpu == pytest.approx(sum(float(r["max_watts_per_vcpu"]) for r in rows) / len(rows))
    n = psutil.cpu_count(logical=True) or 1
    assert cpu.idle_power_w == pytest.approx(n * cpu.min_w_per_vcpu)


@pytest.mark.parametrize("provider", ["aws", "gcp", "azure"])
def test_ccf_uses_the_cloud_providers_row(monkeypatch, no_powercap, fake_proc, provider):
    monkeypatch.setenv(config.OTEL_CARBON_CPU_MODEL, "ccf")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"service.name=x,cloud.provider={provider.upper()}")
    row = next(r for r in unknown_rows() if r["provider"] == provider)
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Test CPU"), gpus=False)
    cpu = by_component(probe)[CPU]
    assert cpu.min_w_per_vcpu == pytest.approx(float(row["min_watts_per_vcpu"]))
    assert cpu.max_w_per_vcpu == pytest.approx(float(row["max_watts_per_vcpu"]))
    assert provider in cpu.params_source


def test_auto_on_bare_metal_with_a_known_cpu_uses_its_tdp(no_powercap, fake_proc):
    row = tdp_row("Intel Xeon Platinum 8375C")
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz"), gpus=False)
    cpu = by_component(probe)[CPU]
    assert cpu.curve == "tdp" and cpu.tdp_w == float(row["tdp_watts"])
    assert row["model"] in cpu.params_source


def test_auto_on_a_vm_uses_ccf_even_for_a_known_cpu(no_powercap, fake_proc):
    probe = probe_sensors(
        powercap_root=no_powercap, proc_root=fake_proc("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", vm=True), gpus=False
    )
    assert by_component(probe)[CPU].curve == "ccf"


def test_tdp_choice_on_a_vm_uses_the_table(monkeypatch, no_powercap, fake_proc):
    monkeypatch.setenv(config.OTEL_CARBON_CPU_MODEL, "tdp")
    row = tdp_row("AMD EPYC 7R13")
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("AMD EPYC 7R13 Processor", vm=True), gpus=False)
    cpu = by_component(probe)[CPU]
    assert cpu.curve == "tdp" and cpu.tdp_w == float(row["tdp_watts"])


def test_tdp_choice_for_an_unknown_cpu_says_so(monkeypatch, no_powercap, fake_proc):
    monkeypatch.setenv(config.OTEL_CARBON_CPU_MODEL, "tdp")
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Imaginary CPU 0000"), gpus=False)
    cpu = by_component(probe)[CPU]
    assert cpu.curve == "tdp" and cpu.tdp_w > 0
    assert "not in table" in cpu.params_source and "Imaginary CPU 0000" in cpu.params_source


def test_auto_for_an_unknown_cpu_uses_ccf(no_powercap, fake_proc):
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Imaginary CPU 0000"), gpus=False)
    assert by_component(probe)[CPU].curve == "ccf"


def test_memory_model_follows_the_installed_ram(no_powercap, fake_proc):
    probe = probe_sensors(powercap_root=no_powercap, proc_root=fake_proc("Imaginary CPU 0000"), gpus=False)
    memory = by_component(probe)[MEMORY]
    expected_w = psutil.virtual_memory().total / 1e9 * CCF_MEMORY_KWH_PER_GB_HOUR * 1000
    assert memory.power_w == pytest.approx(expected_w)
    assert memory.idle_power_w == memory.power_w  # all static


# -- CPU names and the TDP table ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "intel xeon platinum 8375c"),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "intel xeon e5-2680 v4"),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "intel core i7-8700"),
        ("AMD EPYC 7763 64-Core Processor", "amd epyc 7763"),
        ("AMD Ryzen 9 5950X 16-Core Processor", "amd ryzen 9 5950x"),
        ("  AMD   EPYC 7R13   Processor ", "amd epyc 7r13"),
        ("Intel(R) Core(TM) i5-10210U CPU with Radeon Graphics", "intel core i5-10210u"),
        ("", ""),
    ],
)
def test_cpu_names_are_normalised(raw, normalised):
    assert normalise_cpu_name(raw) == normalised


@pytest.mark.parametrize(
    "cpuinfo_name, table_model",
    [
        ("Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "Intel Xeon Platinum 8375C"),
        ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "Intel Xeon E5-2680 v4"),
        ("Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", "Intel Xeon E5-2680 v2"),
        ("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", "Intel Core i7-8700"),
        ("Intel(R) Core(TM) i7-8700K CPU @ 3.70GHz", "Intel Core i7-8700K"),
        ("AMD EPYC 7763 64-Core Processor", "AMD EPYC 7763"),
        ("AMD EPYC 7R13 Processor", "AMD EPYC 7R13"),
        ("AMD Ryzen 9 5950X 16-Core Processor", "AMD Ryzen 9 5950X"),
    ],
)
def test_tdp_lookup_of_real_cpuinfo_names(cpuinfo_name, table_model):
    row = tdp_row(table_model)
    assert lookup_tdp_w(cpuinfo_name, load_table("cpu_tdp")) == (row["model"], float(row["tdp_watts"]))


def _simple_key(model: str) -> str:
    words = [w for w in model.lower().split() if w != "processor"]
    return " ".join(words)


def test_tdp_lookup_of_table_rows():
    """A sample of the table's own names finds a row with that name's TDP."""
    rows = reference_rows("cpu_tdp.csv")
    tdps_by_key: Dict[str, set] = {}
    for row in rows:
        tdps_by_key.setdefault(_simple_key(row["model"]), set()).add(float(row["tdp_watts"]))
    table = load_table("cpu_tdp")
    for row in random.Random(1234).sample(rows, 40):
        found = lookup_tdp_w(row["model"], table)
        assert found is not None, row["model"]
        assert found[1] in tdps_by_key[_simple_key(row["model"])], row["model"]


def test_tdp_lookup_by_a_unique_model_number():
    """Another wording of a name still finds the row when vendor and number are unique."""
    rows = reference_rows("cpu_tdp.csv")
    tokens: Dict[tuple, List[Dict[str, str]]] = {}
    for row in rows:
        words = row["model"].lower().split()
        for word in words[1:]:
            tokens.setdefault((words[0], word), []).append(row)
    row = next(
        r
        for r in rows
        if r["model"].split()[0] == "AMD"
        and any(c.isdigit() for c in r["model"].split()[-1])
        and len(r["model"].split()[-1]) >= 3
        and len(tokens[("amd", r["model"].lower().split()[-1])]) == 1
    )
    number = row["model"].split()[-1]
    assert lookup_tdp_w(f"AMD Mystery Series {number} 8-Core Processor", load_table("cpu_tdp")) == (
        row["model"],
        float(row["tdp_watts"]),
    )
    # the same number under another vendor is not a match
    assert lookup_tdp_w(f"Intel(R) Mystery {number}", load_table("cpu_tdp")) is None


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Intel Xeon Processor (Skylake, IBRS)",  # QEMU's name: no model number
        "Intel(R) Xeon(R) CPU E5-2680 0 @ 2.70GHz",  # E5-2680 v1..v4 all match: no guess
        "Genuine Intel(R) CPU 0000 @ 2.00GHz",
    ],
)
def test_tdp_lookup_does_not_guess(name):
    assert lookup_tdp_w(name, load_table("cpu_tdp")) is None


def test_the_bundled_table_matches_the_curated_one():
    bundled = {(r["model"], r["tdp_watts"]) for r in load_table("cpu_tdp")}
    curated = {(r["model"], r["tdp_watts"]) for r in reference_rows("cpu_tdp.csv")}
    assert bundled == curated


# -- model sensors: energy --------------------------------------------------------------------------


def host(t_s: float, busy_s: float, total_s: float, n_cpus: int = 4) -> HostSample:
    return HostSample(t_ns=int(t_s * 1e9), busy_s=busy_s, total_s=total_s, n_cpus=n_cpus)


def teads(load_pct: float) -> float:
    """The documented curve, interpolated here."""
    points = list(zip(TEADS_LOAD_PCT, TEADS_TDP_FRACTION))
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= load_pct <= x1:
            return y0 + (y1 - y0) * (load_pct - x0) / (x1 - x0)
    raise AssertionError(load_pct)


def test_ccf_energy_is_static_plus_busy_seconds():
    min_w, max_w, n = 0.74, 3.5, 8
    sensor = CpuModelSensor("ccf", min_w_per_vcpu=min_w, max_w_per_vcpu=max_w, n_vcpus=n)
    assert sensor.read(host(100.0, 50.0, 400.0)) == 0.0  # the first read sets the origin
    energy = sensor.read(host(102.0, 53.0, 416.0))
    assert energy == pytest.approx(n * min_w * 2.0 + (max_w - min_w) * 3.0)
    assert sensor.nominal_price_j_per_cpu_s == pytest.approx(max_w - min_w)
    assert sensor.idle_power_w == pytest.approx(n * min_w)
    # time that does not move adds nothing
    assert sensor.read(host(102.0, 53.0, 416.0)) == pytest.approx(energy)


@pytest.mark.parametrize("load_pct", [0.0, 5.0, 10.0, 30.0, 50.0, 80.0, 100.0])
def test_tdp_energy_follows_the_teads_curve(load_pct):
    tdp_w = 120.0
    sensor = CpuModelSensor("tdp", tdp_w=tdp_w, n_vcpus=4)
    sensor.read(host(10.0, 100.0, 400.0))
    total = 4 * 0.5
    energy = sensor.read(host(10.5, 100.0 + total * load_pct / 100, 400.0 + total))
    assert energy == pytest.approx(tdp_w * teads(load_pct) * 0.5)


def test_tdp_nominal_price_is_the_low_load_slope_per_vcpu():
    tdp_w, n = 150.0, 6
    sensor = CpuModelSensor("tdp", tdp_w=tdp_w, n_vcpus=n)
    slope = (TEADS_TDP_FRACTION[1] - TEADS_TDP_FRACTION[0]) / (TEADS_LOAD_PCT[1] / 100)
    assert sensor.nominal_price_j_per_cpu_s == pytest.approx(tdp_w * slope / n)
    assert sensor.info().details["tdp_w"] == tdp_w


def test_memory_model_energy_is_all_static():
    memory_bytes = 64 * 10**9
    sensor = memory_model_sensor(memory_bytes)
    power_w = memory_bytes / 1e9 * CCF_MEMORY_KWH_PER_GB_HOUR * 1000
    assert sensor.component == MEMORY and sensor.method == ESTIMATED
    assert sensor.power_w == pytest.approx(power_w) and sensor.idle_power_w == sensor.power_w
    sensor.read(host(0.0, 0.0, 0.0))
    assert sensor.read(host(10.0, 0.0, 0.0)) == pytest.approx(power_w * 10.0)


def test_constant_power_integrates_over_time_only_forward():
    sensor = ConstantPowerSensor(power_w=40.0, idle_power_w=10.0)
    assert sensor.read(host(5.0, 0, 0)) == 0.0
    assert sensor.read(host(7.5, 0, 0)) == pytest.approx(100.0)
    assert sensor.read(host(6.0, 0, 0)) == pytest.approx(100.0)  # a clock going back adds nothing
    assert sensor.info().details["power_w"] == 40.0


# -- bad constructor arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: CpuModelSensor("linear", tdp_w=100.0), "curve"),
        (lambda: CpuModelSensor("tdp", tdp_w=0.0), "tdp_w"),
        (lambda: CpuModelSensor("tdp", tdp_w=-65.0), "tdp_w"),
        (lambda: CpuModelSensor("tdp", tdp_w=math.nan), "tdp_w"),
        (lambda: CpuModelSensor("tdp", tdp_w=math.inf), "tdp_w"),
        (lambda: CpuModelSensor("ccf", min_w_per_vcpu=4.0, max_w_per_vcpu=1.0), "min_w_per_vcpu"),
        (lambda: CpuModelSensor("ccf", min_w_per_vcpu=-1.0, max_w_per_vcpu=1.0), "min_w_per_vcpu"),
        (lambda: CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=math.inf), "max_w_per_vcpu"),
        (lambda: CpuModelSensor("ccf", min_w_per_vcpu=0.5, max_w_per_vcpu=3.0, n_vcpus=0), "n_vcpus"),
        (lambda: ConstantPowerSensor(power_w=0.0), "power_w"),
        (lambda: ConstantPowerSensor(power_w=-3.0), "power_w"),
        (lambda: ConstantPowerSensor(power_w=math.nan), "power_w"),
        (lambda: ConstantPowerSensor(power_w=math.inf), "power_w"),
        (lambda: ConstantPowerSensor(power_w=10.0, idle_power_w=11.0), "idle_power_w"),
        (lambda: ConstantPowerSensor(power_w=10.0, idle_power_w=-1.0), "idle_power_w"),
        (lambda: memory_model_sensor(0), "memory_bytes"),
        (lambda: memory_model_sensor(-(2**30)), "memory_bytes"),
    ],
)
def test_bad_constructor_arguments_raise_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()
