"""Observable instruments read from the sampler's ledger: hardware energy and power
(``hw.*`` semantic conventions), the host's active/idle split, this process's charged energy
and emissions, and the grid intensity.

Nothing is read from a sensor here: the callbacks read :attr:`Ledger.latest` and a short
history the sampler thread hands over after each tick (:meth:`HardwareMeter.on_tick`).

* ``hw.energy`` per component is its energy since the sampler started (active + idle in
  the ledger); a GPU's is its device energy since the meter first saw it.
* ``hw.power`` is the mean power over the trailing :data:`POWER_WINDOW_NS` (one tick is
  too short for models fed by ``/proc/stat``'s 10 ms ticks). Not reported while the ledger
  is stale (sampler stopped or stalled): no number beats a wrong one.
* ``carbon.process.energy`` is the active energy charged to this process
  (:func:`otel_carbon.attribution.process_charge`: per component; the process's GPU
  share), and ``carbon.process.emissions`` its CO2e,
  integrated tick by tick with the intensity in force (PUE applied, like spans).
* ``carbon.offload.late`` is the CPU time of work handed to other threads that finished
  after its span ended (:func:`otel_carbon.offload.late_work`): part of the unattributed
  share, counted so a reader sees how much fire-and-forget work there is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Tuple

from opentelemetry.metrics import CallbackOptions, Observation

from otel_carbon import attributes as A
from otel_carbon import offload
from otel_carbon._log import warn_once
from otel_carbon.attribution import emissions_g, process_charge, total_j
from otel_carbon.ledger import Tick

_logger = logging.getLogger("otel_carbon")

POWER_WINDOW_NS = 1_000_000_000


def _combined(methods: Iterable[str]) -> str:
    found = set(methods)
    if found == {A.MEASURED}:
        return A.MEASURED
    if found == {A.ESTIMATED}:
        return A.ESTIMATED
    return A.MIXED if found else A.UNAVAILABLE


class _Layout:
    """Static attributes of each component of one ledger (computed once per ledger)."""

    def __init__(self, sampler: Any) -> None:
        self.ledger = sampler.ledger
        self.components: List[Dict[str, Any]] = []
        for sensor in sampler.sensors:
            self.components.append(
                {
                    A.HW_TYPE: sensor.component,
                    A.HW_ID: sensor.name,
                    A.HW_NAME: _hw_name(sensor),
                    A.METHOD: getattr(sensor, "method", A.ESTIMATED),
                }
            )
        self.gpus: List[Dict[str, Any]] = [
            {
                A.HW_TYPE: A.GPU,
                A.HW_ID: gpu.name,
                A.HW_NAME: getattr(gpu, "device_name", "") or gpu.name,
                A.METHOD: getattr(gpu, "method", A.MEASURED),
            }
            for gpu in sampler.gpus
        ]
        method = _combined(c[A.METHOD] for c in self.components + self.gpus)
        self.host = {A.HW_ID: A.HOST_ID, A.HW_NAME: A.HOST_ID, A.METHOD: method}
        self.method = {A.METHOD: method}
        states = []
        for c in self.components:
            base = {A.HW_TYPE: c[A.HW_TYPE], A.HW_ID: c[A.HW_ID]}
            states.append(({**base, A.POWER_STATE: A.ACTIVE}, {**base, A.POWER_STATE: A.IDLE}))
        self.states = states
        by_type: Dict[Tuple[str, str], List[int]] = {}
        for i, c in enumerate(self.components):
            by_type.setdefault((c[A.HW_TYPE], c[A.METHOD]), []).append(i)
        self.process = [({A.HW_TYPE: t, A.METHOD: m}, idx) for (t, m), idx in by_type.items()]
        self.process_gpu = {A.HW_TYPE: A.GPU, A.METHOD: A.MEASURED} if self.gpus else None


def _hw_name(sensor: Any) -> str:
    try:
        return str(sensor.info().source) or sensor.name
    except Exception:  # noqa: BLE001
        return str(getattr(sensor, "name", sensor.component))


class HardwareMeter:
    """Creates the observable instruments and keeps what their callbacks read."""

    def __init__(self, meter: Any, sampler: Any, before_collect: Callable[[], Any]) -> None:
        self._sampler = sampler
        self._before = before_collect
        self._lock = threading.Lock()
        self._layout: Optional[_Layout] = None
        self._last: Optional[Tick] = None
        self._recent: Deque[Tuple[int, Tuple[float, ...]]] = deque()
        self._gpu_base: Dict[int, float] = {}
        self._gpu_j: Tuple[float, ...] = ()
        self._proc_j: Optional[float] = None
        self.process_emissions_g = 0.0
        self.closed = False
        observe = self._guard
        meter.create_observable_counter(
            A.HW_ENERGY, [observe(self._hw_energy)], unit=A.UNIT_J,
            description="Energy used by each hardware component (since the sampler started)",
        )
        meter.create_observable_gauge(
            A.HW_POWER, [observe(self._hw_power)], unit=A.UNIT_W,
            description="Mean power of each hardware component over the last second",
        )
        meter.create_observable_counter(
            A.HW_HOST_ENERGY, [observe(self._host_energy)], unit=A.UNIT_J,
            description="Energy used by all the host components read (since the sampler started)",
        )
        meter.create_observable_gauge(
            A.HW_HOST_POWER, [observe(self._host_power)], unit=A.UNIT_W,
            description="Mean power of all the host components read, over the last second",
        )
        meter.create_observable_counter(
            A.HOST_ENERGY, [observe(self._host_split)], unit=A.UNIT_J,
            description="Host energy per component split into active (work) and idle (static) energy",
        )
        meter.create_observable_counter(
            A.PROCESS_ENERGY, [observe(self._process_energy)], unit=A.UNIT_J,
            description="Active energy charged to this process (CPU-seconds x price; its GPU share)",
        )
        meter.create_observable_counter(
            A.PROCESS_EMISSIONS, [observe(self._process_emissions)], unit=A.UNIT_G,
            description="CO2e of the energy charged to this process",
        )
        meter.create_observable_gauge(
            A.GRID_INTENSITY, [observe(self._intensity)], unit=A.UNIT_G_PER_KWH,
            description="Grid carbon intensity in use",
        )
        meter.create_observable_counter(
            A.SAMPLER_GAPS, [observe(self._gaps)], unit=A.UNIT_GAPS,
            description="Sampler intervals longer than a counter's wrap period at the highest plausible "
            "power (the sampler was starved); energy in them may be short by whole counter ranges",
        )
        meter.create_observable_counter(
            A.OFFLOAD_LATE, [observe(self._late_work)], unit=A.UNIT_S,
            description="CPU time of work handed off by spans that ended before it finished (fire-and-forget); "
            "charged to no span",
        )
        latest = sampler.ledger.latest
        if latest is not None:
            self.on_tick(latest)

    def reinit_after_fork(self) -> None:
        self._lock = threading.Lock()  # the sampler's new ledger resets the rest at its first tick

    # -- sampler thread ---------------------------------------------------------------------

    def on_tick(self, tick: Tick) -> None:
        sampler = self._sampler
        with self._lock:
            if self.closed:
                return
            layout = self._layout
            if layout is None or layout.ledger is not sampler.ledger:  # first tick, or after fork
                layout = self._layout = _Layout(sampler)
                self._recent.clear()
                self._gpu_base = {}
                self._proc_j = None
                self._last = None
            last = self._last
            if last is not None and tick.t_ns <= last.t_ns:
                return  # seen already
            gpu_now = sampler.gpu_energy_j if layout.gpus else {}
            for i, value in gpu_now.items():
                self._gpu_base.setdefault(i, value)
            self._gpu_j = tuple(gpu_now.get(i, 0.0) - self._gpu_base.get(i, 0.0) for i in range(len(layout.gpus)))
            energies = tuple(a + b for a, b in zip(tick.active_j, tick.idle_j)) + self._gpu_j
            recent = self._recent
            recent.append((tick.t_ns, energies))
            while len(recent) > 2 and tick.t_ns - recent[1][0] >= POWER_WINDOW_NS:
                recent.popleft()
            charged = process_charge(tick)
            proc_j = charged.total_j
            if self._proc_j is None:
                self.process_emissions_g = charged.emissions_g
            else:  # each interval at the intensity in force at its end
                self.process_emissions_g += emissions_g(max(proc_j - self._proc_j, 0.0), tick.g_per_j)
            self._proc_j = proc_j
            self._last = tick

    # -- callbacks (the collecting thread) --------------------------------------------------

    def _guard(self, fn: Callable[[Tick, _Layout], Iterable[Observation]]) -> Callable[[CallbackOptions], List[Observation]]:
        def callback(options: CallbackOptions) -> List[Observation]:
            try:
                self._before()  # record queued spans before this collection reads them
                with self._lock:
                    tick, layout = self._last, self._layout
                if self.closed or tick is None or layout is None:
                    return []
                return list(fn(tick, layout))
            except Exception as exc:  # noqa: BLE001 - never raise into the SDK's collection
                warn_once(_logger, f"metrics-callback:{fn.__name__}", "otel_carbon: metric callback %s failed: %r", fn.__name__, exc)
                return []

        callback.__name__ = fn.__name__
        return callback

    def _powers(self, tick: Tick) -> Optional[Tuple[float, ...]]:
        if self._sampler.stale(self._sampler.ledger.latest, time.monotonic_ns()):
            return None
        with self._lock:
            if len(self._recent) < 2:
                return None
            (t0, e0), (t1, e1) = self._recent[0], self._recent[-1]
        dt_s = (t1 - t0) / 1e9
        if dt_s <= 0:
            return None
        return tuple(max(b - a, 0.0) / dt_s for a, b in zip(e0, e1))

    def _hw_energy(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        for attrs, active, idle in zip(layout.components, tick.active_j, tick.idle_j):
            yield Observation(active + idle, attrs)
        for attrs, energy_j in zip(layout.gpus, self._gpu_j):
            yield Observation(energy_j, attrs)

    def _hw_power(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        powers = self._powers(tick)
        if powers is not None:
            for attrs, power_w in zip(layout.components + layout.gpus, powers):
                yield Observation(power_w, attrs)

    def _host_energy(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        yield Observation(sum(tick.active_j) + sum(tick.idle_j) + sum(self._gpu_j), layout.host)

    def _host_power(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        powers = self._powers(tick)
        if powers is not None:
            yield Observation(sum(powers), layout.host)

    def _host_split(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        for (active_attrs, idle_attrs), active, idle in zip(layout.states, tick.active_j, tick.idle_j):
            yield Observation(active, active_attrs)
            yield Observation(idle, idle_attrs)

    def _process_energy(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        charged = process_charge(tick)
        by_j = charged.energy_j
        if len(by_j) == len(layout.components):
            for attrs, indices in layout.process:
                yield Observation(total_j(by_j[i] for i in indices), attrs)
        if layout.process_gpu is not None:
            yield Observation(charged.gpu_j, layout.process_gpu)

    def _process_emissions(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        yield Observation(self.process_emissions_g, layout.method)

    def _gaps(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        yield Observation(self._sampler.long_gaps)

    def _late_work(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        yield Observation(offload.late_work()[1])

    def _intensity(self, tick: Tick, layout: _Layout) -> Iterable[Observation]:
        yield Observation(tick.intensity.g_per_kwh, {A.ZONE: tick.intensity.zone})
