"""Memory power estimated from installed RAM when no RAPL dram zone is readable.

Cloud Carbon Footprint's coefficient: 0.000392 kWh per GB-hour, i.e. 0.392 W per GB
(mean of Crucial's 0.375 and Micron's 0.4083 W/GB). The model has no load term, so all of
it is *static* power: ``idle_power_w`` is the whole draw. Spans therefore carry no active
memory energy from this model; with the ``cpu`` idle policy they carry a share of it in
``carbon.energy.idle``.
"""

from __future__ import annotations

from otel_carbon.attributes import MEMORY
from otel_carbon.sensors.constant import ConstantPowerSensor

CCF_MEMORY_KWH_PER_GB_HOUR = 0.000392
W_PER_GB = CCF_MEMORY_KWH_PER_GB_HOUR * 1000.0  # kWh/(GB*h) -> W/GB
BYTES_PER_GB = 1e9


def memory_model_sensor(memory_bytes: int) -> ConstantPowerSensor:
    if memory_bytes <= 0:
        raise ValueError(f"memory_bytes must be > 0, got {memory_bytes!r}")
    power_w = memory_bytes / BYTES_PER_GB * W_PER_GB
    return ConstantPowerSensor(
        power_w=power_w,
        idle_power_w=power_w,
        component=MEMORY,
        name="memory-model",
        source="ccf-memory-model",
        details={"memory_gb": round(memory_bytes / BYTES_PER_GB, 2), "w_per_gb": W_PER_GB},
    )
