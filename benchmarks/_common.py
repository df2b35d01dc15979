"""Shared helpers for the benchmarks: machine description and interleaved timing."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from typing import Callable, Dict, List


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()} {platform.release()}"


def interleaved(
    variants: Dict[str, Callable[[int], None]], n: int, rounds: int, timer: Callable[[], float] = time.perf_counter
) -> Dict[str, List[float]]:
    """Run every variant ``rounds`` times, alternating their order each round; return the
    per-call seconds of each run (so drift on a shared machine hits all variants alike).
    ``timer``: wall time by default; ``time.process_time`` (the process's CPU time, all its
    threads) when other work on the machine makes wall time mostly waiting."""
    names = list(variants)
    results: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            gc.collect()
            start = timer()
            variants[name](n)
            results[name].append((timer() - start) / n)
    return results


def summary(results: Dict[str, List[float]], base: str) -> List[str]:
    """Median per-call time of each variant, its ratio to ``base``'s median, and the median
    of the per-round ratios (each round's run against ``base``'s run of the same round:
    on a VM whose speed drifts between rounds, the paired figure is the steadier one)."""
    base_median = statistics.median(results[base])
    lines = []
    for name, values in results.items():
        median = statistics.median(values)
        paired = statistics.median(v / b for v, b in zip(values, results[base]))
        lines.append(f"{name:<44} {median * 1e6:8.2f} us/span   x{median / base_median:5.2f}   paired x{paired:5.2f}")
    return lines
