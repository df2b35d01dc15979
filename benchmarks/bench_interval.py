"""Per-span error against the sampler's interval, for each sensor layout.

    python benchmarks/bench_interval.py [--spans 600] [--seed 1]

A replay in simulated time, so every interval sees the same load and the same spans:

* **Load.** A host of 4 CPUs. Other processes keep a varying number of CPUs busy
  (levels held for 10 ms to 5 s, log-uniform); this process runs spans one after another
  on one thread (1 ms to 10 s, a CPU share of 30-100 % each), with gaps of 1 ms to 1 s.
  Everything is kept on a 1 ms grid.
* **Sensors.** The real sensors read by the real sampler (``Sampler.tick(host=...)``, the
  clock, ``/proc/stat`` and the process CPU time given from the replay):
  ``ccf`` and ``tdp`` are the CPU models; ``rapl`` is a powercap tree under a temporary
  directory whose ``energy_uj`` is written before each reading with the energy a package
  drawing ``IDLE_W + DYNAMIC_W * u ** 0.6`` (u the host's utilisation, 1 ms by 1 ms) has
  used so far (a concave curve, as turbo frequencies make real packages).
* **Spans.** Each span keeps the ledger's latest tick at its start and pays, at its end,
  its CPU-seconds times the price of :func:`otel_carbon.ledger.prices_between` (the rule
  the processor and the tracker use).
* **Error.** Each interval's figure against the same span's figure with a 10 ms sampler
  (the finest ``/proc/stat`` resolves): what the interval costs. The table also gives the
  error against the span's exact fair share (its CPU-seconds times the host's active
  energy per busy CPU-second over the span's own window), which no interval removes
  (the price is taken over at least a second, see ``PRICE_WINDOW_NS``).

Prints, per layout, interval and span length, the median and 95th percentile of the
per-span error, the error of the energy summed over all spans, the median error against
the exact share, and the longest interval (and every shorter one) whose median error for
every span length, and whose error of the sum, stay within 2 %.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
from array import array
from pathlib import Path
from typing import Callable, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).parent))

from _common import machine  # noqa: E402

from otel_carbon.intensity.bundled import world  # noqa: E402
from otel_carbon.attribution import prices_between  # noqa: E402
from otel_carbon.sampler import Sampler  # noqa: E402
from otel_carbon.sensors.cpu_model import CpuModelSensor, teads_fraction  # noqa: E402
from otel_carbon.sensors.probe import Probe  # noqa: E402
from otel_carbon.sensors.rapl import probe_rapl  # noqa: E402

STEP_NS = 1_000_000  # the replay's grid
REFERENCE_S = 0.01
INTERVALS_S = (0.1, 0.25, 0.5, 1.0, 2.0)
SPAN_S = (0.001, 0.01, 0.1, 1.0, 10.0)
GOAL = 0.02
IDLE_W, DYNAMIC_W = 10.0, 60.0  # the fake package's curve
MAX_RANGE_UJ = 262143328850
N_VCPUS, CCF_MIN_W, CCF_MAX_W, TDP_W = 4, 0.74, 3.5, 120.0
#: power (W) at host utilisation u, per layout; the fake package's is concave (turbo)
CURVES: Dict[str, Callable[[float], float]] = {
    "ccf": lambda u: N_VCPUS * (CCF_MIN_W + u * (CCF_MAX_W - CCF_MIN_W)),
    "tdp": lambda u: TDP_W * teads_fraction(100.0 * u),
    "rapl": lambda u: IDLE_W + DYNAMIC_W * u**0.6,
}
#: whether the layout's sensor counts its power at u = 0 as idle (a RAPL counter's idle
#: power is 0 unless OTEL_CARBON_IDLE_POWER_W says otherwise)
IDLE_OF = {"ccf": 1.0, "tdp": 1.0, "rapl": 0.0}


class _Intensity:
    def __init__(self) -> None:
        self.value = world()

    def current(self) -> object:
        return self.value

    def shutdown(self) -> None:
        pass


class Replay:
    """The load on a 1 ms grid: cumulative host busy CPU-seconds, process CPU-seconds and
    package energy at every step, and the spans."""

    def __init__(self, n_spans: int, n_cpus: int, seed: int) -> None:
        rng = random.Random(seed)
        self.n_cpus = n_cpus
        spans: List[Tuple[int, int, float]] = []  # (start step, end step, CPU share)
        step = 10_000  # 10 s of history before the first span
        for i in range(n_spans):
            step += max(1, round(math.exp(rng.uniform(math.log(1), math.log(1000)))))
            length = max(1, round(SPAN_S[i % len(SPAN_S)] * 1000))
            spans.append((step, step + length, rng.uniform(0.3, 1.0)))
            step += length
        self.steps = step + 10_000
        self.spans = spans
        proc_rate = array("d", bytes(8 * self.steps))
        for start, end, share in spans:
            for k in range(start, end):
                proc_rate[k] = share
        busy = array("d", [0.0])
        proc = array("d", [0.0])
        energy = array("d", [0.0])
        # each layout's active energy as its own curve gives it, 1 ms by 1 ms (the exact figure)
        active = {name: array("d", [0.0]) for name in CURVES}
        k = 0
        while k < self.steps:
            hold = max(1, round(math.exp(rng.uniform(math.log(10), math.log(5000)))))
            others = rng.uniform(0.0, n_cpus - 1.0)
            for j in range(k, min(k + hold, self.steps)):
                host = others + proc_rate[j]
                busy.append(busy[-1] + host * 1e-3)
                proc.append(proc[-1] + proc_rate[j] * 1e-3)
                energy.append(energy[-1] + CURVES["rapl"](host / n_cpus) * 1e-3)
                for name, curve in CURVES.items():
                    active[name].append(active[name][-1] + (curve(host / n_cpus) - curve(0.0) * IDLE_OF[name]) * 1e-3)
            k += hold
        self.busy_s, self.proc_cpu_s, self.energy_j, self.active_j = busy, proc, energy, active

    def exact_j(self, layout: str, start: int, end: int, share: float) -> float:
        """The span's fair share of the host's active energy over its own window: its
        CPU-seconds times active joules per busy CPU-second, 1 ms by 1 ms."""
        cpu_s = share * (end - start) * 1e-3
        active = self.active_j[layout]
        return cpu_s * (active[end] - active[start]) / (self.busy_s[end] - self.busy_s[start])


def _layouts(tree: Path) -> Dict[str, Callable[[], Probe]]:
    def rapl() -> Probe:
        sensors, _ = probe_rapl(str(tree))
        return Probe(sensors=list(sensors))

    return {
        "ccf": lambda: Probe(sensors=[CpuModelSensor("ccf", min_w_per_vcpu=CCF_MIN_W, max_w_per_vcpu=CCF_MAX_W, n_vcpus=N_VCPUS)]),
        "tdp": lambda: Probe(sensors=[CpuModelSensor("tdp", tdp_w=TDP_W, n_vcpus=N_VCPUS)]),
        "rapl": rapl,
    }


def _make_tree(root: Path) -> Path:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{MAX_RANGE_UJ}\n")
    (zone / "enabled").write_text("1\n")
    (zone / "energy_uj").write_text(f"{0:020d}\n")
    return zone / "energy_uj"


def run_interval(replay: Replay, make_probe: Callable[[], Probe], energy_file: Path, interval_s: float) -> List[float]:
    """Every span's energy (J) with a sampler ticking every ``interval_s``."""
    probe = make_probe()
    now = [0]
    sampler = Sampler(probe, interval_s=interval_s, intensity=_Intensity(), clock_ns=lambda: now[0])
    fd = os.open(energy_file, os.O_WRONLY)
    every = round(interval_s * 1e9 / STEP_NS)
    out: List[float] = []
    starts: Dict[int, object] = {}
    events = sorted([(s, 1, i) for i, (s, _, _) in enumerate(replay.spans)] + [(e, 2, i) for i, (_, e, _) in enumerate(replay.spans)])
    ticks = range(0, replay.steps + 1, every)
    ti = 0
    for step, kind, i in events:
        while ti < len(ticks) and ticks[ti] <= step:
            k = ticks[ti]
            now[0] = k * STEP_NS
            os.pwrite(fd, f"{round(replay.energy_j[k] * 1e6) % MAX_RANGE_UJ:020d}\n".encode(), 0)
            sampler.tick(host=(now[0], replay.busy_s[k], replay.n_cpus * k * 1e-3, replay.proc_cpu_s[k]))
            ti += 1
        latest = sampler.ledger.latest
        if kind == 1:
            starts[i] = latest
        else:
            start, end, share = replay.spans[i]
            prices = prices_between(starts.pop(i), latest)
            out.append(share * (end - start) * 1e-3 * sum(prices.price_j_per_cpu_s))
    os.close(fd)
    probe.close()
    return out


def _pct(values: List[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=600, help="spans in the replay (a fifth of each length)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    replay = Replay(args.spans, N_VCPUS, args.seed)
    print(f"machine: {machine()}")
    print(f"replay: {replay.steps / 1000:.0f} s simulated, {len(replay.spans)} spans, {N_VCPUS} CPUs, seed {args.seed}")
    lengths = [round((e - s) * 1e-3, 3) for s, e, _ in replay.spans]
    with tempfile.TemporaryDirectory() as tmp:
        energy_file = _make_tree(Path(tmp))
        for layout, make_probe in _layouts(Path(tmp)).items():
            reference = run_interval(replay, make_probe, energy_file, REFERENCE_S)
            exact = [replay.exact_j(layout, s, e, share) for s, e, share in replay.spans]
            print(f"\n{layout}: per-span |error| against a {REFERENCE_S * 1000:.0f} ms sampler, median / p95, by span length")
            print(f"  {'interval':>8} " + " ".join(f"{f'{s:g} s':>15}" for s in SPAN_S) + f" {'sum':>7} {'exact, median':>13}")
            chosen, passing = None, True
            for interval_s in (REFERENCE_S, *INTERVALS_S):
                figures = reference if interval_s == REFERENCE_S else run_interval(replay, make_probe, energy_file, interval_s)
                cells = []
                worst = 0.0
                for length in SPAN_S:
                    errs = [abs(f / r - 1) for f, r, n in zip(figures, reference, lengths) if n == length and r > 0]
                    worst = max(worst, statistics.median(errs))
                    cells.append(f"{statistics.median(errs) * 100:6.2f}/{_pct(errs, 0.95) * 100:6.2f}%")
                vs_exact = [abs(f / x - 1) for f, x in zip(figures, exact) if x > 0]
                total = sum(figures) / sum(reference) - 1
                worst = max(worst, abs(total))
                print(f"  {interval_s:>7g}s " + " ".join(f"{c:>15}" for c in cells) + f" {total * 100:+6.2f}% {statistics.median(vs_exact) * 100:12.2f}%")
                passing = passing and worst <= GOAL
                if interval_s != REFERENCE_S and passing:
                    chosen = interval_s
            print(f"  longest interval within {GOAL * 100:g} % (median of every span length, and the sum): {chosen or 'none measured'} s")

if __name__ == "__main__":
    main()
