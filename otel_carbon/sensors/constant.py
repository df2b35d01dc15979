"""Constant power: a draw the user knows (``OTEL_CARBON_POWER_W``) or a static model.

As the user's figure it stands for the whole host (reported as the ``cpu`` component) and
replaces the CPU and memory sensors; ``idle_power_w`` is ``OTEL_CARBON_IDLE_POWER_W`` when
set, else 0, so all of the draw is priced per busy CPU-second. The memory model is the same
integrator with all of its power static (see :mod:`otel_carbon.sensors.memory_model`).
"""

from __future__ import annotations

import math
import numbers
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from otel_carbon.attributes import CPU, ESTIMATED
from otel_carbon.sensors.base import HostSample, SensorInfo


@dataclass
class ConstantPowerSensor:
    power_w: float
    idle_power_w: float = 0.0
    component: str = CPU
    method: str = ESTIMATED
    name: str = "constant-power"
    source: str = "constant"
    details: Dict[str, Any] = field(default_factory=dict)
    _energy_j: float = 0.0
    _last_t_ns: Optional[int] = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for name in ("power_w", "idle_power_w"):
            if not isinstance(getattr(self, name), numbers.Real):
                raise ValueError(f"{name} must be a number of watts, got {getattr(self, name)!r}")
        if not 0 < self.power_w < math.inf:
            raise ValueError(f"power_w must be a finite number > 0 W, got {self.power_w!r}")
        if not 0 <= self.idle_power_w <= self.power_w:
            raise ValueError(f"idle_power_w must be between 0 and power_w ({self.power_w} W), got {self.idle_power_w!r}")

    def read(self, sample: HostSample) -> float:
        with self._lock:
            if self._last_t_ns is not None and sample.t_ns > self._last_t_ns:
                self._energy_j += self.power_w * (sample.t_ns - self._last_t_ns) / 1e9
            self._last_t_ns = sample.t_ns
            return self._energy_j

    def info(self) -> SensorInfo:
        details = {"power_w": round(self.power_w, 3), "idle_power_w": round(self.idle_power_w, 3), **self.details}
        return SensorInfo(self.name, self.component, self.method, self.source, details)

    def close(self) -> None:
        pass
