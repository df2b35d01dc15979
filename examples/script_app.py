"""A plain script with no OpenTelemetry setup of its own: the zero-code way.

It only uses the OpenTelemetry *API*. Run it under auto-instrumentation and every span
carries energy and CO2e, with nothing in the code about it:

    pip install -c .ci/constraints-newest.txt . opentelemetry-distro     # in a clone of the repository
    OTEL_SERVICE_NAME=script-app OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none \\
        opentelemetry-instrument python examples/script_app.py [--jobs 3] [--rounds 50000]

``opentelemetry-instrument`` sets up the SDK providers from the ``OTEL_*`` variables, then
runs the ``carbon`` instrumentor (this package's ``opentelemetry_instrumentor`` entry
point), which adds ``CarbonSpanProcessor`` and the meter instruments to them.
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=carbon`` leaves it out. Run plainly
(``python examples/script_app.py``) the spans go nowhere, and the script says so.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

from opentelemetry import trace

tracer = trace.get_tracer("examples.script_app")


def hash_work(rounds: int) -> str:
    digest = b"otel-carbon"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3, help="number of job spans (default 3)")
    parser.add_argument("--rounds", type=int, default=50_000, help="sha256 rounds per job (default 50000)")
    args = parser.parse_args()
    if args.jobs < 1 or args.rounds < 1:
        parser.error("--jobs and --rounds must be >= 1")

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        print("no OpenTelemetry SDK is set up: run this under `opentelemetry-instrument` "
              "(with opentelemetry-distro) to export spans with energy and CO2e", file=sys.stderr)

    with tracer.start_as_current_span("script", attributes={"app.jobs": args.jobs}):
        for i in range(args.jobs):
            with tracer.start_as_current_span(f"job-{i}", attributes={"app.rounds": args.rounds, "app.pid": os.getpid()}):
                hash_work(args.rounds)
    print(f"done: {args.jobs} jobs of {args.rounds} rounds")
    return 0  # the SDK's providers flush at exit (atexit)


if __name__ == "__main__":
    sys.exit(main())
