"""The attribution function: CPU-seconds and ledger ticks in, figures out.

One pure function prices a span (and a tracked run, and the process's charge in the meter):
:func:`attribute` takes the CPU-seconds to price, the tick current when the work started,
the latest tick and the :class:`Layout` (which components are shown, GPU share, idle policy,
embodied rate) and returns a :class:`Figures`. Nothing here reads a clock, a sensor or a
Python object other than its arguments; the compiled span path (``_speedups.c``) mirrors
:func:`attribute` for work priced by the tick it started in (any layout), and a differential
test holds the two to 1e-12 relative.

Rules (see docs/attribution.md):

* each shown component pays ``cpu_s x price`` where the price is the one the process paid
  per CPU-second over the window (:func:`prices_between`); the ledger charges the process
  each interval with the same rule (:func:`charge`), so spans and charges use one price;
* the GPU share is the ledger's per-open-span energy between the two ticks, plus the latest
  per-span power since the latest tick (:func:`gpu_share_j`);
* idle (policy ``cpu``) pays ``cpu_s x idle price``, embodied ``cpu_s x host wall seconds per
  busy CPU-second x g per second``;
* the total is the components added in layout order, then GPU, then idle (a plain loop,
  not ``sum()``: Python 3.12 changed how ``sum()`` adds floats, and C adds left to right:
  :func:`total_j`); the emissions are ``total x g_per_j`` of the latest tick
  (:func:`emissions_g`: the one emissions formula, PUE included in ``g_per_j``);
* the method is the latest tick's, unless that tick is stale or CPU time that was spent has
  no price yet: then ``unavailable`` (a missing figure, never 0 J labelled measured).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Sequence, Tuple, Union

from otel_carbon import attributes as A

if TYPE_CHECKING:  # the ledger builds on this module (its charge), not the other way
    from otel_carbon.ledger import Tick

MIN_WINDOW_PROC_S = 0.01  # below this much process CPU time a window price is not trusted

#: per-component span attribute for each sensor component that can have active energy
COMPONENT_ATTRIBUTES = {A.CPU: A.ENERGY_CPU, A.MEMORY: A.ENERGY_MEMORY}


class Layout:
    """What a span shows: ``components`` as (attribute name, index in the tick's prices),
    whether it gets a GPU share, the idle share, and the embodied rate (g CO2e per second,
    0 for none). ``compiled``: the compiled span path can price it (it shows a component)."""

    __slots__ = ("components", "gpu", "idle", "embodied_g_per_s", "compiled")

    def __init__(
        self, components: Tuple[Tuple[str, int], ...], gpu: bool = False, idle: bool = False, embodied_g_per_s: float = 0.0
    ) -> None:
        self.components = tuple(components)
        self.gpu = gpu
        self.idle = idle
        self.embodied_g_per_s = embodied_g_per_s
        self.compiled = bool(self.components)


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


def total_j(energies_j: Iterable[float]) -> float:
    """Joules added left to right (a plain loop, as C adds; not ``sum()``)."""
    total = 0.0
    for energy_j in energies_j:
        total += energy_j
    return total


def emissions_g(energy_j: float, g_per_j: float) -> float:
    """g CO2e of ``energy_j`` joules at ``g_per_j`` (g per joule, PUE included: a tick's
    ``g_per_j``, an intensity's ``g_per_joule``). The one emissions formula."""
    return energy_j * g_per_j


def method_of(tick: "Tick", stale: bool, cpu_s: float = 0.0, energy_j: float = 0.0) -> str:
    """The latest tick's method, or ``unavailable`` when that tick is stale or CPU time that
    was spent has no price yet (a missing figure, never 0 J labelled measured)."""
    if stale or (cpu_s > 0 and not energy_j > 0):
        return A.UNAVAILABLE
    return tick.method  # type: ignore[no-any-return]


class WindowPrices:
    """Prices over a window of several ticks (the same names as a Tick's)."""

    __slots__ = ("price_j_per_cpu_s", "idle_price_j_per_cpu_s", "wall_s_per_busy_s")

    def __init__(self, price: Sequence[float], idle_price: float, wall_per_busy: float) -> None:
        self.price_j_per_cpu_s = price
        self.idle_price_j_per_cpu_s = idle_price
        self.wall_s_per_busy_s = wall_per_busy


def prices_between(start: Optional["Tick"], tick: "Tick") -> "Union[Tick, WindowPrices]":
    """The prices the process paid per CPU-second from ``start`` to ``tick``.

    An interval is charged at the prices of the tick that opens it (:func:`charge`), so: the
    same tick (or no start) gives the latest tick's prices; adjacent ticks give the start
    tick's; a longer window gives charged energy over process CPU time between the two
    (spans, trackers and the process's charge then all use one price). A window with too
    little process CPU time to trust falls back to the latest tick's trailing prices.
    """
    if start is None or start is tick:
        return tick
    if tick.seq - start.seq == 1:
        return start
    d_proc = tick.proc_cpu_s - start.proc_cpu_s
    if d_proc > MIN_WINDOW_PROC_S and len(start.charged_by_j) == len(tick.charged_by_j):
        window = [(b - a) / d_proc for a, b in zip(start.charged_by_j, tick.charged_by_j)]
        if min(window, default=0.0) >= 0:
            return WindowPrices(
                window,
                max((tick.charged_idle_j - start.charged_idle_j) / d_proc, 0.0),
                max((tick.charged_wall_s - start.charged_wall_s) / d_proc, 0.0),
            )
    return tick


def charge(cpu_s: float, prices: "Union[Tick, WindowPrices]") -> Tuple[Tuple[float, ...], float, float, float]:
    """What ``cpu_s`` CPU-seconds of the process cost at ``prices`` (the ledger's charge for
    one interval, at the prices of the tick that opens it): joules per component, their
    total (``cpu_s x`` the prices added left to right: one product, as the compiled tick
    computes it), idle joules at the idle price, and the host wall seconds they stand for."""
    price = prices.price_j_per_cpu_s
    energy = tuple(cpu_s * p for p in price)
    return energy, cpu_s * total_j(price), cpu_s * prices.idle_price_j_per_cpu_s, cpu_s * prices.wall_s_per_busy_s


def process_charge(tick: "Tick") -> Figures:
    """Everything charged to the process up to ``tick`` (cumulative since the sampler
    started): active joules per ledger component, its GPU energy, idle joules at the idle
    price, the total (active + GPU) and its CO2e at the tick's intensity."""
    total = total_j((tick.charged_j, tick.gpu_proc_j))
    return Figures(
        tick.proc_cpu_s, tick.charged_by_j, tick.gpu_proc_j, tick.charged_idle_j, total,
        emissions_g(total, tick.g_per_j), None, tick.method,
    )  # fmt: skip


def gpu_share_j(start: Optional["Tick"], tick: "Tick", since_tick_ns: int, wall_ns: Optional[int] = None) -> float:
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
    start: Optional["Tick"],
    tick: "Tick",
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
    idle_j = cpu_s * source.idle_price_j_per_cpu_s if layout.idle else None
    parts = energy
    if layout.gpu:
        parts += (gpu_j,)
    if idle_j is not None:
        parts += (idle_j,)
    total = total_j(parts)
    embodied_g = cpu_s * source.wall_s_per_busy_s * layout.embodied_g_per_s if layout.embodied_g_per_s else None
    return Figures(
        cpu_s, energy, gpu_j if layout.gpu else None, idle_j, total, emissions_g(total, tick.g_per_j), embodied_g,
        method_of(tick, stale, cpu_s, total),
    )  # fmt: skip


def span_attributes(figures: Figures, layout: Layout, tick: "Tick", clock: str, offloaded_s: float) -> "dict[str, object]":
    """The carbon attributes of a span priced as ``figures`` (``clock``: what timed its own
    CPU time; ``offloaded_s``: the part of it that ran on other threads, shown when > 0)."""
    values: "dict[str, object]" = {A.CPU_TIME: figures.cpu_s, A.CPU_CLOCK: clock}
    for (name, _), energy_j in zip(layout.components, figures.energy_j):
        values[name] = energy_j
    if figures.gpu_j is not None:
        values[A.ENERGY_GPU] = figures.gpu_j
    if figures.idle_j is not None:
        values[A.ENERGY_IDLE] = figures.idle_j
    if figures.embodied_g is not None:
        values[A.EMBODIED] = figures.embodied_g
    values[A.ENERGY_TOTAL] = figures.total_j
    values[A.EMISSIONS] = figures.emissions_g
    values[A.INTENSITY] = tick.intensity.g_per_kwh
    values[A.ZONE] = tick.intensity.zone
    values[A.METHOD] = figures.method
    if offloaded_s:
        values[A.CPU_OFFLOADED] = offloaded_s
    return values
