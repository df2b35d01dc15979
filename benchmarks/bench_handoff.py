"""What following hand-offs costs a thread-pool task, side by side in one run.

    python benchmarks/bench_handoff.py [--tasks 5000] [--rounds 9]

``pool.submit(noop).result()`` round trips on a one-thread ``ThreadPoolExecutor``: with
``ThreadPoolExecutor.submit`` as the standard library has it, with our hand-off seam and
no span open anywhere, and with a span open (the task then timed and charged to it).
A CarbonSpanProcessor is set up in every variant; only ``submit`` is swapped.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import interleaved, machine, summary  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from otel_carbon import CarbonSpanProcessor, offload  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    tp = TracerProvider()
    tp.add_span_processor(CarbonSpanProcessor())
    tracer = tp.get_tracer("bench")
    cls = concurrent.futures.ThreadPoolExecutor
    seam, plain = cls.submit, offload._originals[cls]
    pool = cls(1)

    def noop() -> None:
        pass

    def round_trips(submit: object, in_span: bool):
        def run(n: int) -> None:
            cls.submit = submit  # type: ignore[method-assign]
            try:
                if in_span:
                    with tracer.start_as_current_span("request"):
                        for _ in range(n):
                            pool.submit(noop).result()
                else:
                    for _ in range(n):
                        pool.submit(noop).result()
            finally:
                cls.submit = seam  # type: ignore[method-assign]

        return run

    variants = {
        "submit+result: standard library": round_trips(plain, False),
        "submit+result: seam, no span open": round_trips(seam, False),
        "submit+result: seam, inside a span": round_trips(seam, True),
    }
    for v in variants.values():
        v(500)
    results = interleaved(variants, args.tasks, args.rounds)
    print(f"machine: {machine()}")
    print(f"{args.tasks} tasks x {args.rounds} rounds, medians (per task)")
    print("\n".join(summary(results, "submit+result: standard library")).replace("us/span", "us/task"))


if __name__ == "__main__":
    main()
