"""Host layouts the benchmarks measure besides this machine's own sensors, built from the
tests' fakes: a RAPL-shaped powercap tree (package and DRAM counters, advanced by a helper
process at 30 W and 6 W) and the same with one GPU (NVML replaced by ``tests/fake_nvml.py``
at the ``pynvml`` seam, the board drawing 150 W with this process its only compute
process). Each returns the probe and a driver to ``stop()`` after."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


class _Drivers:
    def __init__(self, *drivers: Any) -> None:
        self.drivers = drivers

    def stop(self) -> None:
        for driver in self.drivers:
            driver.stop()


class _Board:
    """Advances a fake board's energy counter at ``watts`` in a thread of this process."""

    def __init__(self, device: Any, watts: float) -> None:
        self._stop = threading.Event()
        t0 = time.monotonic()

        def run() -> None:
            while not self._stop.wait(0.05):
                device.energy_mj = int((time.monotonic() - t0) * watts * 1000)

        threading.Thread(target=run, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def rapl_probe(root: Path) -> Tuple[Any, Any]:
    from powercap_tree import CounterDriver, build_intel_tree

    from otel_carbon.sensors.probe import Probe
    from otel_carbon.sensors.rapl import probe_rapl

    zones = build_intel_tree(root, sockets=1, dram=True)
    driver = CounterDriver({zones["package-0"]: 30.0, zones["package-0/dram"]: 6.0}, period_s=0.05).start()
    sensors, _ = probe_rapl(str(root))
    return Probe(sensors=sensors), driver


def gpu_probe(root: Path) -> Tuple[Any, Any]:
    from fake_nvml import FakeDevice, FakeNvml

    from otel_carbon.sensors.nvml import probe_nvml
    from otel_carbon.sensors.probe import Probe

    probe, driver = rapl_probe(root)
    device = FakeDevice("volta", name="NVIDIA Fake H200", energy_mj=0)
    device.compute_pids.append(os.getpid())
    gpus, _ = probe_nvml(FakeNvml([device]))
    return Probe(sensors=[*probe.sensors, *gpus]), _Drivers(driver, _Board(device, 150.0))
