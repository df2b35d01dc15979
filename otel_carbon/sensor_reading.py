"""The sensors of one sampler, read for a tick: the host's CPU times paired with each
sensor's value, the GPUs' energy charged to this process, and the tick's method; and how
often the sensors need reading (:func:`default_interval_s`).

* **Pairing.** Each file read releases the GIL, and getting it back under CPU-bound threads
  can take tens of milliseconds; energy paired with CPU times read after such a wait skews
  the price. The pair is timed and read again when it took longer than
  :data:`MAX_PAIR_NS`, up to :data:`PAIR_ATTEMPTS` times; then the last reading is kept
  (under sustained CPU-bound load every attempt may be slow; the totals are cumulative, so
  a skew only moves energy between two adjacent intervals). Models computed from the
  tick's own ``/proc/stat`` reading are paired by construction: a tick over model sensors
  only is read once (each retry waits for the GIL again, which under CPU-bound threads is
  what starves the thread).

A sensor that raises (or returns something that is not a finite number) marks its component
``unavailable`` for that tick, keeps its previous cumulative value, and is logged once; the
error text stays in :attr:`SensorReading.errors` for ``otel-carbon sensors``. Nothing here
raises into the sampler.
"""

from __future__ import annotations

import logging
import os
import time
from math import isfinite
from typing import Any, Callable, Dict, List, Optional, Tuple

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon.attributes import ESTIMATED, MEASURED, MIXED, SAMPLER_GAPS, UNAVAILABLE
from otel_carbon.host_cpu import host_cpu_seconds
from otel_carbon.ledger import Ledger, Tick
from otel_carbon.sensors.base import HostSample
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.cpu_model import CpuModelSensor
from otel_carbon.sensors.probe import Probe

_logger = logging.getLogger("otel_carbon")

MAX_PAIR_NS = 5_000_000  # a reading whose parts were more than 5 ms apart is retried
PAIR_ATTEMPTS = 3  # ... up to this many times, then the last reading is kept anyway

#: Default intervals by sensor layout (see default_interval_s; bench_interval.py measured
#: them: the longest interval whose per-span error stays within 2 %).
LINEAR_INTERVAL_S = 2.0  # models linear in CPU time: the price does not depend on it
CURVE_INTERVAL_S = 0.25  # the TDP curve: a tick's mean utilisation moves along a curve
COUNTER_INTERVAL_S = config.DEFAULT_SAMPLE_INTERVAL_S  # hardware counters and GPUs

#: sensors computed from the tick's own host reading (no counter to pair with it)
_MODELS = (CpuModelSensor, ConstantPowerSensor)


def default_interval_s(probe: Probe) -> float:
    """The sampler's interval for ``probe``'s sensors when none is configured: the longest
    that keeps span figures within 2 % (``benchmarks/bench_interval.py``).

    * Only models linear in CPU time (the ccf line, constant power, the memory model) and
      no GPU: :data:`LINEAR_INTERVAL_S`. Their active joules are ``slope x busy
      CPU-seconds`` however the ticks fall, so the price of a CPU-second is exact at any
      interval; the interval only sets how fresh the power metrics are.
    * The TDP curve: :data:`CURVE_INTERVAL_S`.
    * A hardware counter (RAPL) or a GPU, or a sensor this function does not know:
      :data:`COUNTER_INTERVAL_S` (the counters are cumulative, but the price follows the
      load only as fast as they are read; GPU energy is split among the spans open in each
      tick).
    """
    interval_s = LINEAR_INTERVAL_S
    for sensor in probe.sensors:
        if type(sensor) is CpuModelSensor and sensor.curve == "tdp":
            interval_s = min(interval_s, CURVE_INTERVAL_S)
        elif not (type(sensor) is ConstantPowerSensor or (type(sensor) is CpuModelSensor and sensor.curve == "ccf")):
            interval_s = min(interval_s, COUNTER_INTERVAL_S)
    return interval_s


def pair_attempts(probe: Probe) -> int:
    """Readings per tick at most: :data:`PAIR_ATTEMPTS` when a counter is paired with the
    host's CPU times, one when every sensor is a model computed from them (paired by
    construction)."""
    return 1 if all(type(s) in _MODELS for s in probe.sensors) else PAIR_ATTEMPTS


class SensorReading:
    """Reads the host's CPU times (``proc_stat``, see :mod:`otel_carbon.host_cpu`) with
    ``probe``'s sensors (CPU, memory, others) and GPUs, for each tick."""

    def __init__(self, probe: Probe, proc_stat: Any, n_cpus: int) -> None:
        self._proc_stat = proc_stat
        self.n_cpus = n_cpus
        self._attempts = pair_attempts(probe)
        self.dropped_pairs = 0  # readings retried because their parts were too far apart
        self.skewed_pairs = 0  # readings kept although every attempt was too slow
        self.sensors = [s for s in probe.sensors if s.component != "gpu"]
        self.gpus = probe.gpus
        #: sensor name -> the error of its last failed read (gone once it reads again)
        self.errors: Dict[str, str] = {}
        #: latest cumulative energy (J, arbitrary origin) of each GPU, by index in gpus
        self.gpu_last_j: Dict[int, float] = {}
        #: the process whose share of each GPU is charged (set again after fork)
        self.pid = os.getpid()
        self._method_ok = combine({s.method for s in probe.sensors})
        #: the longest interval between two readings that misses no counter wrap
        self.max_safe_interval_s = float(
            min((getattr(s, "max_read_interval_s", lambda: float("inf"))() for s in probe.sensors), default=float("inf"))
        )

    def new_ledger(self) -> Ledger:
        """An empty ledger for these sensors."""
        return Ledger(
            [s.component for s in self.sensors],
            [s.idle_power_w for s in self.sensors],
            nominal_price_j_per_cpu_s=[getattr(s, "nominal_price_j_per_cpu_s", 0.0) for s in self.sensors],
        )

    def read(self, sensor: object, sample: HostSample) -> Optional[float]:
        """One sensor's cumulative value, or None when it failed."""
        try:
            value = float(sensor.read(sample))  # type: ignore[attr-defined]
            if not isfinite(value):
                raise ValueError(f"not a finite number: {value!r}")
            self.errors.pop(sensor.name, None)  # type: ignore[attr-defined]
            return value
        except Exception as exc:  # noqa: BLE001 - a sensor must never stop the sampler
            name = getattr(sensor, "name", repr(sensor))
            self.errors[name] = repr(exc)
            warn_once(_logger, f"sensor:{name}", "otel_carbon: sensor %s failed (%r); its energy is unavailable", name, exc)
            return None

    def read_paired(self, clock_ns: Callable[[], int], first: bool) -> Tuple[HostSample, List[Optional[float]], float]:
        """The host's CPU times, the process's CPU time (s), the time (``clock_ns``) and every
        sensor, read as close together as the GIL allows (see the module docstring);
        ``first``: the first reading (nothing to pair it with, so never read again)."""
        for _ in range(self._attempts):
            pair_start = time.perf_counter_ns()
            busy_s, total_s = host_cpu_seconds(self._proc_stat)
            proc_cpu_s = time.process_time_ns() / 1e9
            sample = HostSample(clock_ns(), busy_s, total_s, self.n_cpus)
            readings = self.read_all(sample)
            if time.perf_counter_ns() - pair_start <= MAX_PAIR_NS or first or self._attempts == 1:
                break
            self.dropped_pairs += 1
        else:
            # Every attempt waited too long for the GIL (CPU-bound threads): keep the last
            # one. The totals are cumulative, so the skew moves energy between two adjacent
            # intervals and cancels over any window longer than a tick.
            self.skewed_pairs += 1
        return sample, readings, proc_cpu_s

    def read_all(self, sample: HostSample) -> List[Optional[float]]:
        """Every non-GPU sensor's value (see :meth:`read`), in :attr:`sensors` order."""
        return [self.read(s, sample) for s in self.sensors]

    def energy(
        self, prev: Optional[Tick], sample: HostSample, readings: List[Optional[float]]
    ) -> Tuple[List[float], str, float]:
        """The tick's cumulative energy per sensor (a failed one keeps ``prev``'s), its
        method, and the cumulative GPU energy charged to this process (the GPUs are read
        here)."""
        gpu_proc_j, gpu_ok = self._read_gpus(prev, sample)
        if gpu_ok and None not in readings:
            return readings, self._method_ok, gpu_proc_j  # type: ignore[return-value]
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
        return energy, combine(methods), gpu_proc_j

    def _read_gpus(self, prev: Optional[Tick], sample: HostSample) -> Tuple[float, bool]:
        """Cumulative GPU energy charged to this process, and whether every GPU read."""
        if not self.gpus:
            return 0.0, True
        ok = True
        total = prev.gpu_proc_j if prev is not None else 0.0
        for i, gpu in enumerate(self.gpus):
            last = self.gpu_last_j.get(i)
            value = self.read(gpu, sample)
            if value is None:
                ok = False
                continue
            self.gpu_last_j[i] = value
            if last is None:
                continue
            try:
                share = gpu.process_share(self.pid)
            except Exception:  # noqa: BLE001
                share = None
            total += max(value - last, 0.0) * (1.0 if share is None else min(max(share, 0.0), 1.0))
        return total, ok


def warn_long_gap(gap_ns: float, limit_ns: float) -> None:
    """Two readings further apart than a counter's wrap period at the highest plausible
    power: counted by the sampler, logged once."""
    warn_once(
        _logger,
        "sampler-gap",
        "otel_carbon: %.1f s between two sensor readings, longer than a counter's wrap "
        "period at the highest plausible power (%.1f s): the sampler thread was starved "
        "(a call holding the GIL, a frozen process?). Energy in such intervals may be short "
        "by whole counter ranges; they are counted in the %s metric",
        gap_ns / 1e9,
        limit_ns / 1e9,
        SAMPLER_GAPS,
    )


def combine(methods: "set[str]") -> str:
    """One method for a tick whose sensors have ``methods``."""
    if not methods or UNAVAILABLE in methods:
        return UNAVAILABLE
    if methods == {MEASURED}:
        return MEASURED
    if methods == {ESTIMATED}:
        return ESTIMATED
    return MIXED
