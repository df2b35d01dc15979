#!/usr/bin/env python3
"""Check NVML's GPU energy figures on a machine with an NVIDIA GPU (about half a minute).

While matrix multiplications run on one GPU for ``--seconds`` (torch or cupy, whichever
imports; with neither the GPU stays idle and the check still runs), this script:

* reads NVML's energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta+) before
  and after the window;
* samples ``nvmlDeviceGetPowerUsage`` (mW) every ``--interval`` seconds and integrates it
  with the trapezoid rule;
* reads otel_carbon's own GPU sensor (``probe_nvml``) on the same ticks, and its share of
  the device for this process, when otel_carbon is importable;
* reads every readable RAPL counter (``/sys/class/powercap/*/energy_uj``) before and after.

It prints each figure and the ratio counter / integrated power. The window starts
``--lead`` seconds before the load and ends ``--tail`` seconds after it: on Ampere and
newer boards the power reading is a 1 s average, so an idle margin lets the lagging
average catch up and both figures cover the same energy.

    python examples/gpu_check.py [--device 0] [--seconds 20] [--interval 0.1]

Exits 2 with a message when NVML is absent (no pynvml, or no NVIDIA driver).
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import threading
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

# NVML lists GPUs in PCI bus order; make CUDA's device numbers agree (unless already set).
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(2)


def load_nvml():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated `pynvml` shim warns
        try:
            import pynvml
        except ImportError:
            fail("NVML is not available: the pynvml module is missing (pip install nvidia-ml-py).")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        fail(f"NVML is not available: nvmlInit failed ({exc}). Is the NVIDIA driver installed? "
             "Does `nvidia-smi` work?")
    return pynvml


def read_rapl() -> Dict[str, Tuple[int, int]]:
    """{zone path: (energy_uj, max_energy_range_uj)} for every readable RAPL zone."""
    zones = {}
    for path in sorted(glob.glob("/sys/class/powercap/*/energy_uj")):
        zone = os.path.dirname(path)
        try:
            with open(path) as f:
                energy_uj = int(f.read())
            with open(os.path.join(zone, "max_energy_range_uj")) as f:
                max_uj = int(f.read())
            with open(os.path.join(zone, "name")) as f:
                name = f.read().strip()
        except (OSError, ValueError):
            continue
        zones[f"{os.path.basename(zone)} ({name})"] = (energy_uj, max_uj)
    return zones


def make_workload(index: int, size: int) -> Tuple[str, Optional[Callable[[], None]], Optional[Callable[[], None]]]:
    """(library name, one step of matmuls, synchronize) or ("none", None, None)."""
    try:
        import torch

        if torch.cuda.is_available():
            device = torch.device(f"cuda:{index}")
            a = torch.randn(size, size, device=device, dtype=torch.float16)
            b = torch.randn(size, size, device=device, dtype=torch.float16)

            def step() -> None:
                torch.matmul(a, b)

            return f"torch {torch.__version__}", step, lambda: torch.cuda.synchronize(device)
    except ImportError:
        pass
    try:
        import cupy

        cupy.cuda.Device(index).use()
        a = cupy.random.random((size, size), dtype=cupy.float32)
        b = cupy.random.random((size, size), dtype=cupy.float32)

        def step_cupy() -> None:
            cupy.matmul(a, b)

        return f"cupy {cupy.__version__}", step_cupy, lambda: cupy.cuda.Device(index).synchronize()
    except ImportError:
        pass
    return "none", None, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="NVML device index (default 0)")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of load (default 20)")
    parser.add_argument("--interval", type=float, default=0.1, help="power sampling interval, s (default 0.1)")
    parser.add_argument("--size", type=int, default=8192, help="matrix size (default 8192)")
    parser.add_argument("--lead", type=float, default=1.0, help="idle seconds before the load (default 1)")
    parser.add_argument("--tail", type=float, default=2.0, help="idle seconds after the load (default 2)")
    args = parser.parse_args()
    if not (0 < args.seconds <= 240 and 0 < args.interval <= 5):
        parser.error("--seconds must be in (0, 240] and --interval in (0, 5]")

    nvml = load_nvml()
    count = nvml.nvmlDeviceGetCount()
    if not 0 <= args.device < count:
        fail(f"NVML sees {count} GPU(s); there is no device {args.device}.")
    handle = nvml.nvmlDeviceGetHandleByIndex(args.device)
    name = nvml.nvmlDeviceGetName(handle)
    print(f"GPU {args.device}: {name.decode() if isinstance(name, bytes) else name}")

    def energy_mj() -> Optional[int]:
        try:
            return nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except nvml.NVMLError as exc:
            print(f"energy counter unavailable: {exc}")
            return None

    # otel_carbon's sensor for the same device, when the package is importable
    sensor = None
    try:
        from otel_carbon.sensors.base import HostSample
        from otel_carbon.sensors.nvml import probe_nvml

        sensors, diagnostics = probe_nvml()
        for d in diagnostics:
            print(f"otel_carbon diagnostic: {d.path}: {d.problem} ({d.fix})")
        sensor = next((s for s in sensors if s.index == args.device), None)
    except ImportError:
        sensors = []
        print("otel_carbon is not importable: its sensor is not checked")

    library, step, sync = make_workload(args.device, args.size)
    print(f"workload: {library}" + ("" if step else " (no torch/cupy: the GPU stays idle)"))
    if step and sync:  # warm up (cuBLAS handles, clocks) outside the window
        step()
        sync()

    samples: List[Tuple[int, int]] = []  # (t_ns, power_mw)
    sensor_j: List[float] = []
    shares: List[Optional[float]] = []
    stop = threading.Event()

    def sample_power() -> None:
        while True:  # one more sample after stop, so samples span the counter's window
            last = stop.is_set()
            t_ns = time.monotonic_ns()
            try:
                samples.append((t_ns, nvml.nvmlDeviceGetPowerUsage(handle)))
            except nvml.NVMLError as exc:
                print(f"power read failed: {exc}")
            if sensor is not None:
                try:
                    sensor_j.append(sensor.read(HostSample(t_ns=t_ns, busy_s=0.0, total_s=0.0, n_cpus=1)))
                    shares.append(sensor.process_share(os.getpid()))
                except Exception as exc:  # noqa: BLE001 - report and go on
                    print(f"otel_carbon sensor failed: {exc!r}")
            if last:
                return
            stop.wait(args.interval)

    rapl_before = read_rapl()
    counter_before = energy_mj()
    t0 = time.monotonic()
    sampler = threading.Thread(target=sample_power, daemon=True)
    sampler.start()
    time.sleep(args.lead)
    steps = 0
    if step and sync:
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            step()
            steps += 1
            if steps % 8 == 0:
                sync()  # keep the queue short so the load stops on time
        sync()
    else:
        time.sleep(args.seconds)
    time.sleep(args.tail)
    stop.set()
    sampler.join()
    counter_after = energy_mj()
    elapsed_s = time.monotonic() - t0
    rapl_after = read_rapl()

    integrated_j = sum(
        (p0 + p1) / 2 / 1000 * (t1 - t0_) / 1e9 for (t0_, p0), (t1, p1) in zip(samples, samples[1:])
    )
    span_s = (samples[-1][0] - samples[0][0]) / 1e9 if len(samples) > 1 else 0.0
    print(f"window: {elapsed_s:.2f} s, {len(samples)} power samples over {span_s:.2f} s, {steps} matmul steps")
    if step:
        tflop = 2 * args.size**3 * steps / 1e12
        print(f"work: {tflop:.1f} TFLOP ({tflop / args.seconds:.1f} TFLOP/s)")
    print(f"integrated power:     {integrated_j:10.1f} J (mean {integrated_j / span_s if span_s else 0:.1f} W)")
    if counter_before is not None and counter_after is not None:
        counter_j = (counter_after - counter_before) / 1000
        print(f"energy counter delta: {counter_j:10.1f} J over {elapsed_s:.2f} s")
        if integrated_j > 0:
            ratio = counter_j / integrated_j
            print(f"ratio counter / integrated power: {ratio:.3f} ({abs(ratio - 1) * 100:.1f}% apart)")
    if sensor is not None and len(sensor_j) > 1:
        print(f"otel_carbon {sensor.name} ({sensor.info().source}): {sensor_j[-1] - sensor_j[0]:10.1f} J")
        known = [s for s in shares if s is not None]
        mean = f"{sum(known) / len(known):.3f}" if known else "n/a"
        print(f"otel_carbon process_share(this pid): mean {mean}, unknown on {len(shares) - len(known)}"
              f" of {len(shares)} ticks")
    for s in sensors:
        s.close()
    if rapl_before:
        for zone, (before_uj, max_uj) in rapl_before.items():
            if zone in rapl_after:
                delta_uj = rapl_after[zone][0] - before_uj
                if delta_uj < 0:  # wrapped once
                    delta_uj += max_uj
                print(f"RAPL {zone}: {delta_uj / 1e6:10.1f} J")
    else:
        print("RAPL: no readable /sys/class/powercap/*/energy_uj (not root, or no RAPL here)")
    nvml.nvmlShutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
