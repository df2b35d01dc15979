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
CPU_TIME = "carbon.cpu.time"  # s, CPU time of the span's own work (wherever it ran)
CPU_OFFLOADED = "carbon.cpu.offloaded"  # s, the part of carbon.cpu.time that ran on other threads
EMISSIONS = "carbon.emissions"  # g CO2e
INTENSITY = "carbon.intensity"  # g CO2e / kWh
ZONE = "carbon.zone"  # where the intensity comes from: FR, US-CA, aws:eu-west-1, world
METHOD = "carbon.method"  # measured | estimated | mixed | unavailable
EMBODIED = "carbon.embodied"  # g CO2e, share of the host's embodied carbon (when configured)
CPU_CLOCK = "carbon.cpu.clock"  # thread | task | other_thread | none: how carbon.cpu.time was read

SPAN_ATTRIBUTES = {
    ENERGY_TOTAL: ("double", "J"),
    ENERGY_CPU: ("double", "J"),
    ENERGY_MEMORY: ("double", "J"),
    ENERGY_GPU: ("double", "J"),
    ENERGY_IDLE: ("double", "J"),
    CPU_TIME: ("double", "s"),
    CPU_OFFLOADED: ("double", "s"),
    EMISSIONS: ("double", "g"),
    INTENSITY: ("double", "g/kWh"),
    ZONE: ("string", ""),
    METHOD: ("string", ""),
    CPU_CLOCK: ("string", ""),
    EMBODIED: ("double", "g"),
}

# -- tracked runs (the tracking API and ``otel-carbon run``) -----------------------------
# A tracked run is a span like any other: ``carbon.energy.*`` on it is the span's own share,
# so sums over spans never count anything twice. When the run's scope is wider than the
# span (``process``: the whole process's CPU time while the run was open; ``machine``:
# everything the host drew), the run's figures at that scope ride along as ``carbon.run.*``.
RUN_SCOPE = "carbon.run.scope"  # span | process | machine | process_tree
RUN_ENERGY_TOTAL = "carbon.run.energy.total"  # J
RUN_ENERGY_CPU = "carbon.run.energy.cpu"  # J
RUN_ENERGY_MEMORY = "carbon.run.energy.memory"  # J
RUN_ENERGY_GPU = "carbon.run.energy.gpu"  # J
RUN_ENERGY_IDLE = "carbon.run.energy.idle"  # J
RUN_CPU_TIME = "carbon.run.cpu.time"  # s
RUN_EMISSIONS = "carbon.run.emissions"  # g CO2e
RUN_ID = "carbon.run.id"  # the run_id of the emissions.csv row

RUN_ATTRIBUTES = {
    RUN_SCOPE: ("string", ""),
    RUN_ENERGY_TOTAL: ("double", "J"),
    RUN_ENERGY_CPU: ("double", "J"),
    RUN_ENERGY_MEMORY: ("double", "J"),
    RUN_ENERGY_GPU: ("double", "J"),
    RUN_ENERGY_IDLE: ("double", "J"),
    RUN_CPU_TIME: ("double", "s"),
    RUN_EMISSIONS: ("double", "g"),
    RUN_ID: ("string", ""),
}

SCOPE_SPAN = "span"
SCOPE_PROCESS = "process"
SCOPE_MACHINE = "machine"
SCOPE_PROCESS_TREE = "process_tree"  # otel-carbon run over a non-Python command
SCOPES = (SCOPE_SPAN, SCOPE_PROCESS, SCOPE_MACHINE)

# -- values -------------------------------------------------------------------------
MEASURED = "measured"
ESTIMATED = "estimated"
MIXED = "mixed"
UNAVAILABLE = "unavailable"

# Component names double as ``hw.type`` values of the hardware semantic conventions.
CPU = "cpu"
MEMORY = "memory"
GPU = "gpu"

#: each per-component energy attribute of a span, by the component (or "idle") it holds
ENERGY_BY_COMPONENT = {CPU: ENERGY_CPU, MEMORY: ENERGY_MEMORY, GPU: ENERGY_GPU, "idle": ENERGY_IDLE}

# -- units --------------------------------------------------------------------------
JOULES_PER_KWH = 3.6e6

# -- metrics (the meter, otel_carbon/metrics.py) --------------------------------------
# Units are SI strings in the instrument's ``unit``; the Prometheus exporter turns J, W and g
# into ``_joules``, ``_watts`` and ``_grams`` suffixes (counters also get ``_total``).
UNIT_J = "J"
UNIT_W = "W"
UNIT_G = "g"
UNIT_G_PER_KWH = "g/kWh"

# Hardware, following the semantic conventions (hw.* metrics).
HW_ENERGY = "hw.energy"  # counter, J, per component since the sampler started
HW_POWER = "hw.power"  # gauge, W, per component over the last second
HW_HOST_ENERGY = "hw.host.energy"  # counter, J, all components we read
HW_HOST_POWER = "hw.host.power"  # gauge, W, all components we read
HW_TYPE = "hw.type"  # cpu | memory | gpu (the component names above)
HW_ID = "hw.id"  # the sensor: rapl-cpu, cpu-model, memory-model, gpu0 ...
HW_NAME = "hw.name"  # what it is: rapl, ccf-model, the GPU's product name ...
HOST_ID = "host"  # hw.id of the hw.host.* metrics

# Host energy split into active (priced per busy CPU-second) and idle (static) energy.
HOST_ENERGY = "carbon.host.energy"  # counter, J, with hw.type and carbon.power.state
POWER_STATE = "carbon.power.state"  # active | idle
ACTIVE = "active"
IDLE = "idle"

# This process: the active energy it was charged, and the CO2e of it.
PROCESS_ENERGY = "carbon.process.energy"  # counter, J, with hw.type and carbon.method
PROCESS_EMISSIONS = "carbon.process.emissions"  # counter, g CO2e, with carbon.method

# Grid intensity in use.
GRID_INTENSITY = "carbon.grid.intensity"  # gauge, g CO2e/kWh, with carbon.zone
#: counter: sampler intervals longer than a counter's wrap period at the highest plausible
#: power (the sampler was starved); energy in them may be short by whole counter ranges
SAMPLER_GAPS = "carbon.sampler.gaps"
UNIT_GAPS = "{gap}"
#: counter, s: CPU time of work handed off by spans that ended before the work did
#: (fire-and-forget); charged to no span, so part of the process's unattributed energy
OFFLOAD_LATE = "carbon.offload.late"
UNIT_S = "s"

# Per span, with low-cardinality attributes only: sums kept by the meter, published at
# collection time (asynchronous counters; see otel_carbon/metrics/_spans.py).
SPAN_ENERGY = "carbon.span.energy"  # counter, J (sum of carbon.energy.total of the spans)
SPAN_EMISSIONS = "carbon.span.emissions"  # counter, g CO2e (sum of carbon.emissions)
SPAN_COUNT = "carbon.span.count"  # counter, {span}: spans summed into the two above
#: histogram, J, one value per span (opt-in: OTEL_CARBON_METRIC_HISTOGRAM=on)
SPAN_ENERGY_DISTRIBUTION = "carbon.span.energy_distribution"
#: counter, {span}: spans whose attribute set was folded into the overflow set (cardinality cap)
SPAN_OVERFLOW = "carbon.span.overflow"
UNIT_SPANS = "{span}"
#: the attribute of the overflow set (the name the OpenTelemetry SDKs use for theirs)
METRIC_OVERFLOW = "otel.metric.overflow"
SPAN_NAME = "span.name"  # the span's name, as the collector's spanmetrics connector calls it
HTTP_ROUTE = "http.route"
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_METHOD_OLD = "http.method"  # pre-1.0 HTTP conventions; reported as http.request.method
RPC_SERVICE = "rpc.service"
RPC_METHOD = "rpc.method"
DEFAULT_METRIC_SPAN_ATTRIBUTES = (HTTP_ROUTE, HTTP_REQUEST_METHOD, RPC_SERVICE, RPC_METHOD)

METRICS = {
    HW_ENERGY: ("counter", UNIT_J),
    HW_POWER: ("gauge", UNIT_W),
    HW_HOST_ENERGY: ("counter", UNIT_J),
    HW_HOST_POWER: ("gauge", UNIT_W),
    HOST_ENERGY: ("counter", UNIT_J),
    PROCESS_ENERGY: ("counter", UNIT_J),
    PROCESS_EMISSIONS: ("counter", UNIT_G),
    GRID_INTENSITY: ("gauge", UNIT_G_PER_KWH),
    SAMPLER_GAPS: ("counter", UNIT_GAPS),
    OFFLOAD_LATE: ("counter", UNIT_S),
    SPAN_ENERGY: ("counter", UNIT_J),
    SPAN_EMISSIONS: ("counter", UNIT_G),
    SPAN_COUNT: ("counter", UNIT_SPANS),
    SPAN_OVERFLOW: ("counter", UNIT_SPANS),
    SPAN_ENERGY_DISTRIBUTION: ("histogram", UNIT_J),
}
