"""One daemon thread per process that reads every sensor on a fixed interval.

The sampler is the only code that touches sensors, files or NVML. Each tick it reads the
host CPU times (``/proc/stat``, else psutil), the process CPU time and every sensor, as
close together as it can, and appends the reading to the :class:`~otel_carbon.ledger.Ledger`.

* **Pairing and failures** (:mod:`otel_carbon.sensor_reading`): the energy is read paired
  with the CPU times it is priced by; a sensor that raises marks its component
  ``unavailable`` for that tick, and the thread never dies. A sensor that hangs stalls the
  ledger, and spans that end on a stale ledger say ``unavailable``.
* **Starvation.** A span that ends on a stale ledger while no tick is in progress takes the
  reading itself (:meth:`Sampler.catch_up`, at most once per interval): on a host whose
  CPU-bound threads keep the sampler thread from running, spans are still priced.
* **One per process** (:mod:`otel_carbon.process_sampler`), shared by every processor, meter
  and tracker. After ``fork`` the child gets a fresh ledger and its own thread, like the
  SDK's batch processor; a fork first waits (at most :data:`FORK_WAIT_S`) for a tick in
  progress to end (a sensor's lock held at fork time would stay locked in the child), else
  the child's first reading is left to its new thread, so the child never blocks on it.
* **Shutdown** is idempotent and joins within a timeout.
* **The interval follows the sensors** (:func:`otel_carbon.sensor_reading.default_interval_s`);
  ``OTEL_CARBON_SAMPLE_INTERVAL`` overrides it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Callable, Dict, List, Optional, TypeVar

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon._untraced import run_untraced
from otel_carbon.host_cpu import logical_cpus, open_proc_stat
from otel_carbon.intensity.source import IntensitySource, intensity_source
from otel_carbon.ledger import Tick
from otel_carbon.sensor_reading import SensorReading, default_interval_s, warn_long_gap
from otel_carbon.sensors.base import HostSample
from otel_carbon.sensors.probe import Probe

_logger = logging.getLogger("otel_carbon")
T = TypeVar("T")

IDLE_INTERVAL_S = 1.0  # interval while no span is open and the process is idle
SLEEP_MAX_S = 1.0  # intervals up to this sleep between ticks (see Sampler._run)
STALE_TICKS = 10  # a ledger older than this many intervals (and >= 1 s) is stale
FORK_WAIT_S = 1.0  # before fork, wait at most this long for a tick in progress to end


class Sampler:
    """Reads the sensors of ``probe`` every ``interval_s`` into :attr:`ledger`."""

    def __init__(
        self,
        probe: Probe,
        interval_s: Optional[float] = None,
        intensity: Optional[IntensitySource] = None,
        idle_interval_s: float = IDLE_INTERVAL_S,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        proc_root: str = "/proc",
    ) -> None:
        if not isinstance(probe, Probe):
            raise ValueError(f"probe must be an otel_carbon Probe (see probe_sensors()), got {type(probe).__name__}")
        if interval_s is None:
            interval_s = config.sample_interval_s(default_interval_s(probe))
        bounds = config.RANGES[config.OTEL_CARBON_SAMPLE_INTERVAL]
        if isinstance(interval_s, bool) or not (isinstance(interval_s, (int, float)) and bounds.low <= interval_s <= bounds.high):
            # below 10 ms the sampler alone costs a large share of a core
            raise ValueError(f"interval_s must be {bounds.describe()}, got {interval_s!r}")
        if intensity is not None and not callable(getattr(intensity, "current", None)):
            raise ValueError(f"intensity must be an intensity source with current(), got {type(intensity).__name__}")
        if not callable(clock_ns) or not isinstance(clock_ns(), int):
            raise ValueError(f"clock_ns must be a function returning monotonic nanoseconds (int), got {clock_ns!r}")
        if not isinstance(proc_root, str):
            raise ValueError(f"proc_root must be a directory path (str), got {proc_root!r}")
        self.probe = probe
        self.reading = SensorReading(probe, open_proc_stat(proc_root), logical_cpus())
        self.gpus = self.reading.gpus
        self.sensors = self.reading.sensors
        self.sensor_errors = self.reading.errors
        self._max_safe_interval_s = self.reading.max_safe_interval_s
        self.interval_s = float(min(interval_s, self._max_safe_interval_s))
        #: a longer interval between two readings may hide a counter wrap (twice the safe
        #: read interval: the wrap period at the highest plausible power)
        self._gap_ns = 2e9 * self._max_safe_interval_s
        self.long_gaps = 0  # intervals longer than that (the sampler was starved)
        if not (isinstance(idle_interval_s, (int, float)) and 0 < idle_interval_s <= threading.TIMEOUT_MAX):
            raise ValueError(f"idle_interval_s must be a number of seconds > 0, got {idle_interval_s!r}")
        self.idle_interval_s = float(max(idle_interval_s, self.interval_s))
        #: stale_after_s in ns, a plain attribute for the span path
        self.stale_after_ns = self.stale_after_s * 1e9
        #: True while the process is quiet (no span open, under 1 % of a CPU): ticks back off to
        #: the idle interval until a span starts (:meth:`wake`)
        self.quiet = False
        self._wake = threading.Event()
        self._intensity_given = intensity is not None
        self._intensity = intensity if intensity is not None else intensity_source()
        self._pending_resource: Optional[Dict[str, object]] = None
        self._resource_lock = threading.Lock()
        self._clock_ns = clock_ns
        self._span_counters: List[Callable[[], int]] = []
        self._tick_listeners: "tuple[Callable[[Tick], None], ...]" = ()
        self._lock = threading.Lock()
        self._tick_lock = threading.RLock()  # held while sensors are read (see fork)
        self._companions: Dict[str, object] = {}
        self._companion_lock = threading.Lock()
        self._fork_paused = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.ticks = 0
        self.catch_ups = 0  # readings taken by a span ending on a stale ledger (catch_up)
        self._catch_up_after_ns = 0
        self.ledger = self.reading.new_ledger()
        _instances.add(self)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, _first_tick: bool = True) -> "Sampler":
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop.clear()
            if _first_tick:  # a first reading now, so the first spans have a baseline
                run_untraced(self.tick)()
            self._thread = threading.Thread(
                target=run_untraced(self._run), args=(not _first_tick,), name="otel-carbon-sampler", daemon=True
            )
            self._thread.start()
        return self

    def use_resource(self, resource_attributes: Dict[str, object]) -> None:
        """Resolve the intensity again with the tracer provider's Resource (cloud.provider,
        cloud.region), unless an intensity source was given explicitly. Called once, with
        the first span's resource, on the application's thread: so it only hands the
        attributes over and wakes the sampler thread, which resolves them (bundled tables,
        maybe a live provider's thread to stop) before its next reading. Spans that end
        before that reading carry the intensity known until then."""
        if self._intensity_given or not any(k.startswith("cloud.") for k in resource_attributes):
            return
        self._intensity_given = True
        self._pending_resource = dict(resource_attributes)
        self.wake()

    def _apply_resource(self) -> None:
        """On the sampler thread (or whoever ticks): the resolution use_resource asked for."""
        with self._resource_lock:
            attributes, self._pending_resource = self._pending_resource, None
        if attributes is None:
            return
        try:
            new = intensity_source(attributes)
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "use-resource", "otel_carbon: resource-based intensity failed: %r", exc)
            return
        old, self._intensity = self._intensity, new
        old.shutdown(0.0)  # a refresher in a request ends on its own, within its deadline

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread; True when it ended within ``timeout_s``. Safe to call twice."""
        self._stop.set()
        self._wake.set()
        try:
            self._intensity.shutdown()
        except Exception:  # noqa: BLE001
            pass
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def _before_fork(self) -> None:
        """Hold the tick lock across fork, so no sensor is being read when it happens."""
        self._fork_paused = self._tick_lock.acquire(timeout=FORK_WAIT_S)

    def _after_fork_in_parent(self) -> None:
        if self._fork_paused:
            self._fork_paused = False
            self._tick_lock.release()

    def _reinit_after_fork(self) -> None:
        """In a forked child: new locks, a fresh ledger, a new thread (if one ran)."""
        was_running = self._thread is not None and not self._stop.is_set()
        quiet = self._fork_paused  # False: a tick was in progress, sensor locks may be held
        self._fork_paused = False
        self._lock = threading.Lock()
        self._tick_lock = threading.RLock()
        self._resource_lock = threading.Lock()
        self._companion_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        self.reading.pid = os.getpid()
        self.ledger = self.reading.new_ledger()
        if was_running:
            self.start(_first_tick=quiet)

    def _run(self, tick_first: bool = False) -> None:
        if tick_first:
            self.tick()
        # A plain sleep costs one system call, Event.wait(timeout) several lock operations,
        # so short intervals sleep (shutdown then waits at most one interval). While the
        # process is quiet (no open span, under 1 % CPU) ticks back off to IDLE_INTERVAL_S:
        # the counters are cumulative, so nothing is lost.
        stop = self._stop
        while not stop.is_set():
            if self.quiet:
                self._wake.wait(min(self.idle_interval_s, self._max_safe_interval_s))
                self._wake.clear()
            elif self.interval_s <= SLEEP_MAX_S:
                time.sleep(self.interval_s)
            elif stop.wait(self.interval_s):
                break
            if not stop.is_set():
                self.tick()

    def wake(self) -> None:
        """Leave the idle back-off now (a span started): the next tick comes promptly."""
        self.quiet = False
        self._wake.set()

    # -- spans ------------------------------------------------------------------------------

    def register_span_counter(self, counter: Callable[[], int]) -> None:
        """``counter()`` gives how many spans are open now (for splitting GPU energy)."""
        with self._lock:  # copy on write: the tick reads the list without a lock
            self._span_counters = [*self._span_counters, counter]

    def unregister_span_counter(self, counter: Callable[[], int]) -> None:
        with self._lock:
            self._span_counters = [c for c in self._span_counters if c is not counter]

    # -- tick listeners (metrics) ------------------------------------------------------------

    def add_tick_listener(self, listener: Callable[[Tick], None]) -> None:
        """Call ``listener(tick)`` on the sampler thread after each appended tick. It must be
        quick; exceptions are caught and logged once."""
        with self._lock:  # copy on write, like the span counters
            self._tick_listeners = (*self._tick_listeners, listener)

    def remove_tick_listener(self, listener: Callable[[Tick], None]) -> None:
        with self._lock:
            self._tick_listeners = tuple(x for x in self._tick_listeners if x is not listener)

    def companion(self, key: str, make: Callable[[], T]) -> T:
        """The object kept under ``key`` for as long as this sampler lives, made by ``make()``
        the first time (once, whatever the threads): e.g. the processor over this sampler that
        prices the tracking API's runs, which must not outlive it nor keep it alive."""
        found = self._companions.get(key)
        if found is None:
            with self._companion_lock:
                found = self._companions.get(key)
                if found is None:
                    found = self._companions[key] = make()
        return found  # type: ignore[return-value]

    @property
    def in_use(self) -> bool:
        """Whether a span counter (a processor) or a tick listener (a meter) is registered."""
        return bool(self._span_counters or self._tick_listeners)

    @property
    def gpu_energy_j(self) -> Dict[int, float]:
        """Latest cumulative energy (J, arbitrary origin) of each GPU, by index in :attr:`gpus`."""
        return dict(self.reading.gpu_last_j)

    @property
    def stale_after_s(self) -> float:
        """A tick older than this is too old to price a span: 10 intervals, and at least
        three idle back-off intervals."""
        return max(STALE_TICKS * self.interval_s, 3 * self.idle_interval_s)

    def stale(self, tick: Optional[Tick], now_ns: int) -> bool:
        if tick is None:
            return True
        return now_ns - tick.t_ns > self.stale_after_s * 1e9

    def catch_up(self) -> Optional[Tick]:
        """A reading now, on the calling thread, for a span ending on a stale ledger: the
        sampler thread did not get the CPU (CPU-bound threads holding the GIL on a loaded
        host, a process just thawed). Never waits: nothing while a tick is in progress (a
        sensor that hangs holds it), at most one attempt per interval, nothing once shut
        down; a pending Resource resolution stays the sampler thread's job. Returns the new
        tick, or None."""
        now_ns = self._clock_ns()
        if now_ns < self._catch_up_after_ns or not self.running:
            return None
        self._catch_up_after_ns = now_ns + int(self.interval_s * 1e9)
        if not self._tick_lock.acquire(blocking=False):
            return None
        try:
            tick = self._tick()
            self.catch_ups += 1
            return tick
        except Exception as exc:  # noqa: BLE001 - never into the span path
            warn_once(_logger, "sampler-tick", "otel_carbon: sampler tick failed: %r", exc)
            return None
        finally:
            self._tick_lock.release()

    # -- one tick ---------------------------------------------------------------------------

    def tick(self, host: "Optional[tuple[int, float, float, float]]" = None) -> Optional[Tick]:
        """Take one reading now. Never raises; returns the tick, or None when dropped.

        ``host``: ``(t_ns, busy_s, total_s, proc_cpu_s)`` to use instead of reading the
        clock, ``/proc/stat`` and the process CPU time (the sensors are still read): a
        replay of a recorded or simulated load (``benchmarks/bench_interval.py``)."""
        if self._pending_resource is not None:
            self._apply_resource()
        with self._tick_lock:
            try:
                if host is None:
                    return self._tick()
                sample = HostSample(host[0], host[1], host[2], self.reading.n_cpus)
                return self._append(self.ledger.latest, sample, self.reading.read_all(sample), host[3])
            except Exception as exc:  # noqa: BLE001
                warn_once(_logger, "sampler-tick", "otel_carbon: sampler tick failed: %r", exc)
                return None

    def _tick(self) -> Optional[Tick]:
        prev = self.ledger.latest
        sample, readings, proc_cpu_s = self.reading.read_paired(self._clock_ns, prev is None)
        return self._append(prev, sample, readings, proc_cpu_s)

    def _append(
        self, prev: Optional[Tick], sample: HostSample, readings: "list[Optional[float]]", proc_cpu_s: float
    ) -> Tick:
        t_ns, busy_s, total_s = sample.t_ns, sample.busy_s, sample.total_s
        if prev is not None and t_ns - prev.t_ns > self._gap_ns:
            self.long_gaps += 1
            warn_long_gap(t_ns - prev.t_ns, self._gap_ns)
        energy, method, gpu_proc_j = self.reading.energy(prev, sample, readings)
        active = 0
        for counter in self._span_counters:
            try:
                active += int(counter())
            except Exception:  # noqa: BLE001
                pass
        # Quiet: no open span and this process used under 1 % of a CPU since the last tick.
        self.quiet = active == 0 and (
            prev is None or (proc_cpu_s - prev.proc_cpu_s) * 1e9 < 0.01 * (t_ns - prev.t_ns)
        )
        tick = self.ledger.append_reading(
            t_ns, energy, busy_s, total_s, proc_cpu_s, gpu_proc_j, active, self._intensity.current(), method
        )
        self.ticks += 1
        for listener in self._tick_listeners:
            try:
                listener(tick)
            except Exception as exc:  # noqa: BLE001
                self._listener_failed(listener, exc)
        return tick

    def _listener_failed(self, listener: Callable[[Tick], None], exc: BaseException) -> None:
        warn_once(_logger, f"tick-listener:{listener!r}", "otel_carbon: tick listener %r failed: %r", listener, exc)

#: Every Sampler made in this process (weakly): fork handling covers the ones given to a
#: processor or meter directly (``sampler=``), not only the process-wide one.
_instances: "weakref.WeakSet[Sampler]" = weakref.WeakSet()
_fork_paused: List[Sampler] = []


def _fork_targets() -> List[Sampler]:
    """Every sampler that was started, the process-wide one included (never-started ones are
    ticked by hand, if at all, and are left as they are)."""
    return [s for s in list(_instances) if s._thread is not None]


def _before_fork() -> None:
    global _fork_paused
    _fork_paused = _fork_targets()
    for sampler in _fork_paused:
        sampler._before_fork()


def _after_fork_in_parent() -> None:
    global _fork_paused
    paused, _fork_paused = _fork_paused, []
    for sampler in paused:
        sampler._after_fork_in_parent()


def _after_fork_in_child() -> None:
    global _fork_paused
    paused, _fork_paused = _fork_paused, []
    for sampler in paused:
        sampler._reinit_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
