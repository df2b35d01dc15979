"""CPU power estimated from host utilisation, when no counter can be read.

Two documented curves; both are fed the host's busy and total CPU seconds of each tick:

* ``ccf`` -- Cloud Carbon Footprint's per-vCPU line: ``P = n_vcpu * (min + u * (max - min))``
  with ``u`` the host utilisation. Its static part ``n_vcpu * min`` is the idle power, and
  the active energy of a tick is exactly ``(max - min) * busy_cpu_seconds``, so the price of
  a CPU-second is constant. min/max per vCPU come from the bundled table (the provider's
  ``Unknown`` row, from ``cloud.provider`` in ``OTEL_RESOURCE_ATTRIBUTES``; the mean of the
  three providers' rows when unknown). Default on virtual machines, where a socket's TDP
  would be shared with other tenants.
* ``tdp`` -- the Teads curve of the CPU's TDP (fraction of TDP at 0/10/50/100 % load:
  0.12/0.32/0.75/1.02, linearly interpolated), for the whole package. Idle power is
  ``0.12 * TDP``. The TDP comes from ``OTEL_CARBON_CPU_TDP_W`` or the bundled table (by
  normalised model name). Default on bare metal when the CPU is in the table.
"""

from __future__ import annotations

import math
import numbers
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from otel_carbon.attributes import CPU, ESTIMATED
from otel_carbon.sensors.base import HostSample, SensorInfo

TEADS_LOAD_PCT = (0.0, 10.0, 50.0, 100.0)
TEADS_TDP_FRACTION = (0.12, 0.32, 0.75, 1.02)


def teads_fraction(load_pct: float) -> float:
    """Fraction of TDP drawn at ``load_pct`` (piecewise linear through the Teads points)."""
    load = min(max(load_pct, 0.0), 100.0)
    for i in range(1, len(TEADS_LOAD_PCT)):
        x0, x1 = TEADS_LOAD_PCT[i - 1], TEADS_LOAD_PCT[i]
        if load <= x1:
            y0, y1 = TEADS_TDP_FRACTION[i - 1], TEADS_TDP_FRACTION[i]
            return y0 + (y1 - y0) * (load - x0) / (x1 - x0)
    return TEADS_TDP_FRACTION[-1]


@dataclass
class _Integrator:
    """Integrates a power curve over ticks; the first read only sets the origin."""

    energy_j: float = 0.0
    last: Optional[HostSample] = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def step(self, sample: HostSample, power: "CpuModelSensor") -> float:
        with self.lock:
            last, self.last = self.last, sample
            if last is not None and sample.t_ns > last.t_ns:
                dt_s = (sample.t_ns - last.t_ns) / 1e9
                busy_s = max(sample.busy_s - last.busy_s, 0.0)
                total_s = max(sample.total_s - last.total_s, 0.0)
                self.energy_j += power.energy_j(dt_s, busy_s, total_s, sample.n_cpus)
            return self.energy_j


@dataclass
class CpuModelSensor:
    """Estimated CPU energy from utilisation; see the module docstring for the curves."""

    curve: str  # "ccf" or "tdp"
    min_w_per_vcpu: float = 0.0
    max_w_per_vcpu: float = 0.0
    tdp_w: float = 0.0
    n_vcpus: int = 1
    params_source: str = ""
    component: str = CPU
    method: str = ESTIMATED
    name: str = "cpu-model"
    _integrator: _Integrator = field(default_factory=_Integrator, repr=False)

    def __post_init__(self) -> None:
        for name in ("min_w_per_vcpu", "max_w_per_vcpu", "tdp_w", "n_vcpus"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not -math.inf < value < math.inf:
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.curve not in ("ccf", "tdp"):
            raise ValueError(f"curve must be 'ccf' or 'tdp', got {self.curve!r}")
        if self.curve == "tdp" and not 0 < self.tdp_w < math.inf:
            raise ValueError(f"tdp_w must be a finite number > 0 W for the tdp curve, got {self.tdp_w!r}")
        if self.curve == "ccf" and not (0 <= self.min_w_per_vcpu <= self.max_w_per_vcpu < math.inf):
            raise ValueError(
                "min_w_per_vcpu and max_w_per_vcpu must satisfy 0 <= min <= max (finite), "
                f"got {self.min_w_per_vcpu!r}, {self.max_w_per_vcpu!r}"
            )
        if self.n_vcpus < 1:
            raise ValueError(f"n_vcpus must be >= 1, got {self.n_vcpus!r}")

    @property
    def idle_power_w(self) -> float:
        if self.curve == "ccf":
            return self.n_vcpus * self.min_w_per_vcpu
        return self.tdp_w * TEADS_TDP_FRACTION[0]

    @property
    def nominal_price_j_per_cpu_s(self) -> float:
        """Active joules per busy CPU-second before the ledger has measured it: exact for
        the ccf line; the slope of the first curve segment for tdp (low load)."""
        if self.curve == "ccf":
            return self.max_w_per_vcpu - self.min_w_per_vcpu
        slope_per_load = (TEADS_TDP_FRACTION[1] - TEADS_TDP_FRACTION[0]) / (TEADS_LOAD_PCT[1] / 100.0)
        return self.tdp_w * slope_per_load / self.n_vcpus

    def energy_j(self, dt_s: float, busy_s: float, total_s: float, n_cpus: int) -> float:
        if self.curve == "ccf":
            return self.n_vcpus * self.min_w_per_vcpu * dt_s + (self.max_w_per_vcpu - self.min_w_per_vcpu) * busy_s
        load_pct = 100.0 * busy_s / total_s if total_s > 0 else 0.0
        return self.tdp_w * teads_fraction(load_pct) * dt_s

    def read(self, sample: HostSample) -> float:
        return self._integrator.step(sample, self)

    def info(self) -> SensorInfo:
        details: Dict[str, object] = {"curve": self.curve, "n_vcpus": self.n_vcpus, "params": self.params_source}
        if self.curve == "ccf":
            details.update(min_w_per_vcpu=self.min_w_per_vcpu, max_w_per_vcpu=self.max_w_per_vcpu)
        else:
            details.update(tdp_w=self.tdp_w, curve_points=list(zip(TEADS_LOAD_PCT, TEADS_TDP_FRACTION)))
        details["idle_power_w"] = round(self.idle_power_w, 3)
        return SensorInfo(self.name, CPU, ESTIMATED, f"{self.curve}-model", details)

    def close(self) -> None:
        pass


# -- parameter lookup -------------------------------------------------------------------

_NOISE = re.compile(r"\((?:r|tm|c)\)|\bcpu\b|\bprocessor\b|@.*$|\b\d+-core\b|\bwith\b.*$", re.I)


def normalise_cpu_name(name: str) -> str:
    """'Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz' -> 'intel xeon platinum 8375c'."""
    text = _NOISE.sub(" ", name)
    return " ".join(text.lower().split())


def lookup_tdp_w(cpu_name: str, table: List[Dict[str, str]]) -> Optional[Tuple[str, float]]:
    """(table model, TDP W) for ``cpu_name``: exact normalised match, else a unique row that
    shares the vendor and the model-number token, else None (no loose guess)."""
    wanted = normalise_cpu_name(cpu_name)
    if not wanted:
        return None
    rows = [(normalise_cpu_name(r["model"]), r) for r in table if r.get("tdp_watts")]
    for norm, row in rows:
        if norm == wanted:
            return row["model"], float(row["tdp_watts"])
    tokens = wanted.split()
    numbered = [t for t in tokens if any(c.isdigit() for c in t) and len(t) >= 3]
    if not numbered:
        return None
    vendor = tokens[0]
    hits = [r for norm, r in rows if norm.split()[:1] == [vendor] and numbered[-1] in norm.split()]
    if len(hits) == 1:
        return hits[0]["model"], float(hits[0]["tdp_watts"])
    return None


def ccf_params(provider: Optional[str], table: List[Dict[str, str]]) -> Tuple[float, float, str]:
    """(min W, max W) per vCPU: the provider's Unknown row, or the mean of all Unknown rows."""
    unknown = [r for r in table if r["microarchitecture"] == "Unknown"]
    chosen = [r for r in unknown if provider and r["provider"] == provider.lower()] or unknown
    min_w = sum(float(r["min_watts_per_vcpu"]) for r in chosen) / len(chosen)
    max_w = sum(float(r["max_watts_per_vcpu"]) for r in chosen) / len(chosen)
    label = "CCF " + ("/".join(r["provider"] for r in chosen)) + " Unknown"
    return min_w, max_w, label


def cpu_model_name(proc_root: str = "/proc") -> str:
    try:
        with open(os.path.join(proc_root, "cpuinfo"), encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor()


def is_virtual_machine(proc_root: str = "/proc") -> bool:
    try:
        with open(os.path.join(proc_root, "cpuinfo"), encoding="utf-8", errors="replace") as fh:
            return any(line.startswith("flags") and " hypervisor" in line for line in fh)
    except OSError:
        return False
