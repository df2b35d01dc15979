"""Which sensors exist here: real counters first, models as the fallback. Cached.

Order per component:

* ``OTEL_CARBON_POWER_W`` set: one constant sensor for the whole host (no CPU/memory probe).
* CPU: RAPL package zones, else the CPU model (:mod:`.cpu_model`).
* Memory: RAPL dram zones, else the memory model (:mod:`.memory_model`).
* GPU: one sensor per NVIDIA device NVML can read (none when NVML is absent or off).

Everything that could not be read is kept as a :class:`Diagnostic` for ``otel-carbon
sensors``; nothing here raises into the application.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any, List, Optional

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon.attributes import CPU, MEMORY
from otel_carbon.host_cpu import logical_cpus, total_memory_bytes
from otel_carbon.sensors.base import Diagnostic, Sensor
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.cpu_model import CpuModelSensor, ccf_params, cpu_model_name, is_virtual_machine, lookup_tdp_w
from otel_carbon.sensors.memory_model import memory_model_sensor
from otel_carbon.sensors.rapl import Opener, _default_opener, probe_rapl

_logger = logging.getLogger("otel_carbon")


@dataclass
class Probe:
    """The sensors in use, the GPU sensors among them, and what could not be read."""

    sensors: List[Sensor] = field(default_factory=list)  # cpu / memory, then gpus
    diagnostics: List[Diagnostic] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def gpus(self) -> List[Any]:
        return [s for s in self.sensors if s.component == "gpu"]

    def close(self) -> None:
        for sensor in self.sensors:
            try:
                sensor.close()
            except Exception:  # noqa: BLE001 - closing must never raise
                pass


def cloud_provider_from_env() -> Optional[str]:
    """``cloud.provider`` from ``OTEL_RESOURCE_ATTRIBUTES`` (aws, gcp, azure), if set."""
    for item in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == "cloud.provider" and value.strip():
            return value.strip().lower()
    return None


def cpu_model_sensor(proc_root: str = "/proc") -> CpuModelSensor:
    """The CPU model for this host, chosen as documented in :mod:`.cpu_model`."""
    from otel_carbon.data import load_table

    n_vcpus = logical_cpus()
    choice = config.env_choice(config.OTEL_CARBON_CPU_MODEL, "auto", "auto", "ccf", "tdp")
    tdp_env = config.env_number(config.OTEL_CARBON_CPU_TDP_W, None)
    name = cpu_model_name(proc_root)
    if choice != "ccf":
        if tdp_env is not None:
            return CpuModelSensor("tdp", tdp_w=tdp_env, n_vcpus=n_vcpus, params_source=config.OTEL_CARBON_CPU_TDP_W)
        found = None if (choice == "auto" and is_virtual_machine(proc_root)) else lookup_tdp_w(name, load_table("cpu_tdp"))
        if found is not None:
            model, tdp_w = found
            return CpuModelSensor("tdp", tdp_w=tdp_w, n_vcpus=n_vcpus, params_source=f"cpu_tdp table: {model}")
        if choice == "tdp":
            tdp_w = 85.0  # CodeCarbon's POWER_CONSTANT when no TDP is known
            return CpuModelSensor("tdp", tdp_w=tdp_w, n_vcpus=n_vcpus, params_source=f"{name!r} not in table: 85 W default")
    min_w, max_w, label = ccf_params(cloud_provider_from_env(), load_table("cpu_power_model"))
    return CpuModelSensor("ccf", min_w_per_vcpu=min_w, max_w_per_vcpu=max_w, n_vcpus=n_vcpus, params_source=label)


def _gpu_sensors(probe: Probe) -> None:
    try:
        from otel_carbon.sensors.nvml import probe_nvml

        gpus, diagnostics = probe_nvml()
    except Exception as exc:  # noqa: BLE001 - a broken GPU stack must not stop the rest
        probe.diagnostics.append(Diagnostic("nvml", f"GPU probe failed: {exc!r}", "GPU energy not measured"))
        return
    probe.sensors.extend(gpus)
    probe.diagnostics.extend(diagnostics)


def probe_sensors(
    powercap_root: Optional[str] = None,
    proc_root: str = "/proc",
    opener: Opener = _default_opener,
    gpus: bool = True,
) -> Probe:
    """Probe the host now (uncached). Arguments exist so tests can point at fake trees."""
    probe = Probe()
    constant_w = config.env_number(config.OTEL_CARBON_POWER_W, None)
    idle_w = config.env_number(config.OTEL_CARBON_IDLE_POWER_W, None)
    if constant_w is not None:
        idle = min(idle_w or 0.0, constant_w)
        if idle_w is not None and idle_w > constant_w:
            warn_once(
                _logger,
                "idle-above-constant",
                "%s=%g W is above %s=%g W: using %g W (all of the draw is idle)",
                config.OTEL_CARBON_IDLE_POWER_W,
                idle_w,
                config.OTEL_CARBON_POWER_W,
                constant_w,
                constant_w,
            )
        probe.sensors.append(ConstantPowerSensor(power_w=constant_w, idle_power_w=idle))
        probe.notes.append(f"{config.OTEL_CARBON_POWER_W}={constant_w:g} W replaces the CPU and memory sensors")
    else:
        root = powercap_root if powercap_root is not None else config.powercap_root()
        rapl, diagnostics = probe_rapl(root, opener)
        probe.diagnostics.extend(diagnostics)
        if not rapl and not os.path.isdir(root):
            probe.notes.append(f"no RAPL: {root} does not exist (virtual machine or non-Linux host)")
        by_component = {s.component: s for s in rapl}
        if rapl and diagnostics:
            probe.notes.append(
                "some RAPL zones could not be read (see below): the measured figures cover only the readable ones"
            )
        cpu = by_component.get(CPU)
        if cpu is not None:
            cpu.idle_power_w = idle_w or 0.0
            probe.sensors.append(cpu)
        else:
            probe.sensors.append(cpu_model_sensor(proc_root))
        memory = by_component.get(MEMORY)
        probe.sensors.append(memory if memory is not None else memory_model_sensor(total_memory_bytes()))
    if gpus:
        _gpu_sensors(probe)
    return probe


_cached: Optional[Probe] = None
_cache_lock = threading.Lock()


def get_probe() -> Probe:
    """The process-wide probe, made once (sensor files stay open for the sampler)."""
    global _cached
    with _cache_lock:
        if _cached is None:
            _cached = probe_sensors()
        return _cached


def _reset_probe_cache() -> None:
    """Forget the cached probe (tests, and after the sampler is shut down for good)."""
    global _cached
    with _cache_lock:
        if _cached is not None:
            _cached.close()
        _cached = None
