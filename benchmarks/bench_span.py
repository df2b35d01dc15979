"""Per-span cost with and without CarbonSpanProcessor, side by side in one run.

    python benchmarks/bench_span.py [--spans 20000] [--rounds 9] [--floor] [--no-rapl] [--gpu] [--cpu-time]

Host layouts: this machine's sensors (on a VM, one modelled CPU component), a RAPL-shaped
host with package and DRAM counters (a fake powercap tree under a temporary directory, its
counters advanced by a helper process at 30 W and 6 W: two measured components, what most
bare-metal servers have), and with ``--gpu`` the same with one GPU (NVML replaced by the
tests' fake at the ``pynvml`` seam: the span path's GPU share per open span is priced, the
board's calls are the sampler thread's).

Each variant is a TracerProvider with a BatchSpanProcessor over a no-op exporter; the
"carbon" variants add CarbonSpanProcessor (drop-in), and "+metrics" also attaches the meter
when it is available. Variants run interleaved, order alternating each round; the medians
and their ratio to the bare provider are printed. ``--floor`` adds two reference variants:
a second processor whose hooks are C no-ops, and the same with the one thread-clock read a
span end needs (what no exact per-span CPU time can go below).

The "unsampled" group prices a request the trace sampler drops (a root span under a sampler
that drops everything, ``ParentBased(ALWAYS_OFF)``): bare, it is a ``NonRecordingSpan``;
with carbon + metrics and :class:`~otel_carbon.record_unsampled.RecordUnsampled` (what
``configure()`` installs), it is recorded for the meter and not exported. The difference is
the cost of counting an unsampled request. ``--cpu-time`` times with the process's CPU time
instead of wall time (for a machine that other work keeps busy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
import tempfile
from typing import Callable, Dict, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved, machine, summary  # noqa: E402
from _layouts import gpu_probe, rapl_probe  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from otel_carbon import CarbonSpanProcessor  # noqa: E402


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def provider(carbon: bool, metrics: bool = False, sampler: object = None, drop_all: bool = False) -> TracerProvider:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    tp = TracerProvider(sampler=ParentBased(ALWAYS_OFF) if drop_all else None)
    # The batch processor with its defaults, as services run it (it keeps up here: no span
    # is dropped). A bigger queue keeps more spans alive and makes every span slower through
    # garbage collection, which only hides what we add.
    tp.add_span_processor(BatchSpanProcessor(NoopExporter()))
    tp.drain = lambda: None  # type: ignore[attr-defined]
    if carbon:
        processor = CarbonSpanProcessor(sampler=sampler)
        tp.add_span_processor(processor)
        tp.carbon = processor  # type: ignore[attr-defined]
        if metrics:
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            from otel_carbon.metrics import CarbonMetrics

            meter = CarbonMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()])).attach(processor)
            if drop_all:
                from otel_carbon import record_unsampled

                record_unsampled.install(tp)
            # what is still queued for the metrics at the end of a run is recorded inside the
            # timing: the meter's whole cost counts
            tp.drain = meter.drain  # type: ignore[attr-defined]
    return tp


def layout_sampler(make: Callable[[Path], Tuple[object, object]], prefix: str) -> Tuple[object, object]:
    """A started sampler over a layout of ``_layouts`` (a static intensity), and its driver."""
    from otel_carbon.intensity import Intensity, StaticIntensitySource
    from otel_carbon.sampler import Sampler

    probe, driver = make(Path(tempfile.mkdtemp(prefix=prefix)))
    intensity = StaticIntensitySource(Intensity(g_per_kwh=100.0, zone="BENCH", pue=1.0, source="benchmark"))
    return Sampler(probe, intensity=intensity).start(), driver


def floor_provider(clock_read: bool) -> TracerProvider:
    """A second processor with C no-op hooks (``"".format`` takes any arguments), and
    optionally a thread-clock read at span end."""
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(NoopExporter()))
    noop = SpanProcessor()
    noop.on_start = noop.on_end = "".format  # type: ignore[method-assign]
    if clock_read:
        from otel_carbon import _speedups

        noop._on_ending = _speedups.read_cpu_ns  # type: ignore[attr-defined]
    else:
        noop._on_ending = "".format  # type: ignore[attr-defined]
    tp.add_span_processor(noop)
    tp.drain = lambda: None  # type: ignore[attr-defined]
    return tp


def plain(tp: TracerProvider) -> Callable[[int], None]:
    tracer = tp.get_tracer("bench")

    def run(n: int) -> None:
        for _ in range(n):
            tracer.start_span("span").end()
        tp.drain()  # type: ignore[attr-defined]

    return run


def current(tp: TracerProvider) -> Callable[[int], None]:
    tracer = tp.get_tracer("bench")

    def run(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span("span"):
                pass
        tp.drain()  # type: ignore[attr-defined]

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--floor", action="store_true", help="add the no-op and clock-read reference variants")
    parser.add_argument("--no-rapl", action="store_true", help="leave out the RAPL-shaped (CPU + DRAM) host")
    parser.add_argument("--gpu", action="store_true", help="add a RAPL host with one GPU (NVML faked at the pynvml seam)")
    parser.add_argument("--cpu-time", action="store_true", help="time with the process's CPU time (a loaded machine)")
    args = parser.parse_args()
    try:
        import otel_carbon.metrics  # noqa: F401

        have_metrics = True
    except ImportError:
        have_metrics = False
    bare, carbon = provider(False), provider(True)
    variants: Dict[str, Callable[[int], None]] = {
        "start_span/end: bare": plain(bare),
        "start_span/end: + carbon": plain(carbon),
        "start_as_current_span: bare": current(bare),
        "start_as_current_span: + carbon": current(carbon),
    }
    drivers, layouts = [], [("this host", carbon)]
    extra = [] if args.no_rapl else [("RAPL cpu+dram", rapl_probe, "bench-powercap-")]
    if args.gpu:
        extra.append(("RAPL + 1 GPU", gpu_probe, "bench-powercap-gpu-"))
    for label, make, prefix in extra:
        sampler, driver = layout_sampler(make, prefix)
        tp = provider(True, sampler=sampler)
        drivers.append(driver)
        layouts.append((label, tp))
        variants[f"start_span/end: + carbon, {label}"] = plain(tp)
        variants[f"start_as_current_span: + carbon, {label}"] = current(tp)
    if args.floor:
        variants["start_span/end: floor, no-op C hooks"] = plain(floor_provider(False))
        variants["start_span/end: floor, no-op + 1 clock read"] = plain(floor_provider(True))
    if have_metrics:
        with_metrics = provider(True, metrics=True)
        variants["start_span/end: + carbon + metrics"] = plain(with_metrics)
        variants["start_as_current_span: + carbon + metrics"] = current(with_metrics)
        variants["unsampled: bare (dropped)"] = plain(provider(False, drop_all=True))
        variants["unsampled: + carbon + metrics, recorded"] = plain(provider(True, metrics=True, drop_all=True))
    for v in variants.values():  # warm up
        v(2000)
    try:
        results = interleaved(variants, args.spans, args.rounds, time.process_time if args.cpu_time else time.perf_counter)
    finally:
        for driver in drivers:
            driver.stop()
    print(f"machine: {machine()}")
    for name, tp in layouts:
        p = tp.carbon  # type: ignore[attr-defined]
        compiled = p._hooks is not None and p._layout.compiled
        gpu = " + carbon.energy.gpu" if p._layout.gpu else ""
        print(f"{name}: {[n for n, _ in p._layout.components]}{gpu}, span path {'compiled' if compiled else 'Python'}")
    print(f"{args.spans} spans x {args.rounds} rounds, medians of {'process CPU' if args.cpu_time else 'wall'} time")
    print("\n".join(summary({k: v for k, v in results.items() if k.startswith("start_span")}, "start_span/end: bare")))
    print("\n".join(summary({k: v for k, v in results.items() if k.startswith("start_as")}, "start_as_current_span: bare")))
    if have_metrics:
        unsampled = {k: v for k, v in results.items() if k.startswith("unsampled")}
        print("\n".join(summary(unsampled, "unsampled: bare (dropped)")))
        cost_us = (statistics.median(unsampled["unsampled: + carbon + metrics, recorded"])
                   - statistics.median(unsampled["unsampled: bare (dropped)"])) * 1e6
        bare_us = statistics.median(results["start_span/end: bare"]) * 1e6
        print(f"cost of counting an unsampled request: +{cost_us:.2f} us ({cost_us / bare_us:.2f} of a bare sampled span)")


if __name__ == "__main__":
    main()
