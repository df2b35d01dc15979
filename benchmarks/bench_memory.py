"""RSS over many spans (bounded structures) and with spans that never end.

    python benchmarks/bench_memory.py [--spans 1000000] [--leaked 100000]

Phase 1 ends ``--spans`` spans through TracerProvider + CarbonSpanProcessor + a batch
processor over a no-op exporter, printing RSS every 10 %: it must stay flat. Phase 2 starts
``--leaked`` spans that never end (references kept) under the default cap, then shows RSS
and the processor's open-span count and drop counter.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Sequence

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from otel_carbon import CarbonSpanProcessor  # noqa: E402


class NoopExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--leaked", type=int, default=100_000)
    args = parser.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoopExporter()))
    carbon = CarbonSpanProcessor()
    provider.add_span_processor(carbon)
    tracer = provider.get_tracer("memory")
    print(f"machine: {machine()}")
    step = max(args.spans // 10, 1)
    samples = []
    for i in range(args.spans):
        tracer.start_span("s").end()
        if (i + 1) % step == 0:
            gc.collect()
            samples.append(rss_mb())
            print(f"  {i + 1:>9} spans ended: RSS {samples[-1]:7.1f} MB, open {carbon.open_spans}")
    print(f"phase 1: RSS from {samples[0]:.1f} MB (after 10 %) to {samples[-1]:.1f} MB: growth {samples[-1] - samples[0]:+.1f} MB")
    before = rss_mb()
    # Never ended; the references are kept, as a leak in an application would (a dropped
    # span object frees its id, and a new span reusing it replaces the stale entry).
    leaked = [tracer.start_span("leaked") for _ in range(args.leaked)]
    gc.collect()
    print(
        f"phase 2: {args.leaked} spans never ended: RSS {before:.1f} -> {rss_mb():.1f} MB, "
        f"tracked open {carbon.open_spans} (cap {carbon._max_open}), dropped {carbon.dropped_open_spans}"
    )
    del leaked
    provider.shutdown()


if __name__ == "__main__":
    main()
