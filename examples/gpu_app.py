#!/usr/bin/env python3
"""A traced GPU workload: each span's energy, GPU included (``carbon.energy.gpu``), and CO2e.

    python examples/gpu_app.py [--seconds 5] [--size 4096] [--device 0]

It runs matrix multiplications on an NVIDIA GPU (torch, else cupy) inside one span, some
CPU-only work inside another, and prints each span's CPU time, CPU and GPU energy, total
energy and CO2e. GPU energy comes from NVML (the board's energy counter on Volta and newer,
else its integrated power), as this process's share of the device, split among the spans
open at the time. Set ``OTEL_TRACES_EXPORTER`` (e.g. ``otlp``) to export the spans as well.

Exit status: 0 when the GPU span carried GPU energy; 1 when it did not; 2 (with the reason
and its fix) when no GPU can be measured here: no NVIDIA driver, no ``nvidia-ml-py``, no
device, or ``OTEL_CARBON_NVML=off``; 3 when neither torch nor cupy can use the GPU.
``examples/gpu_check.py`` compares NVML's counter with its power readings and RAPL.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import threading
import time
from typing import Any, Callable, List, NoReturn, Optional, Sequence, Tuple

# NVML numbers GPUs in PCI bus order; make CUDA's numbering agree (unless already set).
os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan  # noqa: E402
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult  # noqa: E402

import otel_carbon  # noqa: E402
from otel_carbon import attributes as A  # noqa: E402
from otel_carbon import config  # noqa: E402

EXIT_NO_GPU_ENERGY, EXIT_NO_GPU, EXIT_NO_LIBRARY = 1, 2, 3


def fail(code: int, message: str) -> NoReturn:
    print(message, file=sys.stderr)
    sys.exit(code)


def measurable_gpus() -> List[Any]:
    """otel_carbon's GPU sensors (the process-wide probe); exits 2 with the reason if none."""
    if config.env_choice(config.OTEL_CARBON_NVML, "auto", "auto", "off") == "off":
        fail(EXIT_NO_GPU, f"GPU energy is not measured: {config.OTEL_CARBON_NVML}=off. Unset it to use NVML.")
    from otel_carbon.sensors.probe import get_probe

    probe = get_probe()
    if probe.gpus:
        return probe.gpus
    reasons = [f"  {d.path}: {d.problem}" + (f"\n    fix: {d.fix}" if d.fix else "")
               for d in probe.diagnostics if d.path.startswith("nvml")]
    fail(EXIT_NO_GPU, "No NVIDIA GPU can be measured here (NVML found none), so this example has nothing to "
         "show.\n" + ("\n".join(reasons) or "  no NVML diagnostic was recorded"))


def gpu_workload(device: int, size: int) -> Tuple[str, Callable[[], None], Callable[[], None]]:
    """(library, one step of matmuls, synchronize); exits 3 when no library can use the GPU."""
    problems = []
    try:
        import torch

        if torch.cuda.is_available():
            dev = torch.device(f"cuda:{device}")
            a = torch.randn(size, size, device=dev, dtype=torch.float16)
            b = torch.randn(size, size, device=dev, dtype=torch.float16)
            return f"torch {torch.__version__}", lambda: torch.matmul(a, b), lambda: torch.cuda.synchronize(dev)
        problems.append("torch is installed but torch.cuda.is_available() is False")
    except ImportError:
        problems.append("torch is not installed")
    try:
        import cupy

        with cupy.cuda.Device(device):
            a2 = cupy.random.random((size, size), dtype=cupy.float32)
            b2 = cupy.random.random((size, size), dtype=cupy.float32)
        return f"cupy {cupy.__version__}", lambda: cupy.matmul(a2, b2), lambda: cupy.cuda.Device(device).synchronize()
    except ImportError:
        problems.append("cupy is not installed")
    except Exception as exc:  # noqa: BLE001 - a CUDA runtime error: report it
        problems.append(f"cupy cannot use GPU {device}: {exc}")
    fail(EXIT_NO_LIBRARY, "No GPU library to run the workload: " + "; ".join(problems)
         + ". Install torch with CUDA (pip install torch) or cupy (pip install cupy-cuda12x).")


class Collect(SpanExporter):
    """Keeps the exported spans for the table at the end."""

    def __init__(self) -> None:
        self.spans: List[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def hash_work(seconds: float) -> int:
    digest, rounds, end = b"otel-carbon", 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for _ in range(1000):
            digest = hashlib.sha256(digest).digest()
        rounds += 1000
    return rounds


def print_table(spans: Sequence[ReadableSpan]) -> None:
    print(f"{'span':<14}{'wall s':>8}{'cpu s':>8}{'cpu J':>10}{'gpu J':>10}{'total J':>10}{'CO2e mg':>10}  method  zone")
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        a = span.attributes or {}
        wall_s = ((span.end_time or 0) - (span.start_time or 0)) / 1e9
        print(f"{span.name:<14}{wall_s:>8.2f}{a.get(A.CPU_TIME, 0):>8.3f}{a.get(A.ENERGY_CPU, 0):>10.2f}"
              f"{a.get(A.ENERGY_GPU, 0):>10.2f}{a.get(A.ENERGY_TOTAL, 0):>10.2f}{a.get(A.EMISSIONS, 0) * 1000:>10.3f}"
              f"  {a.get(A.METHOD, '?')}  {a.get(A.ZONE, '?')}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", type=int, default=0, help="CUDA / NVML device index (default 0)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of GPU work (default 5)")
    parser.add_argument("--size", type=int, default=4096, help="matrix size (default 4096)")
    args = parser.parse_args(argv)
    if not (0 < args.seconds <= 600 and 64 <= args.size <= 65536 and args.device >= 0):
        parser.error("--seconds must be in (0, 600], --size in [64, 65536], --device >= 0")

    gpus = measurable_gpus()
    library, step, sync = gpu_workload(args.device, args.size)
    for gpu in gpus:
        info = gpu.info()
        print(f"{gpu.name}: {getattr(gpu, 'device_name', '?')} ({info.source})")
    print(f"workload: {library}, {args.size}x{args.size} matmuls for {args.seconds:g} s")

    collect = Collect()
    exporters: List[Any] = [collect]
    if os.environ.get("OTEL_TRACES_EXPORTER"):
        exporters.append(os.environ["OTEL_TRACES_EXPORTER"])
    setup = otel_carbon.configure(
        service_name="gpu-app",
        traces_exporter=exporters,
        metrics_exporter=os.environ.get("OTEL_METRICS_EXPORTER") or "none",
    )
    tracer = trace.get_tracer("examples.gpu_app")

    step()
    sync()  # warm up (CUDA context, kernels, clocks) outside the spans
    with tracer.start_as_current_span("gpu-matmul", attributes={"app.matrix_size": args.size}) as span:
        steps, end = 0, time.monotonic() + args.seconds
        while time.monotonic() < end:
            step()
            steps += 1
            if steps % 8 == 0:
                sync()  # keep the queue short so the span ends with the work
        sync()
        span.set_attribute("app.steps", steps)
    with tracer.start_as_current_span("cpu-hash") as span:
        span.set_attribute("app.rounds", hash_work(min(args.seconds, 2.0)))
    setup.force_flush()
    print_table(collect.spans)
    gpu_span = next((s for s in collect.spans if s.name == "gpu-matmul"), None)
    gpu_j = (gpu_span.attributes or {}).get(A.ENERGY_GPU, 0.0) if gpu_span is not None else 0.0
    setup.shutdown()
    if not gpu_j > 0:
        print(f"the GPU span carries no GPU energy ({A.ENERGY_GPU}={gpu_j!r}): see `otel-carbon sensors`",
              file=sys.stderr)
        return EXIT_NO_GPU_ENERGY
    print(f"GPU energy of the matmul span: {gpu_j:.1f} J over {steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
