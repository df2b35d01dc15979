"""NVIDIA GPUs through NVML: cumulative joules per device and this process's share of it.

NVML behaviour relied on (NVML API reference; pynvml, from the ``nvidia-ml-py`` package,
wraps each call one to one and raises ``NVMLError`` whose ``.value`` is the return code):

* ``nvmlDeviceGetTotalEnergyConsumption(handle)``: energy in **millijoules** since the
  driver was last reloaded; Volta or newer. Older boards answer NVML_ERROR_NOT_SUPPORTED,
  and pynvml raises NVML_ERROR_FUNCTION_NOT_FOUND when the driver's library lacks the call.
  Either way we fall back to power.
* ``nvmlDeviceGetPowerUsage(handle)``: board power in **milliwatts** (GPU and its memory);
  Fermi or newer, only where power management is supported. On Ampere (except GA100) and
  newer it is a 1 s average, on older boards instantaneous. We integrate it over the
  sampler's ticks with the trapezoid rule on ``HostSample.t_ns``; a tick that failed is
  bridged by the next one (linear interpolation across the gap).
* ``nvmlDeviceGetProcessUtilization(handle, lastSeenTimeStamp)``: one sample per process
  that had non-zero utilisation in a driver sample period, newer than ``lastSeenTimeStamp``
  (CPU time in µs), with ``pid``, ``timeStamp``, ``smUtil``, ``memUtil`` (percent);
  NVML_ERROR_NOT_FOUND when no sample is newer; Maxwell or newer.
* ``nvmlDeviceGet{Compute,Graphics}RunningProcesses(handle)``: processes holding a context
  on the device. PIDs are those of the host's PID namespace.
* ``nvmlInit``/``nvmlShutdown`` are reference-counted by NVML, so our pair does not
  disturb an application that uses NVML itself. One :class:`NvmlSession` per probe owns
  our ``nvmlInit``; it calls ``nvmlShutdown`` once, when its last sensor is closed.

Idle power is left at 0 W: NVML has no reading for the static part of a board's draw. The
draw with no work depends on clocks, persistence mode, memory and temperature, and would
have to be measured while nothing runs, which a probe inside a running application cannot
ensure; the power limits are caps, not idle draw. So the whole measured energy is reported
as the device's, and split by :meth:`NvmlGpuSensor.process_share`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from typing import Any, Iterable, List, Optional, Tuple

from otel_carbon import config
from otel_carbon.attributes import GPU, MEASURED
from otel_carbon.sensors.base import Diagnostic, HostSample, SensorError, SensorInfo

_logger = logging.getLogger("otel_carbon")

SOURCE_ENERGY = "nvml-energy"
SOURCE_POWER = "nvml-power"
#: How long a utilisation share stays valid when NVML has no newer sample (s). Driver
#: sample periods last between 1/6 s and 1 s, longer than a sampler tick.
SHARE_HOLD_S = 1.0

_OFF_FIX = f"or set {config.OTEL_CARBON_NVML}=off to skip NVIDIA GPUs"
_INIT_FIXES = {
    "LIBRARY_NOT_FOUND": "install the NVIDIA driver (in a container: start it with the NVIDIA "
    "Container Toolkit, e.g. `docker run --gpus all`), " + _OFF_FIX,
    "DRIVER_NOT_LOADED": "load the NVIDIA kernel driver (`nvidia-smi` must work), " + _OFF_FIX,
    "NO_PERMISSION": "give this user read/write access to /dev/nvidia*, " + _OFF_FIX,
    "LIB_RM_VERSION_MISMATCH": "the driver was upgraded: reload the kernel module or reboot, " + _OFF_FIX,
}


#: where an NVIDIA driver shows itself on Linux: its kernel module, its control device, and
#: WSL 2's paravirtualised GPU device
DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/dxg")


def _no_driver() -> bool:
    """On Linux, whether no NVIDIA driver is visible (none of :data:`DRIVER_PATHS`): then
    ``nvmlInit`` can only fail, and importing pynvml alone costs tens of milliseconds of
    every start. Elsewhere, False (NVML finds its driver its own way)."""
    return sys.platform.startswith("linux") and not any(os.path.exists(p) for p in DRIVER_PATHS)


def _load_nvml() -> Any:
    """Import and return ``pynvml``; raises ImportError when it is not installed.

    The only place that imports pynvml: importing otel_carbon never loads NVML. The
    deprecated ``pynvml`` shim package warns on import; that is not the user's problem here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The pynvml package is deprecated", category=FutureWarning)
        import pynvml
    return pynvml


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class NvmlSession:
    """One ``nvmlInit`` shared by the sensors of one probe; ``nvmlShutdown`` once at the end.

    The probe holds one reference while it builds sensors, each sensor one more.
    """

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml
        self._lock = threading.Lock()
        self._holders = 1
        self.shut_down = False

    def code(self, name: str) -> Optional[int]:
        """The numeric value of ``NVML_ERROR_<name>`` in this module, None if it lacks it."""
        return getattr(self.nvml, "NVML_ERROR_" + name, None)

    def is_error(self, exc: BaseException, *names: str) -> bool:
        value = getattr(exc, "value", None)
        return value is not None and any(value == self.code(n) for n in names)

    def acquire(self) -> None:
        with self._lock:
            if self.shut_down:
                raise RuntimeError("NVML session already shut down")
            self._holders += 1

    def release(self) -> None:
        with self._lock:
            if self.shut_down:
                return
            self._holders -= 1
            if self._holders > 0:
                return
            self.shut_down = True
        try:
            self.nvml.nvmlShutdown()
        except Exception as exc:  # noqa: BLE001 - shutting down must never raise
            _logger.debug("nvmlShutdown failed: %r", exc)


class NvmlGpuSensor:
    """Cumulative joules of one NVIDIA device; see the module docstring for the sources."""

    component = GPU
    method = MEASURED

    def __init__(
        self, session: NvmlSession, index: int, handle: Any, device_name: str, uuid: str, energy_counter: bool
    ) -> None:
        self.name = f"gpu{index}"
        self.idle_power_w = 0.0  # see the module docstring
        self.index = index
        self.device_name = device_name
        self.uuid = uuid
        self.energy_counter = energy_counter
        #: how long a utilisation share is reused while NVML has no newer sample (s)
        self.share_hold_s = SHARE_HOLD_S
        self._session = session
        self._nvml = session.nvml
        self._handle = handle
        self._closed = False
        self._lost = False
        # energy counter: offset across a counter reset (driver reload)
        self._last_counter_j: Optional[float] = None
        self._counter_offset_j = 0.0
        # power integration
        self._energy_j = 0.0
        self._last_t_ns: Optional[int] = None
        self._last_power_w = 0.0
        # process share
        self._utilization_supported = True
        self._last_seen_us = 0
        self._held_share: Optional[float] = None
        self._held_at_s = 0.0
        session.acquire()

    @property
    def source(self) -> str:
        return SOURCE_ENERGY if self.energy_counter else SOURCE_POWER

    def read(self, sample: HostSample) -> float:
        """Cumulative joules; raises :class:`SensorError` (wrapping NVMLError) on failure."""
        if self._closed:
            raise SensorError(f"{self.name}: sensor is closed")
        if self._lost:
            raise SensorError(f"{self.name} ({self.device_name}): GPU is lost; reset or reboot needed")
        try:
            if self.energy_counter:
                return self._counter_j(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
            return self._integrate_j(sample.t_ns, self._nvml.nvmlDeviceGetPowerUsage(self._handle))
        except self._nvml.NVMLError as exc:
            if self._session.is_error(exc, "GPU_IS_LOST"):
                self._lost = True  # sticky: NVML keeps answering GPU_IS_LOST for this handle
            what = "total energy" if self.energy_counter else "power usage"
            raise SensorError(f"{self.name} ({self.device_name}): reading {what} failed: {exc}") from exc

    def _counter_j(self, energy_mj: int) -> float:
        energy_j = energy_mj / 1000.0
        last = self._last_counter_j
        if last is not None and energy_j < last:  # counter restarted (driver reloaded)
            _logger.warning("%s: NVML energy counter went back from %.3f J to %.3f J", self.name, last, energy_j)
            self._counter_offset_j += last
        self._last_counter_j = energy_j
        return self._counter_offset_j + energy_j

    def _integrate_j(self, t_ns: int, power_mw: int) -> float:
        power_w = power_mw / 1000.0
        if self._last_t_ns is not None:
            dt_ns = t_ns - self._last_t_ns
            if dt_ns <= 0:  # the same tick again, or a clock that went back: add nothing
                return self._energy_j
            self._energy_j += 0.5 * (self._last_power_w + power_w) * dt_ns / 1e9
        self._last_t_ns = t_ns
        self._last_power_w = power_w
        return self._energy_j

    def process_share(self, pid: int) -> Optional[float]:
        """0..1 share of this device's energy that ``pid`` caused since the last call; None = unknown.

        Meant to be called once per tick by the sampler (each call consumes NVML's samples).

        1. Utilisation samples newer than the last call: share = the pid's ``smUtil`` / all
           pids' ``smUtil``. No newer sample (NOT_FOUND, common: driver sample periods are
           longer than a tick): the last share is reused for :attr:`share_hold_s`.
        2. Otherwise (API unsupported, no SM activity, hold expired) the running-process
           lists: 1.0 when the pid is the only process with a context on the device; None
           when it shares the device with others (utilisation unknown: we do not guess an
           equal split); 0.0 when others hold contexts and it does not.
        PIDs in NVML's answers are the host's: when none of them is a process we can see,
        we are probably in a container with its own PID namespace and answer None rather
        than 0.0. An empty process list is None too (containers often hide them).
        """
        if self._closed or self._lost:
            return None
        nvml = self._nvml
        if self._utilization_supported:
            try:
                samples = nvml.nvmlDeviceGetProcessUtilization(self._handle, self._last_seen_us)
            except nvml.NVMLError as exc:
                samples = []
                if self._session.is_error(exc, "NOT_SUPPORTED", "FUNCTION_NOT_FOUND", "NO_PERMISSION"):
                    self._utilization_supported = False
                elif self._session.is_error(exc, "NOT_FOUND") or getattr(exc, "value", None) == 0:
                    # no sample newer than the last one (pynvml raises NVMLError(SUCCESS)
                    # when the driver reports zero samples without NOT_FOUND)
                    if self._held_share is not None and time.monotonic() - self._held_at_s <= self.share_hold_s:
                        return self._held_share
                else:
                    return self._unknown(exc)
            share = self._share_from_samples(pid, samples)
            if share is not None:
                self._held_share, self._held_at_s = share, time.monotonic()
                return share
        return self._share_from_contexts(pid)

    def _share_from_samples(self, pid: int, samples: Iterable[Any]) -> Optional[float]:
        fresh = [s for s in samples if s.timeStamp > self._last_seen_us]
        if not fresh:
            return None
        self._last_seen_us = max(s.timeStamp for s in fresh)
        total = sum(s.smUtil for s in fresh)
        if total <= 0:
            return None
        own = sum(s.smUtil for s in fresh if s.pid == pid)
        if own == 0 and not _any_visible(s.pid for s in fresh):
            return None
        return own / total

    def _share_from_contexts(self, pid: int) -> Optional[float]:
        nvml = self._nvml
        pids = set()
        answered = False
        for query in (nvml.nvmlDeviceGetComputeRunningProcesses, nvml.nvmlDeviceGetGraphicsRunningProcesses):
            try:
                pids.update(p.pid for p in query(self._handle))
                answered = True
            except nvml.NVMLError as exc:
                if self._session.is_error(exc, "GPU_IS_LOST"):
                    return self._unknown(exc)
        if not answered or not pids:
            return None
        if pid in pids:
            return 1.0 if len(pids) == 1 else None
        return 0.0 if _any_visible(pids) else None

    def _unknown(self, exc: BaseException) -> None:
        if self._session.is_error(exc, "GPU_IS_LOST"):
            self._lost = True
        _logger.debug("%s: process share unknown: %s", self.name, exc)
        return None

    def info(self) -> SensorInfo:
        details = {
            "name": self.device_name,
            "uuid": self.uuid,
            "index": self.index,
            "energy_counter": self.energy_counter,
        }
        return SensorInfo(name=self.name, component=GPU, method=MEASURED, source=self.source, details=details)

    def close(self) -> None:
        """Safe to call twice; the session's last sensor closing shuts NVML down."""
        if self._closed:
            return
        self._closed = True
        self._session.release()


def _any_visible(pids: Iterable[int]) -> bool:
    """Whether any of ``pids`` is a process in our PID namespace."""
    import psutil

    return any(pid > 0 and psutil.pid_exists(pid) for pid in pids)


def probe_nvml(nvml: Any = None) -> Tuple[List[NvmlGpuSensor], List[Diagnostic]]:
    """One sensor per readable NVIDIA device, and a Diagnostic for each thing that is not.

    ``nvml`` is a module with pynvml's API (tests pass a fake); None imports pynvml.
    Never raises for a missing or broken NVML; ``OTEL_CARBON_NVML=off`` returns nothing.
    """
    if config.env_choice(config.OTEL_CARBON_NVML, "auto", "auto", "off") == "off":
        return [], []
    if nvml is None:
        if "pynvml" not in sys.modules and _no_driver():  # (a module put there first is used)
            return [], [Diagnostic("nvml", f"no NVIDIA driver on this host (none of {', '.join(DRIVER_PATHS)})", _INIT_FIXES["LIBRARY_NOT_FOUND"])]
        try:
            nvml = _load_nvml()
        except ImportError as exc:
            fix = "pip install nvidia-ml-py, " + _OFF_FIX
            return [], [Diagnostic("nvml", f"pynvml is not installed ({exc})", fix)]
    try:
        nvml.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - NVMLError, or OSError from an odd platform
        session = NvmlSession(nvml)
        default_fix = "check that `nvidia-smi` works, " + _OFF_FIX
        fix = next((f for n, f in _INIT_FIXES.items() if session.is_error(exc, n)), default_fix)
        return [], [Diagnostic("nvml", f"nvmlInit failed: {exc}", fix)]
    session = NvmlSession(nvml)
    sensors: List[NvmlGpuSensor] = []
    diagnostics: List[Diagnostic] = []
    try:
        count = nvml.nvmlDeviceGetCount()
        if count == 0:
            diagnostics.append(Diagnostic("nvml", "NVML loaded but reports no GPU", "check `nvidia-smi -L`"))
        for index in range(count):
            sensor = _probe_device(session, index, diagnostics)
            if sensor is not None:
                sensors.append(sensor)
    except nvml.NVMLError as exc:
        diagnostics.append(Diagnostic("nvml", f"nvmlDeviceGetCount failed: {exc}", "check that `nvidia-smi` works"))
    except BaseException:
        for sensor in sensors:
            sensor.close()
        raise
    finally:
        session.release()  # the probe's own reference: NVML shuts down now if no sensor holds it
    return sensors, diagnostics


def _probe_device(session: NvmlSession, index: int, diagnostics: List[Diagnostic]) -> Optional[NvmlGpuSensor]:
    nvml = session.nvml
    path = f"nvml:gpu{index}"
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        device_name = _text(nvml.nvmlDeviceGetName(handle))
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
    except nvml.NVMLError as exc:
        diagnostics.append(Diagnostic(path, f"cannot open device {index}: {exc}", "check `nvidia-smi -L`"))
        return None
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return NvmlGpuSensor(session, index, handle, device_name, uuid, energy_counter=True)
    except nvml.NVMLError as exc:
        if not session.is_error(exc, "NOT_SUPPORTED", "FUNCTION_NOT_FOUND"):
            problem = f"{device_name}: energy counter failed: {exc}"
            diagnostics.append(Diagnostic(path, problem, "check `nvidia-smi -q -d POWER`"))
            return None
    try:
        nvml.nvmlDeviceGetPowerUsage(handle)
        return NvmlGpuSensor(session, index, handle, device_name, uuid, energy_counter=False)
    except nvml.NVMLError as exc:
        problem = f"{device_name}: neither the energy counter nor power usage is readable ({exc})"
        fix = "this board reports no power (`nvidia-smi -q -d POWER`); its energy is not measured"
        diagnostics.append(Diagnostic(path, problem, fix))
        return None
