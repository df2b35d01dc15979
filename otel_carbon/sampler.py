"""One daemon thread per process that reads every sensor on a fixed interval.

The sampler is the only code that touches sensors, files or NVML. Each tick it reads the
host CPU times (``/proc/stat`` through psutil), the process CPU time and every sensor, as
close together as it can, and appends the reading to the :class:`~otel_carbon.ledger.Ledger`.

* **Pairing.** Each file read releases the GIL, and getting it back under CPU-bound threads
  can take tens of milliseconds; energy paired with CPU times read after such a wait skews
  the price. The pair is timed and dropped when it took longer than
  :data:`MAX_PAIR_NS` (the counters are cumulative, so the next tick covers it).
* **Failures.** A sensor that raises marks its component ``unavailable`` for that tick and
  logs once; the thread never dies. A sensor that hangs stalls the ledger, and spans that
  end on a stale ledger say ``unavailable``.
* **One per process.** :func:`get_sampler` returns the process-wide sampler, started
  lazily; every processor, meter and tracker shares it, so the same joules are never
  counted twice. After ``fork`` the child gets a fresh ledger and its own thread
  (``os.register_at_fork``), exactly like the SDK's batch processor.
* **Shutdown** is idempotent and joins within a timeout.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Dict, List, Optional

import psutil

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon.attributes import ESTIMATED, MEASURED, MIXED, UNAVAILABLE
from otel_carbon.intensity import IntensitySource, intensity_source
from otel_carbon.ledger import Ledger, Tick
from otel_carbon.sensors.base import HostSample
from otel_carbon.sensors.probe import Probe, get_probe

_logger = logging.getLogger("otel_carbon")

MAX_PAIR_NS = 5_000_000  # a reading whose parts were more than 5 ms apart is dropped
STALE_TICKS = 10  # a ledger older than this many intervals (and >= 1 s) is stale


def host_cpu_seconds() -> "tuple[float, float]":
    """(busy, total) CPU-seconds of the host since boot, all CPUs.

    busy = user + nice + system + irq + softirq; total adds idle, iowait and steal
    (time the hypervisor gave to someone else is not our work, nor free capacity we used).
    """
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    total = busy + t.idle + getattr(t, "iowait", 0.0) + getattr(t, "steal", 0.0)
    return busy, total


class Sampler:
    """Reads the sensors of ``probe`` every ``interval_s`` into :attr:`ledger`."""

    def __init__(
        self,
        probe: Probe,
        interval_s: Optional[float] = None,
        intensity: Optional[IntensitySource] = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if interval_s is None:
            interval_s = config.sample_interval_s()
        if not (isinstance(interval_s, (int, float)) and interval_s > 0):
            raise ValueError(f"interval_s must be a number of seconds > 0, got {interval_s!r}")
        self.probe = probe
        self.gpus = probe.gpus
        self.sensors = [s for s in probe.sensors if s.component != "gpu"]
        safe = [getattr(s, "max_read_interval_s", lambda: float("inf"))() for s in probe.sensors]
        self.interval_s = float(min([interval_s, *safe]))
        self._intensity_given = intensity is not None
        self._intensity = intensity if intensity is not None else intensity_source()
        self._clock_ns = clock_ns
        self._pid = os.getpid()
        self._n_cpus = psutil.cpu_count(logical=True) or 1
        self._span_counters: List[Callable[[], int]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.ticks = 0
        self.dropped_pairs = 0
        self.sensor_errors: Dict[str, str] = {}
        self._gpu_last_j: Dict[int, float] = {}
        self.ledger = self._new_ledger()

    def _new_ledger(self) -> Ledger:
        return Ledger(
            [s.component for s in self.sensors],
            [s.idle_power_w for s in self.sensors],
            nominal_price_j_per_cpu_s=[getattr(s, "nominal_price_j_per_cpu_s", 0.0) for s in self.sensors],
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "Sampler":
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stop.clear()
            self.tick()  # a first reading now, so the first spans have a baseline
            self._thread = threading.Thread(target=self._run, name="otel-carbon-sampler", daemon=True)
            self._thread.start()
        return self

    def use_resource(self, resource_attributes: Dict[str, object]) -> None:
        """Resolve the intensity again with the tracer provider's Resource (cloud.provider,
        cloud.region), unless an intensity source was given explicitly. Called once, with
        the first span's resource."""
        if self._intensity_given or not any(k.startswith("cloud.") for k in resource_attributes):
            return
        try:
            new = intensity_source(resource_attributes)
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "use-resource", "otel_carbon: resource-based intensity failed: %r", exc)
            return
        old, self._intensity = self._intensity, new
        self._intensity_given = True
        old.shutdown()

    def shutdown(self, timeout_s: float = 2.0) -> bool:
        """Stop the thread; True when it ended within ``timeout_s``. Safe to call twice."""
        self._stop.set()
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

    def _reinit_after_fork(self) -> None:
        """In a forked child: new locks, a fresh ledger, a new thread (if one ran)."""
        was_running = self._thread is not None and not self._stop.is_set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._pid = os.getpid()
        self.ledger = self._new_ledger()
        if was_running:
            self.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.tick()

    # -- spans ------------------------------------------------------------------------------

    def register_span_counter(self, counter: Callable[[], int]) -> None:
        """``counter()`` gives how many spans are open now (for splitting GPU energy)."""
        with self._lock:  # copy on write: the tick reads the list without a lock
            self._span_counters = [*self._span_counters, counter]

    def unregister_span_counter(self, counter: Callable[[], int]) -> None:
        with self._lock:
            self._span_counters = [c for c in self._span_counters if c is not counter]

    def stale(self, tick: Optional[Tick], now_ns: int) -> bool:
        if tick is None:
            return True
        return now_ns - tick.t_ns > max(STALE_TICKS * self.interval_s, 1.0) * 1e9

    # -- one tick ---------------------------------------------------------------------------

    def _read(self, sensor: object, sample: HostSample) -> Optional[float]:
        try:
            value = float(sensor.read(sample))  # type: ignore[attr-defined]
            if value != value or value in (float("inf"), float("-inf")):
                raise ValueError(f"not a finite number: {value!r}")
            self.sensor_errors.pop(sensor.name, None)  # type: ignore[attr-defined]
            return value
        except Exception as exc:  # noqa: BLE001 - a sensor must never stop the sampler
            name = getattr(sensor, "name", repr(sensor))
            self.sensor_errors[name] = repr(exc)
            warn_once(_logger, f"sensor:{name}", "otel_carbon: sensor %s failed (%r); its energy is unavailable", name, exc)
            return None

    def tick(self) -> Optional[Tick]:
        """Take one reading now. Never raises; returns the tick, or None when dropped."""
        try:
            return self._tick()
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "sampler-tick", "otel_carbon: sampler tick failed: %r", exc)
            return None

    def _tick(self) -> Optional[Tick]:
        pair_start = time.perf_counter_ns()
        busy_s, total_s = host_cpu_seconds()
        proc_cpu_s = time.process_time_ns() / 1e9
        t_ns = self._clock_ns()
        sample = HostSample(t_ns=t_ns, busy_s=busy_s, total_s=total_s, n_cpus=self._n_cpus)
        readings = [self._read(s, sample) for s in self.sensors]
        pair_ns = time.perf_counter_ns() - pair_start
        prev = self.ledger.latest
        if pair_ns > MAX_PAIR_NS and prev is not None:
            self.dropped_pairs += 1
            return None
        gpu_proc_j, gpu_ok = self._read_gpus(sample)
        methods = set()
        energy = []
        for i, (sensor, value) in enumerate(zip(self.sensors, readings)):
            if value is None:
                methods.add(UNAVAILABLE)
                value = prev.energy_j[i] if prev is not None else 0.0
            else:
                methods.add(sensor.method)
            energy.append(value)
        if self.gpus:
            methods.add(MEASURED if gpu_ok else UNAVAILABLE)
        active = 0
        for counter in self._span_counters:
            try:
                active += int(counter())
            except Exception:  # noqa: BLE001
                pass
        tick = self.ledger.append_reading(
            t_ns, energy, busy_s, total_s, proc_cpu_s, gpu_proc_j, active, self._intensity.current(), _combine(methods)
        )
        self.ticks += 1
        return tick

    def _read_gpus(self, sample: HostSample) -> "tuple[float, bool]":
        """Cumulative GPU energy charged to this process, and whether every GPU read."""
        if not self.gpus:
            return 0.0, True
        prev = self.ledger.latest
        ok = True
        total = prev.gpu_proc_j if prev is not None else 0.0
        for i, gpu in enumerate(self.gpus):
            last = self._gpu_last_j.get(i)
            value = self._read(gpu, sample)
            if value is None:
                ok = False
                continue
            self._gpu_last_j[i] = value
            if last is None:
                continue
            share = None
            try:
                share = gpu.process_share(self._pid)
            except Exception:  # noqa: BLE001
                share = None
            total += max(value - last, 0.0) * (1.0 if share is None else min(max(share, 0.0), 1.0))
        return total, ok


def _combine(methods: "set[str]") -> str:
    if not methods:
        return UNAVAILABLE
    if UNAVAILABLE in methods:
        return UNAVAILABLE
    if methods == {MEASURED}:
        return MEASURED
    if methods == {ESTIMATED}:
        return ESTIMATED
    return MIXED


_sampler: Optional[Sampler] = None
_sampler_lock = threading.Lock()


def get_sampler() -> Sampler:
    """The process-wide sampler, created and started on first use."""
    global _sampler
    sampler = _sampler
    if sampler is not None:
        return sampler
    with _sampler_lock:
        if _sampler is None:
            _sampler = Sampler(get_probe()).start()
        return _sampler


def set_sampler(sampler: Optional[Sampler]) -> Optional[Sampler]:
    """Replace the process-wide sampler (tests, custom sensors); returns the old one."""
    global _sampler
    with _sampler_lock:
        old, _sampler = _sampler, sampler
    return old


def shutdown_sampler(timeout_s: float = 2.0) -> None:
    old = set_sampler(None)
    if old is not None:
        old.shutdown(timeout_s)


def _after_fork_in_child() -> None:
    global _sampler_lock
    _sampler_lock = threading.Lock()
    if _sampler is not None:
        _sampler._reinit_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
