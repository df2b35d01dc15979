"""Import and configure() time in a fresh process, side by side with the bare SDK.

    python benchmarks/bench_startup.py [--runs 7]

Each figure is the median over fresh interpreters of the time measured inside the child:
``import otel_carbon``; ``otel_carbon.configure()`` (exporters ``none``, so no network);
the first span with its carbon figures; and, for comparison, importing the OpenTelemetry
SDK and building a TracerProvider.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

CHILD = r"""
import json, time
t0 = time.perf_counter()
import opentelemetry.sdk.trace
t1 = time.perf_counter()
import otel_carbon
t2 = time.perf_counter()
setup = otel_carbon.configure(service_name="bench-startup")
t3 = time.perf_counter()
from opentelemetry import trace
with trace.get_tracer("b").start_as_current_span("first") as span:
    pass
t4 = time.perf_counter()
assert "carbon.energy.total" in span.attributes, dict(span.attributes)
setup.shutdown()
print(json.dumps({"sdk_import": t1 - t0, "import": t2 - t1, "configure": t3 - t2, "first_span": t4 - t3}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    env = dict(os.environ, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_CARBON_COUNTRY="FR")
    runs = []
    for _ in range(args.runs):
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    print(f"machine: {machine()}")
    for key, label in (
        ("sdk_import", "import opentelemetry.sdk.trace (baseline)"),
        ("import", "import otel_carbon (after the SDK)"),
        ("configure", "otel_carbon.configure() (exporters none)"),
        ("first_span", "first span with carbon figures"),
    ):
        print(f"{label:<44} {statistics.median(r[key] for r in runs) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
