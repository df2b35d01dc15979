"""A fake ``pynvml`` module object for tests, following the real API's documented behaviour.

* Same function names and signatures as pynvml for what otel_carbon calls.
* ``NVMLError`` *is* pynvml's class and every ``NVML_ERROR_*`` constant is copied from the
  installed pynvml, so codes cannot drift (``NVMLError(code)`` gives the same subclasses,
  e.g. ``NVMLError_GpuIsLost``, as the real library).
* Units as NVML: energy in millijoules since the driver loaded, power in milliwatts,
  process utilisation samples with ``pid``, ``timeStamp`` (µs), ``smUtil``, ``memUtil`` (%).
* Every call but ``nvmlInit`` raises NVML_ERROR_UNINITIALIZED before ``nvmlInit`` or after
  the matching ``nvmlShutdown`` (NVML counts init/shutdown pairs).
* Per device: ``kind`` "volta" (energy counter), "old" (energy NOT_SUPPORTED, power works)
  or "nopower" (neither); the current ``energy_mj`` / ``power_mw`` are plain attributes a
  test scripts between reads; :meth:`FakeDevice.lose` makes every later call on the device
  raise NVML_ERROR_GPU_IS_LOST; :meth:`FakeDevice.fail_next` raises one chosen error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # the deprecated pynvml shim warns on import
    import pynvml as _real

ERROR_CODES: Dict[str, int] = {n: getattr(_real, n) for n in dir(_real) if n.startswith("NVML_ERROR_")}


@dataclass
class ProcessUtilizationSample:
    """Like ``c_nvmlProcessUtilizationSample_t``."""

    pid: int
    timeStamp: int  # noqa: N815 - NVML's name; CPU timestamp in microseconds
    smUtil: int  # noqa: N815
    memUtil: int = 0  # noqa: N815
    encUtil: int = 0  # noqa: N815
    decUtil: int = 0  # noqa: N815


@dataclass
class ProcessInfo:
    """Like the friendly object pynvml builds from ``c_nvmlProcessInfo_t``."""

    pid: int
    usedGpuMemory: Optional[int] = None  # noqa: N815


class FakeHandle:
    """Opaque, like ``c_nvmlDevice_t``."""

    def __init__(self, index: int) -> None:
        self._index = index


class FakeDevice:
    def __init__(
        self,
        kind: str = "volta",
        name: Any = "NVIDIA Fake GPU",
        uuid: str = "GPU-00000000-0000-0000-0000-000000000000",
        energy_mj: int = 0,
        power_mw: int = 0,
        process_utilization: bool = True,
    ) -> None:
        if kind not in ("volta", "old", "nopower"):
            raise ValueError(f"kind must be volta, old or nopower, not {kind!r}")
        self.kind = kind
        self.name = name
        self.uuid = uuid
        self.energy_mj = energy_mj
        self.power_mw = power_mw
        self.process_utilization = process_utilization
        self.samples: List[ProcessUtilizationSample] = []
        self.compute_pids: List[int] = []
        self.graphics_pids: List[int] = []
        self.lost = False
        self.utilization_timestamps: List[int] = []  # lastSeenTimeStamp of each call
        self._fail: List[Tuple[int, Optional[str]]] = []

    def lose(self) -> None:
        """From now on every call on this device raises NVML_ERROR_GPU_IS_LOST."""
        self.lost = True

    def fail_next(self, code: int, call: Optional[str] = None) -> None:
        """The next call on this device (or the next call of the function named ``call``)
        raises ``NVMLError(code)``."""
        self._fail.append((code, call))

    def add_sample(self, pid: int, t_us: int, sm_util: int, mem_util: int = 0) -> None:
        self.samples.append(ProcessUtilizationSample(pid, t_us, sm_util, mem_util))


class FakeNvml:
    """An object standing in for the ``pynvml`` module."""

    NVMLError = _real.NVMLError
    NVML_SUCCESS = _real.NVML_SUCCESS

    def __init__(self, devices: Sequence[FakeDevice] = (), init_error: Optional[int] = None) -> None:
        self.devices = list(devices)
        self.init_error = init_error
        self.init_calls = 0
        self.shutdown_calls = 0
        self._refcount = 0

    # -- library ----------------------------------------------------------------
    def nvmlInit(self) -> None:
        self.init_calls += 1
        if self.init_error is not None:
            raise self.NVMLError(self.init_error)
        self._refcount += 1

    def nvmlShutdown(self) -> None:
        self._check_init()
        self.shutdown_calls += 1
        self._refcount -= 1

    def _check_init(self) -> None:
        if self._refcount <= 0:
            raise self.NVMLError(_real.NVML_ERROR_UNINITIALIZED)

    def _device(self, handle: Any, call: str) -> FakeDevice:
        self._check_init()
        if not isinstance(handle, FakeHandle) or not 0 <= handle._index < len(self.devices):
            raise self.NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
        device = self.devices[handle._index]
        if device.lost:
            raise self.NVMLError(_real.NVML_ERROR_GPU_IS_LOST)
        for i, (code, only) in enumerate(device._fail):
            if only is None or only == call:
                del device._fail[i]
                raise self.NVMLError(code)
        return device

    # -- devices ------------------------------------------------------------------
    def nvmlDeviceGetCount(self) -> int:
        self._check_init()
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        self._check_init()
        if not 0 <= index < len(self.devices):
            raise self.NVMLError(_real.NVML_ERROR_INVALID_ARGUMENT)
        return FakeHandle(index)

    def nvmlDeviceGetName(self, handle: Any) -> Any:
        return self._device(handle, "nvmlDeviceGetName").name

    def nvmlDeviceGetUUID(self, handle: Any) -> str:
        return self._device(handle, "nvmlDeviceGetUUID").uuid

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:
        device = self._device(handle, "nvmlDeviceGetTotalEnergyConsumption")
        if device.kind != "volta":
            raise self.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
        return int(device.energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:
        device = self._device(handle, "nvmlDeviceGetPowerUsage")
        if device.kind == "nopower":
            raise self.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
        return int(device.power_mw)

    def nvmlDeviceGetProcessUtilization(  # noqa: N802 - pynvml's names
        self, handle: Any, timeStamp: int  # noqa: N803
    ) -> List[ProcessUtilizationSample]:
        device = self._device(handle, "nvmlDeviceGetProcessUtilization")
        if not device.process_utilization:
            raise self.NVMLError(_real.NVML_ERROR_NOT_SUPPORTED)
        device.utilization_timestamps.append(timeStamp)
        fresh = [s for s in device.samples if s.timeStamp > timeStamp]
        if not fresh:
            raise self.NVMLError(_real.NVML_ERROR_NOT_FOUND)
        return fresh

    def nvmlDeviceGetComputeRunningProcesses(self, handle: Any) -> List[ProcessInfo]:
        return [ProcessInfo(pid) for pid in self._device(handle, "nvmlDeviceGetComputeRunningProcesses").compute_pids]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: Any) -> List[ProcessInfo]:
        return [ProcessInfo(pid) for pid in self._device(handle, "nvmlDeviceGetGraphicsRunningProcesses").graphics_pids]


for _name, _code in ERROR_CODES.items():  # NVML_ERROR_* as attributes, like the module's
    setattr(FakeNvml, _name, _code)
