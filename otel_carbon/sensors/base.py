"""The sensor protocol: cumulative joules per component, measured or estimated.

A sensor is polled only by the sampler thread, never on a span's path. ``read`` returns
the cumulative energy in joules since an arbitrary origin (the sensor handles counter
wraparound itself) and may raise: the sampler marks the sensor unavailable for that tick
and goes on. Model sensors integrate power from the host's CPU times, which the sampler
reads in the same tick and passes in as :class:`HostSample`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Protocol


class HostSample(NamedTuple):
    """What the sampler read in one tick, besides the sensors (a NamedTuple: cheap to make
    on every tick)."""

    t_ns: int  # monotonic clock
    busy_s: float  # host CPU seconds spent busy (all CPUs), cumulative
    total_s: float  # host CPU seconds in all states (all CPUs), cumulative
    n_cpus: int


@dataclass
class SensorInfo:
    """What ``otel-carbon sensors`` shows for one sensor."""

    name: str
    component: str  # cpu | memory | gpu
    method: str  # measured | estimated
    source: str  # e.g. "rapl", "nvml", "ccf-model"
    details: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Diagnostic:
    """A counter that could not be read, why, and how to fix it."""

    path: str
    problem: str
    fix: str = ""


class Sensor(Protocol):
    """One source of cumulative energy for one component."""

    component: str  # cpu | memory | gpu
    method: str  # measured | estimated
    name: str
    #: static power of this component that is not caused by work (W); 0 when unknown.
    idle_power_w: float

    def read(self, sample: HostSample) -> float:
        """Cumulative energy in joules. May raise; never blocks for long."""
        ...

    def info(self) -> SensorInfo: ...

    def close(self) -> None: ...


class GpuSensor(Sensor, Protocol):
    """A GPU also reports which fraction of its work belongs to this process."""

    def process_share(self, pid: int) -> Optional[float]:
        """0..1 share of the device's energy this process caused, None when unknown."""
        ...


def describe(sensors: List[Sensor]) -> List[SensorInfo]:
    return [s.info() for s in sensors]


class SensorError(Exception):
    """A sensor could not be read this tick (vendor errors are translated to this)."""
