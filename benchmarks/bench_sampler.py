"""CPU the sampler thread uses per wall second at the default interval.

    python benchmarks/bench_sampler.py [--seconds 20] [--interval 0.1]

Runs the real sampler over this host's sensors and reads its thread's own CPU clock
(through ``pthread_getcpuclockid``) before and after; also reports the cost of one tick.
Goal: at most 0.2 % of one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine  # noqa: E402

from otel_carbon.sampler import Sampler  # noqa: E402
from otel_carbon.sensors.probe import probe_sensors  # noqa: E402


def _sleep_floor(interval_s: float, seconds: float) -> float:
    """CPU share of a thread that does nothing but wake up every ``interval_s``."""
    import threading

    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            time.sleep(interval_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    time.sleep(0.2)
    assert thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    cpu0, wall0 = time.clock_gettime(clock), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = time.clock_gettime(clock), time.monotonic()
    stop.set()
    return (cpu1 - cpu0) / (wall1 - wall0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=0.1)
    args = parser.parse_args()
    probe = probe_sensors()
    sampler = Sampler(probe, interval_s=args.interval).start()
    time.sleep(0.5)
    thread = sampler._thread  # noqa: SLF001 - the benchmark measures that thread
    assert thread is not None and thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    print(f"machine: {machine()}")
    print(f"sensors: {', '.join(s.name for s in probe.sensors)}")
    for phase, open_spans in (("spans open (full rate)", 1), ("idle process (back-off)", 0)):
        counter = lambda: open_spans  # noqa: E731 - what a processor with open spans reports
        sampler.register_span_counter(counter)
        time.sleep(1.5)  # settle into the phase's rate
        cpu0, wall0, ticks0 = time.clock_gettime(clock), time.monotonic(), sampler.ticks
        time.sleep(args.seconds)
        cpu1, wall1, ticks1 = time.clock_gettime(clock), time.monotonic(), sampler.ticks
        sampler.unregister_span_counter(counter)
        share = (cpu1 - cpu0) / (wall1 - wall0)
        print(
            f"{phase:<26} {ticks1 - ticks0:4d} ticks in {wall1 - wall0:.1f} s: "
            f"sampler thread CPU {share * 100:.3f} % of one core (goal <= 0.2 %)"
        )
    sampler.shutdown()
    n = 2000
    t0 = time.thread_time()
    for _ in range(n):
        sampler.tick()
    per_tick_us = (time.thread_time() - t0) / n * 1e6
    print(f"interval {sampler.interval_s} s; dropped pairs {sampler.dropped_pairs}")
    print(f"one tick, CPU time (back to back): {per_tick_us:.1f} us")
    floor = _sleep_floor(args.interval, min(args.seconds, 5.0))
    print(f"floor: a thread that only sleeps {args.interval} s in a loop uses {floor * 100:.3f} % of one core")
    probe.close()


if __name__ == "__main__":
    main()
