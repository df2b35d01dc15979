"""Powercap trees that hold something other than counters must not hang, flood or crash us.

Each tree is a real one under tmp_path (``tests/powercap_tree.py``) with one file replaced by
a FIFO, a symlink to ``/dev/zero``, an absurd range or a counter that jumps. The probe runs
the way a user meets it, ``otel-carbon sensors --json`` with ``OTEL_CARBON_POWERCAP_ROOT``,
in a child process whose address space is capped (an unbounded read dies there, not here)
and which must finish: a blocking open is a timeout, a MemoryError a traceback, both fail.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import pytest

from otel_carbon.attributes import CPU
from otel_carbon.sensors.base import HostSample
from otel_carbon.sensors.rapl import MAX_JUMP_POWER_W, MIN_RANGE_UJ, probe_rapl

if __package__:
    from .powercap_tree import build_intel_tree
else:
    from powercap_tree import build_intel_tree

pytestmark = pytest.mark.usefixtures("clean_carbon_env")

ADDRESS_SPACE_BYTES = 2 << 30  # far above what the CLI needs, far below a /dev/zero read


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))


def _sensors_cli(root) -> "tuple[dict, list[str]]":
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_CARBON_POWERCAP_ROOT=str(root), OTEL_CARBON_NVML="off")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "otel_carbon.cli", "sensors", "--json"],
            env=env, capture_output=True, text=True, timeout=60, preexec_fn=_cap_memory,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("otel-carbon sensors hung on the powercap tree")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout), [line for line in done.stderr.splitlines() if line.strip()]


def _replace(path, how: str) -> None:
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "dev-zero":
        path.symlink_to("/dev/zero")
    elif how == "directory":
        path.mkdir()
    else:
        path.write_text(how)


@pytest.mark.parametrize("filename", ["energy_uj", "name", "max_energy_range_uj"])
@pytest.mark.parametrize("how", ["fifo", "dev-zero", "directory"])
def test_a_file_that_is_not_a_counter_is_a_diagnostic_and_one_log_line(tmp_path, filename, how):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=False)
    bad = zones["package-1"]
    _replace(bad.path / filename, how)
    report, log_lines = _sensors_cli(root)
    [cpu] = [s for s in report["sensors"] if s["component"] == CPU]
    assert cpu["source"] == "rapl" and cpu["details"]["zones"] == [str(zones["package-0"].path)]
    [diagnostic] = report["unreadable"]
    assert diagnostic["path"].startswith(str(bad.path))
    assert filename in diagnostic["problem"]
    kind = {"fifo": "FIFO", "dev-zero": "character device", "directory": "directory"}[how]
    assert kind in diagnostic["problem"]
    assert [line for line in log_lines if str(bad.path) in line] == log_lines and len(log_lines) == 1, log_lines


@pytest.mark.parametrize("range_text", ["0", "1", str(MIN_RANGE_UJ - 1), str(2**64 + 1), "9" * 30, "-5", "1e12", "０"])
def test_an_implausible_range_skips_the_zone(tmp_path, range_text):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=False)
    _replace(zones["package-1"].path / "max_energy_range_uj", range_text + "\n")
    report, log_lines = _sensors_cli(root)
    [cpu] = [s for s in report["sensors"] if s["component"] == CPU]
    assert cpu["details"]["zones"] == [str(zones["package-0"].path)]
    # the sampler's read interval comes from the plausible zone only
    assert cpu["details"]["max_read_interval_s"] > 1
    assert [d["path"] for d in report["unreadable"]] == [str(zones["package-1"].path)]
    assert len(log_lines) == 1


def test_the_smallest_plausible_range_is_kept(tmp_path):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=1, dram=False, max_range_uj=MIN_RANGE_UJ)
    sensors, diagnostics = probe_rapl(str(root))
    try:
        assert diagnostics == [] and [z.path for s in sensors for z in s.zones] == [str(zones["package-0"].path)]
    finally:
        for s in sensors:
            s.close()


def _sample(t_s: float) -> HostSample:
    return HostSample(t_ns=int(t_s * 1e9), busy_s=0.0, total_s=0.0, n_cpus=1)


@pytest.fixture
def one_package(tmp_path):
    """(the fake zone, the CPU sensor over it) of a one-socket tree with a 2^63 uJ range."""
    root = tmp_path / "powercap"
    zone = build_intel_tree(root, sockets=1, dram=False, max_range_uj=2**63)["package-0"]
    sensors, _ = probe_rapl(str(root))
    [cpu] = sensors
    yield zone, cpu
    cpu.close()


def test_a_forward_jump_beyond_any_plausible_power_is_a_reset(one_package, caplog):
    zone, cpu = one_package
    start = zone.read_uj()
    cpu.read(_sample(10.0))
    zone.write_uj(start + 30_000_000)  # 30 J in 0.05 s: 600 W, plausible
    e1 = cpu.read(_sample(10.05))
    assert e1 == pytest.approx(30.0)
    zone.write_uj(start + 30_000_000 + 10**15)  # +1e9 J in 0.05 s
    with caplog.at_level("WARNING", logger="otel_carbon"):
        e2 = cpu.read(_sample(10.1))
    assert e2 - e1 <= MAX_JUMP_POWER_W * 0.05
    assert cpu.zones[0].resets == 1
    assert any(str(zone.path) in r.getMessage() and "reset" in r.getMessage() for r in caplog.records)
    zone.write_uj(start + 30_000_000 + 10**15 + 2_000_000)  # counting goes on from the new value
    assert cpu.read(_sample(11.1)) == pytest.approx(e2 + 2.0)


def test_a_jump_just_under_the_bound_is_energy(one_package):
    zone, cpu = one_package
    start = zone.read_uj()
    cpu.read(_sample(0.0))
    step_uj = int(0.99 * MAX_JUMP_POWER_W * 1e6)  # in 1 s
    zone.write_uj(start + step_uj)
    assert cpu.read(_sample(1.0)) == pytest.approx(step_uj / 1e6)
    assert cpu.zones[0].resets == 0


@pytest.mark.parametrize("content", ["+12345\n", " 1_000\n", "١٢٣\n", "12345" * 10 + "\n"])
def test_a_counter_that_python_could_parse_but_sysfs_never_writes_is_refused(tmp_path, content):
    root = tmp_path / "powercap"
    zones = build_intel_tree(root, sockets=2, dram=False)
    (zones["package-1"].path / "energy_uj").write_text(content, encoding="utf-8")
    sensors, diagnostics = probe_rapl(str(root))
    try:
        assert [d.path for d in diagnostics] == [str(zones["package-1"].path / "energy_uj")]
    finally:
        for s in sensors:
            s.close()
