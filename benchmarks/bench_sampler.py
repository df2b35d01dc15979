"""CPU the sampler thread uses per wall second at the default interval.

    python benchmarks/bench_sampler.py [--seconds 20] [--interval S] [--layout host|rapl|gpu]

Runs the real sampler over this host's sensors (at the interval they get by default, see
``otel_carbon.sensor_reading.default_interval_s``, unless ``--interval`` is given) and reads its
thread's own CPU clock (through ``pthread_getcpuclockid``) before and after, in three
phases: spans open, an idle process, and a real drop-in ``CarbonSpanProcessor`` attached
with a span open (its span counter and tick listener run each tick). Also reports the cost
of one tick. Goal: at most 0.05 % of one core at the default interval. ``--layout rapl``
and ``--layout gpu`` measure the RAPL-shaped host (package + DRAM counters) and the same
with one GPU (NVML faked at the ``pynvml`` seam), see ``benchmarks/_layouts.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine  # noqa: E402
from _layouts import gpu_probe, rapl_probe  # noqa: E402

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from otel_carbon import CarbonSpanProcessor  # noqa: E402
from otel_carbon.sampler import Sampler  # noqa: E402
from otel_carbon.sensors.probe import probe_sensors  # noqa: E402


class _Sleeper:
    """A thread that does nothing but wake up every ``interval_s``: this machine's own cost
    of a wake (on a VM it moves by 2-3x from minute to minute), measured over the same
    window as the sampler."""

    def __init__(self, interval_s: float) -> None:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()
        time.sleep(0.2)
        assert self._thread.ident is not None
        self.clock = time.pthread_getcpuclockid(self._thread.ident)

    def _run(self, interval_s: float) -> None:
        while not self._stop.is_set():
            time.sleep(interval_s)

    def stop(self) -> None:
        self._stop.set()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=None, help="default: what the sensors get")
    parser.add_argument("--layout", choices=("host", "rapl", "gpu"), default="host", help="whose sensors")
    args = parser.parse_args()
    driver = None
    if args.layout == "host":
        probe = probe_sensors()
    else:
        import tempfile

        make = rapl_probe if args.layout == "rapl" else gpu_probe
        probe, driver = make(Path(tempfile.mkdtemp(prefix="bench-sampler-")))
    sampler = Sampler(probe, interval_s=args.interval).start()
    time.sleep(0.5)
    thread = sampler._thread  # noqa: SLF001 - the benchmark measures that thread
    assert thread is not None and thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    print(f"machine: {machine()}")
    print(f"sensors: {', '.join(s.name for s in probe.sensors)}")
    print(f"interval: {sampler.interval_s} s")
    sleeper = _Sleeper(sampler.interval_s)
    phases = [("spans open (full rate)", 1), ("idle process (back-off)", 0), ("processor attached, a span open", None)]
    for phase, open_spans in phases:
        counter = lambda: open_spans  # noqa: E731 - what a processor with open spans reports
        if open_spans is None:  # the real thing: a drop-in processor (its counter and tick listener)
            provider = TracerProvider()
            provider.add_span_processor(CarbonSpanProcessor(sampler=sampler))
            held = provider.get_tracer("bench").start_span("held open")
            counter = lambda: 0  # noqa: E731
        sampler.register_span_counter(counter)
        time.sleep(max(1.5, 2 * sampler.interval_s))  # settle into the phase's rate
        cpu0, wall0, ticks0 = time.clock_gettime(clock), time.monotonic(), sampler.ticks
        floor0 = time.clock_gettime(sleeper.clock)
        time.sleep(args.seconds)
        cpu1, wall1, ticks1 = time.clock_gettime(clock), time.monotonic(), sampler.ticks
        floor1 = time.clock_gettime(sleeper.clock)
        sampler.unregister_span_counter(counter)
        if open_spans is None:
            held.end()
            provider.shutdown()
        share = (cpu1 - cpu0) / (wall1 - wall0)
        floor = (floor1 - floor0) / (wall1 - wall0)
        print(
            f"{phase:<32} {ticks1 - ticks0:4d} ticks in {wall1 - wall0:.1f} s: "
            f"sampler thread CPU {share * 100:.3f} % of one core (goal <= 0.05 %); "
            f"a thread that only wakes every {sampler.interval_s} s, meanwhile: {floor * 100:.3f} %"
        )
    sleeper.stop()
    sampler.shutdown()
    print(f"interval {sampler.interval_s} s; dropped pairs {sampler.reading.dropped_pairs}")
    n = 2000
    t0 = time.thread_time()
    for _ in range(n):
        sampler.tick()
    per_tick_us = (time.thread_time() - t0) / n * 1e6
    print(f"one tick, CPU time (back to back): {per_tick_us:.1f} us")
    probe.close()
    if driver is not None:
        driver.stop()


if __name__ == "__main__":
    main()
