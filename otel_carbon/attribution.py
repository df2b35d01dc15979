"""The attribution function: CPU-seconds and ledger ticks in, figures out.

One pure function prices a span (and a tracked run, and the process's charge in the meter):
:func:`attribute` takes the CPU-seconds to price, the tick current when the work started,
the latest tick and the :class:`Layout` (which components are shown, GPU share, idle policy,
embodied rate) and returns a :class:`Figures`. Nothing here reads a clock, a sensor or a
Python object other than its arguments; the compiled span path (``_speedups.c``) mirrors
:func:`attribute` for layouts without GPU, idle or embodied figures, and a differential test
holds the two to 1e-12 relative.

Rules (see docs/attribution.md):

* each shown component pays ``cpu_s x price`` where the price is the one the process paid
  per CPU-second over the window (:func:`otel_carbon.ledger.prices_between`);
* the GPU share is the ledger's per-open-span energy between the two ticks, plus the latest
  per-span power since the latest tick (:func:`gpu_share_j`);
* idle (policy ``cpu``) pays ``cpu_s x idle price``, embodied ``cpu_s x host wall seconds per
  busy CPU-second x g per second``;
* the total is the components added in layout order, then GPU, then idle (a plain loop,
  not ``sum()``: Python 3.12 changed how ``sum()`` adds floats, and C adds left to right);
  the emissions are ``total x g_per_j`` of the latest tick;
* the method is the latest tick's, unless that tick is stale or CPU time that was spent has
  no price yet: then ``unavailable`` (a missing figure, never 0 J labelled measured).
"""

from __future__ import annotations

from typing import Optional, Tuple

from otel_carbon import attributes as A
from otel_carbon.ledger import Tick, prices_between

#: per-component span attribute for each sensor component that can have active energy
COMPONENT_ATTRIBUTES = {A.CPU: A.ENERGY_CPU, A.MEMORY: A.ENERGY_MEMORY}


class Layout:
    """What a span shows: ``components`` as (attribute name, index in the tick's prices),
    whether it gets a GPU share, the idle share, and the embodied rate (g CO2e per second,
    0 for none). ``compiled``: the compiled span path can price it (no GPU, idle, embodied)."""

    __slots__ = ("components", "gpu", "idle", "embodied_g_per_s", "compiled")

    def __init__(
        self, components: Tuple[Tuple[str, int], ...], gpu: bool = False, idle: bool = False, embodied_g_per_s: float = 0.0
    ) -> None:
        self.components = tuple(components)
        self.gpu = gpu
        self.idle = idle
        self.embodied_g_per_s = embodied_g_per_s
        self.compiled = bool(self.components) and not (gpu or idle or embodied_g_per_s)


def layout_for(sensors: object, gpu: bool, idle: bool, embodied_g_per_s: float) -> Layout:
    """The layout of a sampler's sensors: a component is shown when its sensor can have
    active energy (a static-only model, like memory's, cannot)."""
    components = []
    for i, sensor in enumerate(sensors):  # type: ignore[attr-defined]
        name = COMPONENT_ATTRIBUTES.get(sensor.component)
        if name is not None and sensor.idle_power_w < getattr(sensor, "power_w", float("inf")):
            components.append((name, i))
    return Layout(tuple(components), gpu, idle, embodied_g_per_s)


class Figures:
    """A span's (or run's) figures: joules per shown component (layout order), GPU and idle
    joules (None when not in the layout), total joules, g CO2e, embodied g (None when not
    configured) and the method."""

    __slots__ = ("cpu_s", "energy_j", "gpu_j", "idle_j", "total_j", "emissions_g", "embodied_g", "method")

    def __init__(
        self,
        cpu_s: float,
        energy_j: Tuple[float, ...],
        gpu_j: Optional[float],
        idle_j: Optional[float],
        total_j: float,
        emissions_g: float,
        embodied_g: Optional[float],
        method: str,
    ) -> None:
        self.cpu_s = cpu_s
        self.energy_j = energy_j
        self.gpu_j = gpu_j
        self.idle_j = idle_j
        self.total_j = total_j
        self.emissions_g = emissions_g
        self.embodied_g = embodied_g
        self.method = method


def gpu_share_j(start: Optional[Tick], tick: Tick, since_tick_ns: int, wall_ns: Optional[int] = None) -> float:
    """A span's share of the process's GPU energy: the per-open-span energy between the
    start and latest ticks, plus the latest per-span power for ``since_tick_ns`` (monotonic
    time since the latest tick). A span that started after the latest tick pays for its own
    wall duration ``wall_ns`` at most (wall clocks can jump; a span that started before the
    first tick pays from the first tick on)."""
    since_ns = max(since_tick_ns, 0)
    if start is tick:
        if wall_ns is not None:
            since_ns = min(max(wall_ns, 0), since_ns)
        return tick.gpu_per_span_w * since_ns / 1e9
    start_j = start.gpu_per_span_j if start is not None else 0.0
    return max(tick.gpu_per_span_j - start_j, 0.0) + tick.gpu_per_span_w * since_ns / 1e9


def attribute(
    cpu_s: float,
    start: Optional[Tick],
    tick: Tick,
    layout: Layout,
    stale: bool = False,
    gpu_j: float = 0.0,
) -> Figures:
    """Price ``cpu_s`` CPU-seconds of work that started at tick ``start`` (None: before
    the first) and is priced now, with ``tick`` the latest. ``stale``: the latest tick is
    too old to trust. ``gpu_j``: the GPU energy to add when the layout has a GPU (a span's
    share, :func:`gpu_share_j`, or a run's whole process energy)."""
    source = tick if (start is tick or start is None) else prices_between(start, tick)
    prices = source.price_j_per_cpu_s
    energy = tuple(cpu_s * prices[i] for _, i in layout.components)
    total_j = 0.0
    for energy_j in energy:
        total_j += energy_j
    if layout.gpu:
        total_j += gpu_j
    idle_j = None
    if layout.idle:
        idle_j = cpu_s * source.idle_price_j_per_cpu_s
        total_j += idle_j
    embodied_g = cpu_s * source.wall_s_per_busy_s * layout.embodied_g_per_s if layout.embodied_g_per_s else None
    if stale or (cpu_s > 0 and not total_j > 0):  # no price yet for CPU time that was spent
        method = A.UNAVAILABLE
    else:
        method = tick.method
    return Figures(cpu_s, energy, gpu_j if layout.gpu else None, idle_j, total_j, total_j * tick.g_per_j, embodied_g, method)
