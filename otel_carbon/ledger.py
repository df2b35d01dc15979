"""The energy ledger: a bounded history of sampler ticks with running totals.

Every :class:`Tick` carries *cumulative* figures since the sampler started, so the energy
of any window is a difference of two ticks: a span keeps a reference to the tick current
at its start, and at its end pays for ``[start tick, latest tick]`` in O(1), however long
it ran. The history (a ring of ``capacity`` ticks) is only needed for :meth:`Ledger.window`
queries at arbitrary times.

Active and idle energy (the split this package makes, documented in docs/attribution.md):

* Each component (``cpu``, ``memory``) has an idle power ``idle_power_w`` from its sensor:
  the model's static term, ``OTEL_CARBON_IDLE_POWER_W`` for measured counters, else 0.
* Per tick interval, ``idle = min(energy, idle_power_w * dt)`` and ``active = energy - idle``.
* Active energy is work. Its *price* is active joules per busy host CPU-second
  (``active / busy``) -- host-wide, so processes on one host split the host's energy
  consistently without talking to each other. Idle energy is never folded into a
  component's active figure; it has its own price per busy CPU-second for the ``cpu``
  idle policy.
* Prices are taken over a trailing window of at least :data:`PRICE_WINDOW_NS` so the 10 ms
  granularity of ``/proc/stat`` does not swing them.
* The process is *charged* ``process CPU-seconds x price`` each interval
  (:func:`otel_carbon.attribution.charge`, the rule that prices spans). A span pays the
  same price per CPU-second the process paid over the span's window (``charged`` over
  ``proc_cpu_s`` between the two ticks), so spans and charges use one price; conservation
  (spans + unattributed = charged) is checked against ``charged_j`` (per component:
  ``charged_by_j``, which the meter reports as the process's energy).
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Sequence, Tuple

from otel_carbon.attribution import charge
from otel_carbon.intensity.model import Intensity

PRICE_WINDOW_NS = 1_000_000_000
MAX_PRICE_WINDOW_NS = 10 * PRICE_WINDOW_NS  # an idle host looks back at most this far
MIN_PRICE_BUSY_S = 1e-3  # below this much busy CPU time a window's price is not trusted
MAX_CAPACITY = 10_000_000  # ticks (about 11 days at 0.1 s)


class Tick:
    """One sampler reading with cumulative totals. Immutable once appended."""

    __slots__ = (
        "t_ns",
        "energy_j",
        "active_j",
        "idle_j",
        "busy_s",
        "total_s",
        "proc_cpu_s",
        "price_j_per_cpu_s",
        "idle_price_j_per_cpu_s",
        "charged_j",
        "charged_by_j",
        "charged_idle_j",
        "wall_s_per_busy_s",
        "charged_wall_s",
        "seq",
        "gpu_proc_j",
        "gpu_per_span_j",
        "gpu_per_span_w",
        "gpu_unattributed_j",
        "intensity",
        "g_per_j",
        "method",
    )

    def __init__(
        self,
        t_ns: int,
        energy_j: Tuple[float, ...],
        active_j: Tuple[float, ...],
        idle_j: Tuple[float, ...],
        busy_s: float,
        total_s: float,
        proc_cpu_s: float,
        price_j_per_cpu_s: Tuple[float, ...],
        idle_price_j_per_cpu_s: float,
        charged_j: float,
        gpu_proc_j: float,
        gpu_per_span_j: float,
        gpu_per_span_w: float,
        gpu_unattributed_j: float,
        intensity: Intensity,
        method: str,
        charged_by_j: Tuple[float, ...] = (),
        charged_idle_j: float = 0.0,
        wall_s_per_busy_s: float = 0.0,
        charged_wall_s: float = 0.0,
    ) -> None:
        self.t_ns = t_ns
        self.energy_j = energy_j
        self.active_j = active_j
        self.idle_j = idle_j
        self.busy_s = busy_s
        self.total_s = total_s
        self.proc_cpu_s = proc_cpu_s
        self.price_j_per_cpu_s = price_j_per_cpu_s
        self.idle_price_j_per_cpu_s = idle_price_j_per_cpu_s
        self.charged_j = charged_j
        self.charged_by_j = charged_by_j  # charged_j per component (same order as energy_j)
        self.charged_idle_j = charged_idle_j  # idle energy at the idle price, same CPU-seconds
        # Host wall-clock seconds per busy host CPU-second (trailing), and the host-seconds
        # charged to this process at that rate: the share of anything the host has per unit
        # of time (embodied carbon) that this process's CPU time stands for.
        self.wall_s_per_busy_s = wall_s_per_busy_s
        self.charged_wall_s = charged_wall_s
        self.seq = 0  # position in the ledger (set on append): adjacent ticks differ by 1
        self.gpu_proc_j = gpu_proc_j
        self.gpu_per_span_j = gpu_per_span_j
        self.gpu_per_span_w = gpu_per_span_w
        self.gpu_unattributed_j = gpu_unattributed_j
        self.intensity = intensity
        self.g_per_j = intensity.g_per_joule  # g CO2e per joule, PUE included (span path)
        self.method = method


@dataclass(frozen=True)
class Window:
    """What the ledger knows about ``[t0, t1]`` (see :meth:`Ledger.window`)."""

    t0_ns: int
    t1_ns: int
    energy_j: Dict[str, float]  # per component, total (active + idle)
    active_j: Dict[str, float]
    idle_j: Dict[str, float]
    busy_s: float  # host busy CPU-seconds
    proc_cpu_s: float  # this process's CPU-seconds
    charged_j: float  # active energy charged to this process
    gpu_proc_j: float  # this process's GPU energy

    @property
    def duration_s(self) -> float:
        return (self.t1_ns - self.t0_ns) / 1e9

    @property
    def price_j_per_cpu_s(self) -> float:
        """Active joules (all components) per busy host CPU-second."""
        return sum(self.active_j.values()) / self.busy_s if self.busy_s > 0 else 0.0

    @property
    def idle_power_w(self) -> float:
        return sum(self.idle_j.values()) / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def process_share(self) -> float:
        """This process's share of the host's busy CPU time."""
        return min(self.proc_cpu_s / self.busy_s, 1.0) if self.busy_s > 0 else 0.0


# Fields that are cumulative (interpolated in windows), by kind.
_SCALARS = ("busy_s", "total_s", "proc_cpu_s", "charged_j", "gpu_proc_j")
_VECTORS = ("energy_j", "active_j", "idle_j")


def _numbers(name: str, values: object, n: int) -> Tuple[float, ...]:
    """``values`` as ``n`` finite floats >= 0, else ValueError naming ``name``."""
    try:
        out = tuple(float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must give one number per component, got {values!r}") from None
    if len(out) != n or isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must give one number per component ({n}), got {values!r}")
    if not all(0 <= v < float("inf") for v in out):
        raise ValueError(f"{name} must hold finite numbers >= 0, got {values!r}")
    return out


class Ledger:
    """Bounded ring of ticks; appended by the sampler thread only, read from anywhere."""

    def __init__(
        self,
        components: Sequence[str],
        idle_power_w: Sequence[float],
        capacity: int = 3000,
        nominal_price_j_per_cpu_s: Optional[Sequence[float]] = None,
    ) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or not 2 <= capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be an int from 2 to {MAX_CAPACITY} ticks, got {capacity!r}")
        if not (isinstance(components, (list, tuple)) and all(isinstance(c, str) for c in components)):
            raise ValueError(f"components must be a list or tuple of names (str), got {components!r}")
        self.components: Tuple[str, ...] = tuple(components)
        self.idle_power_w: Tuple[float, ...] = _numbers("idle_power_w", idle_power_w, len(self.components))
        #: prices used until the ledger has seen enough busy CPU time to measure them
        #: (a model knows its own; a counter starts at 0)
        self.nominal_price_j_per_cpu_s: Tuple[float, ...] = _numbers(
            "nominal_price_j_per_cpu_s",
            (0.0,) * len(self.components) if nominal_price_j_per_cpu_s is None else nominal_price_j_per_cpu_s,
            len(self.components),
        )
        self._ticks: Deque[Tick] = deque(maxlen=capacity)
        self._times: Deque[int] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self._price_base: Deque[Tick] = deque()  # sampler thread only
        #: the newest tick, read without a lock on the span path (None until the first)
        self.latest: Optional[Tick] = None

    # -- writing (sampler thread) ---------------------------------------------------------

    def append_reading(
        self,
        t_ns: int,
        energy_j: Sequence[float],
        busy_s: float,
        total_s: float,
        proc_cpu_s: float,
        gpu_proc_j: float,
        active_spans: int,
        intensity: Intensity,
        method: str,
    ) -> Tick:
        """Turn one reading of cumulative counters into a tick with running totals."""
        prev = self.latest
        n = len(self.components)
        energy = tuple(map(float, energy_j))
        if prev is None:
            zeros = (0.0,) * n
            price0 = self.nominal_price_j_per_cpu_s
            tick = Tick(t_ns, energy, zeros, zeros, busy_s, total_s, proc_cpu_s, price0, 0.0, 0.0, gpu_proc_j, 0.0, 0.0, 0.0, intensity, method, zeros)
        else:
            dt_s = max((t_ns - prev.t_ns) / 1e9, 0.0)
            d_busy = max(busy_s - prev.busy_s, 0.0)
            active = list(prev.active_j)
            idle = list(prev.idle_j)
            for i in range(n):
                d_e = max(energy[i] - prev.energy_j[i], 0.0)
                d_idle = min(d_e, self.idle_power_w[i] * dt_s)
                d_active = d_e - d_idle
                if d_active < 1e-9 * d_e:  # float noise of an all-static component
                    d_active, d_idle = 0.0, d_e
                idle[i] += d_idle
                active[i] += d_active
            busy_s = prev.busy_s + d_busy  # monotonic even if /proc/stat stutters
            price, idle_price, wall_per_busy = self._trailing_prices(t_ns, tuple(active), tuple(idle), busy_s, prev)
            d_proc = max(proc_cpu_s - prev.proc_cpu_s, 0.0)
            # The interval (prev, now] is charged at the prices known at its start: the ones a
            # span ending inside it used (the latest tick's), so spans and charges agree.
            by_j, d_charged, d_idle_j, d_wall_s = charge(d_proc, prev)
            charged = prev.charged_j + d_charged
            charged_by = tuple(c + d for c, d in zip(prev.charged_by_j, by_j))
            charged_idle = prev.charged_idle_j + d_idle_j
            charged_wall = prev.charged_wall_s + d_wall_s
            d_gpu = max(gpu_proc_j - prev.gpu_proc_j, 0.0)
            if active_spans > 0:
                per_span = prev.gpu_per_span_j + d_gpu / active_spans
                per_span_w = d_gpu / active_spans / dt_s if dt_s > 0 else prev.gpu_per_span_w
                unattributed = prev.gpu_unattributed_j
            else:
                per_span, per_span_w = prev.gpu_per_span_j, 0.0
                unattributed = prev.gpu_unattributed_j + d_gpu
            tick = Tick(
                t_ns, energy, tuple(active), tuple(idle), busy_s, total_s, max(proc_cpu_s, prev.proc_cpu_s),
                price, idle_price, charged, max(gpu_proc_j, prev.gpu_proc_j), per_span, per_span_w, unattributed,
                intensity, method, charged_by, charged_idle, wall_per_busy, charged_wall,
            )
        tick.seq = prev.seq + 1 if prev is not None else 0
        with self._lock:
            self._ticks.append(tick)
            self._times.append(t_ns)
        self._price_base.append(tick)
        self.latest = tick
        return tick

    def _trailing_prices(
        self, t_ns: int, active: Tuple[float, ...], idle: Tuple[float, ...], busy_s: float, prev: Tick
    ) -> Tuple[Tuple[float, ...], float, float]:
        """Prices (and host wall seconds per busy CPU-second) over the shortest trailing window of >= PRICE_WINDOW_NS with enough busy
        time (at most MAX_PRICE_WINDOW_NS). ``_price_base`` holds the ticks from the window's
        start on; the start only moves forward, so this is O(1) amortised per tick."""
        window = self._price_base
        while len(window) >= 2:
            second = window[1]
            if (t_ns - second.t_ns >= PRICE_WINDOW_NS and busy_s - second.busy_s >= MIN_PRICE_BUSY_S) or (
                t_ns - window[0].t_ns > MAX_PRICE_WINDOW_NS
            ):
                window.popleft()
            else:
                break
        base = window[0] if window else prev
        d_busy = busy_s - base.busy_s
        if d_busy < MIN_PRICE_BUSY_S:
            return prev.price_j_per_cpu_s, prev.idle_price_j_per_cpu_s, prev.wall_s_per_busy_s
        price = tuple((a - b) / d_busy for a, b in zip(active, base.active_j))
        idle_price = (sum(idle) - sum(base.idle_j)) / d_busy
        return price, idle_price, (t_ns - base.t_ns) / 1e9 / d_busy

    # -- reading ----------------------------------------------------------------------------

    def ticks(self) -> List[Tick]:
        with self._lock:
            return list(self._ticks)

    def _at(self, t_ns: int, ticks: List[Tick], times: List[int]) -> Dict[str, object]:
        """Cumulative values at ``t_ns``: interpolated between ticks, extrapolated after."""
        if t_ns <= times[0]:
            lo = hi = ticks[0]
            frac = 0.0
        elif t_ns >= times[-1]:
            lo, hi = (ticks[-2], ticks[-1]) if len(ticks) > 1 else (ticks[-1], ticks[-1])
            span = hi.t_ns - lo.t_ns
            frac = (t_ns - lo.t_ns) / span if span > 0 else 1.0
        else:
            i = bisect.bisect_right(times, t_ns)
            lo, hi = ticks[i - 1], ticks[i]
            frac = (t_ns - lo.t_ns) / (hi.t_ns - lo.t_ns)
        out: Dict[str, object] = {}
        for name in _SCALARS:
            a, b = getattr(lo, name), getattr(hi, name)
            out[name] = a + (b - a) * frac
        for name in _VECTORS:
            out[name] = tuple(a + (b - a) * frac for a, b in zip(getattr(lo, name), getattr(hi, name)))
        return out

    def window(self, t0_ns: int, t1_ns: int, start: Optional[Tick] = None) -> Optional[Window]:
        """Energy, prices and shares over ``[t0_ns, t1_ns]`` (monotonic ns), or None when the
        ledger is empty. Times after the latest tick extrapolate with the latest interval's
        rates. Times before the oldest kept tick clamp to it, unless ``start`` is given: a
        tick kept from the window's start (e.g. by a long-running tracker), which then serves
        as the window's start whatever the ring still holds, so a window of any length loses
        nothing. A query copies the ring (O(capacity)): the span path never makes one (it
        prices from two ticks, :func:`prices_between`)."""
        if t1_ns < t0_ns:
            raise ValueError(f"t1_ns must be >= t0_ns, got {t0_ns} > {t1_ns}")
        with self._lock:
            ticks = list(self._ticks)
            times = list(self._times)
        if not ticks:
            return None
        if start is not None and start.t_ns <= t1_ns and (start.t_ns < times[0] or t0_ns < times[0]):
            t0_ns = start.t_ns
            a = self._at(t0_ns, [start], [start.t_ns])
        else:
            a = self._at(t0_ns, ticks, times)
        b = self._at(t1_ns, ticks, times)

        def diff(name: str) -> Dict[str, float]:
            return {c: max(y - x, 0.0) for c, x, y in zip(self.components, a[name], b[name])}  # type: ignore[arg-type]

        return Window(
            t0_ns,
            t1_ns,
            energy_j=diff("energy_j"),
            active_j=diff("active_j"),
            idle_j=diff("idle_j"),
            busy_s=max(b["busy_s"] - a["busy_s"], 0.0),  # type: ignore[operator]
            proc_cpu_s=max(b["proc_cpu_s"] - a["proc_cpu_s"], 0.0),  # type: ignore[operator]
            charged_j=max(b["charged_j"] - a["charged_j"], 0.0),  # type: ignore[operator]
            gpu_proc_j=max(b["gpu_proc_j"] - a["gpu_proc_j"], 0.0),  # type: ignore[operator]
        )
