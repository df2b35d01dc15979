"""Quick start: a traced program whose spans carry energy (J) and CO2e (g).

Run:  python examples/quickstart.py
 or:  otel-carbon run -- python examples/quickstart.py   (adds a summary at exit)

It sets up an ordinary OpenTelemetry tracer provider, adds ``CarbonSpanProcessor`` next to
the exporting processor, does some work of different CPU cost in threads and in asyncio
tasks, and prints every exported span with its carbon attributes. Set
``OTEL_CARBON_COUNTRY=FR`` (or a region / cloud region) to use your grid's intensity.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from typing import Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from otel_carbon import CarbonSpanProcessor
from otel_carbon.units_text import format_energy, format_grams, format_seconds


class TableExporter(SpanExporter):
    """Prints one line per span: name, CPU time, energy, CO2e, method."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        print(f"{'span':<28}{'CPU':>9}{'energy':>10}{'CO2e':>10}  method     zone")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                a = span.attributes or {}
                print(
                    f"{span.name:<28}{format_seconds(a.get('carbon.cpu.time', 0)):>9}"
                    f"{format_energy(a.get('carbon.energy.total', 0)):>10}{format_grams(a.get('carbon.emissions', 0)):>10}"
                    f"  {a.get('carbon.method', '?'):<10} {a.get('carbon.zone', '?')}"
                )
        return SpanExportResult.SUCCESS


def hash_work(rounds: int) -> str:
    digest = b"otel-carbon"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def main() -> None:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # Already set up (under `otel-carbon run` or `opentelemetry-instrument`): the
        # carbon processor is in place; just print the spans too.
        provider = current
        provider.add_span_processor(SimpleSpanProcessor(TableExporter()))
        owned = False
    else:
        provider = TracerProvider(resource=Resource.create({"service.name": "quickstart"}))
        provider.add_span_processor(SimpleSpanProcessor(TableExporter()))
        provider.add_span_processor(CarbonSpanProcessor())
        trace.set_tracer_provider(provider)
        owned = True
    tracer = trace.get_tracer("quickstart")

    with tracer.start_as_current_span("batch-job"):
        for rounds in (20_000, 80_000, 320_000):
            with tracer.start_as_current_span(f"hash x{rounds}"):
                hash_work(rounds)

    def worker(i: int) -> None:
        with tracer.start_as_current_span(f"thread-{i} (x{(i + 1) * 50_000})"):
            hash_work((i + 1) * 50_000)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def request(i: int) -> None:
        with tracer.start_as_current_span(f"async-request-{i}"):
            for _ in range(5):
                hash_work(20_000 * (i + 1))
                await asyncio.sleep(0)

    async def serve() -> None:
        await asyncio.gather(*(request(i) for i in range(4)))

    asyncio.run(serve())
    if owned:
        provider.shutdown()


if __name__ == "__main__":
    main()
