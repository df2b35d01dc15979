"""Attribute and metric names with their units: the one place they are spelled.

Span attributes live under the ``carbon.`` namespace (there is no semantic convention
for carbon). Hardware metrics follow the ``hw.*`` semantic conventions. A name is never
both a namespace and a leaf (hence ``carbon.energy.total``, not ``carbon.energy``).
"""

from __future__ import annotations

# -- span attributes ----------------------------------------------------------------
ENERGY_TOTAL = "carbon.energy.total"  # J, all components (plus idle when allocated)
ENERGY_CPU = "carbon.energy.cpu"  # J, active CPU energy
ENERGY_MEMORY = "carbon.energy.memory"  # J, active memory (DRAM) energy
ENERGY_GPU = "carbon.energy.gpu"  # J, the span's share of the process's GPU energy
ENERGY_IDLE = "carbon.energy.idle"  # J, share of static power (only with idle policy "cpu")
CPU_TIME = "carbon.cpu.time"  # s, CPU time of the span's own work
EMISSIONS = "carbon.emissions"  # g CO2e
INTENSITY = "carbon.intensity"  # g CO2e / kWh
ZONE = "carbon.zone"  # where the intensity comes from: FR, US-CA, aws:eu-west-1, world
METHOD = "carbon.method"  # measured | estimated | mixed | unavailable
CPU_CLOCK = "carbon.cpu.clock"  # thread | task | other_thread | none: how carbon.cpu.time was read

SPAN_ATTRIBUTES = {
    ENERGY_TOTAL: ("double", "J"),
    ENERGY_CPU: ("double", "J"),
    ENERGY_MEMORY: ("double", "J"),
    ENERGY_GPU: ("double", "J"),
    ENERGY_IDLE: ("double", "J"),
    CPU_TIME: ("double", "s"),
    EMISSIONS: ("double", "g"),
    INTENSITY: ("double", "g/kWh"),
    ZONE: ("string", ""),
    METHOD: ("string", ""),
    CPU_CLOCK: ("string", ""),
}

# -- values -------------------------------------------------------------------------
MEASURED = "measured"
ESTIMATED = "estimated"
MIXED = "mixed"
UNAVAILABLE = "unavailable"

# Component names double as ``hw.type`` values of the hardware semantic conventions.
CPU = "cpu"
MEMORY = "memory"
GPU = "gpu"

# -- units --------------------------------------------------------------------------
JOULES_PER_KWH = 3.6e6
