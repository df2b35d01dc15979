"""Tracking overhead: otel_carbon's decorator vs CodeCarbon's, side by side in one run.

    python benchmarks/bench_tracking.py [--calls N] [--cc-calls N] [--cold-runs N]

Two measurements, each in fresh subprocesses so the two libraries never share a process:

* **Overhead per call** on a ~1 ms function (it spins 1 ms on ``perf_counter``):
  ``median(time of a decorated call) - median(time of a bare call)``, after warm-up calls.
  CodeCarbon: ``@track_emissions(offline=True, country_iso_code="FRA")`` (it writes a CSV
  row per call, its default). Ours: ``@track_emissions(offline=True, country_iso_code="FRA")``
  with the same default (a row per call), and with ``save_to_file=False`` (span only).
* **CPU per call**: the process's CPU time (every thread: a background CSV writer's too)
  over back-to-back calls of a tracked empty function, divided by the calls; ours includes
  writing the rows still waiting at the end (``otel_carbon.track.flush_rows()``).
* **Cold start**: in a fresh interpreter, from before the library's import to the end of the
  first tracked call, minus the function's own 1 ms (median of ``--cold-runs`` processes,
  after one uncounted run). Bytecode is cached as for an installed package
  (``PYTHONDONTWRITEBYTECODE`` is dropped from the workers' environment). Goal: at most
  100 ms.

Prints a Markdown table with the ratios (CodeCarbon / ours). CodeCarbon rows are skipped
when it is not installed (``pip install codecarbon``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap

WORKER = textwrap.dedent(
    """
    import json, os, statistics, sys, time
    t_start = time.perf_counter()
    lib, mode, calls, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    os.chdir(out_dir)

    def work():
        t = time.perf_counter()
        while time.perf_counter() - t < 0.001:
            pass

    if lib == "codecarbon":
        import logging
        from codecarbon import track_emissions
        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracked = track_emissions(offline=True, country_iso_code="FRA", output_dir=out_dir, log_level="error")(work)
    else:
        from otel_carbon import track_emissions
        extra = {"save_to_file": False} if mode == "nocsv" else {}
        tracked = track_emissions(offline=True, country_iso_code="FRA", output_dir=out_dir, **extra)(work)
    tracked()
    cold_s = time.perf_counter() - t_start - 0.001
    result = {"cold_s": cold_s}
    if calls:
        def timed(fn, n):
            out = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                out.append(time.perf_counter() - t)
            return out
        timed(tracked, min(calls, 20))  # warm-up
        timed(work, 50)
        bare, deco = [], []
        for _ in range(5):  # interleave, so drift affects both alike
            bare += timed(work, max(calls // 5, 1))
            deco += timed(tracked, max(calls // 5, 1))
        result.update(bare_s=statistics.median(bare), tracked_s=statistics.median(deco), calls=len(deco))
        # CPU per call, every thread counted (a background writer's too): an empty function,
        # tracked back to back, then any rows still waiting written
        if lib == "codecarbon":
            empty = track_emissions(offline=True, country_iso_code="FRA", output_dir=out_dir, log_level="error")(lambda: None)
        else:
            empty = track_emissions(offline=True, country_iso_code="FRA", output_dir=out_dir, **extra)(lambda: None)
        n = max(calls // 5, 1)
        c0 = time.process_time()
        for _ in range(n):
            empty()
        if lib != "codecarbon":
            from otel_carbon.track import flush_rows
            flush_rows()
        result["cpu_per_call_s"] = (time.process_time() - c0) / n
    print(json.dumps(result))
    """
)


def worker(lib: str, mode: str, calls: int) -> dict:
    with tempfile.TemporaryDirectory() as out_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.setdefault("OTEL_CARBON_NVML", "auto")
        proc = subprocess.run([sys.executable, "-c", WORKER, lib, mode, str(calls), out_dir],
                              capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"{lib} worker failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="tracked calls for otel_carbon")
    parser.add_argument("--cc-calls", type=int, default=100, help="tracked calls for CodeCarbon")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per cold-start figure")
    args = parser.parse_args()
    has_cc = importlib.util.find_spec("codecarbon") is not None

    rows = []
    variants = [("otel_carbon", "csv", args.calls), ("otel_carbon", "nocsv", args.calls)]
    if has_cc:
        variants.insert(0, ("codecarbon", "csv", args.cc_calls))
    per_call, cpu = {}, {}
    for lib, mode, calls in variants:
        r = worker(lib, mode, calls)
        per_call[(lib, mode)] = r["tracked_s"] - r["bare_s"]
        cpu[(lib, mode)] = r["cpu_per_call_s"]
        rows.append((lib, mode, r))
    cold = {}
    for lib, mode, _ in variants:
        worker(lib, mode, 0)  # writes the bytecode caches an installed package has
        cold[(lib, mode)] = statistics.median(worker(lib, mode, 0)["cold_s"] for _ in range(args.cold_runs))

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; function: 1 ms busy loop\n")
    print("| tracker | overhead per call | CPU per call, all threads | cold start (import + first call) |")
    print("|---|---:|---:|---:|")
    names = {("codecarbon", "csv"): "CodeCarbon `@track_emissions(offline=True, country_iso_code=\"FRA\")`",
             ("otel_carbon", "csv"): "otel_carbon `@track_emissions(offline=True, country_iso_code=\"FRA\")` (CSV row per call)",
             ("otel_carbon", "nocsv"): "otel_carbon, `save_to_file=False` (span only)"}
    for lib, mode, _ in variants:
        print(f"| {names[(lib, mode)]} | {fmt_us(per_call[(lib, mode)])} | {fmt_us(cpu[(lib, mode)])} "
              f"| {cold[(lib, mode)] * 1000:,.0f} ms |")
    if has_cc:
        cc_call, cc_cold = per_call[("codecarbon", "csv")], cold[("codecarbon", "csv")]
        print()
        for mode in ("csv", "nocsv"):
            ours_call, ours_cold = per_call[("otel_carbon", mode)], cold[("otel_carbon", mode)]
            print(f"- ratio CodeCarbon / otel_carbon ({names[('otel_carbon', mode)].split(' ', 1)[1]}): "
                  f"{cc_call / ours_call:,.0f}x less overhead per call (goal >= 100x), "
                  f"{cpu[('codecarbon', 'csv')] / cpu[('otel_carbon', mode)]:,.0f}x less CPU per call, "
                  f"{cc_cold / ours_cold:,.1f}x faster cold start (goal: ours <= 100 ms)")
    else:
        print("\n(codecarbon is not installed: pip install codecarbon to compare)")


if __name__ == "__main__":
    main()
