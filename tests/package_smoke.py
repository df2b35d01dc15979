"""Smoke test of an installed otel-carbon, run by the packaging tests with the new venv's
Python, from a directory outside the checkout. Prints one JSON line."""

import json
import time

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_carbon
from otel_carbon import CarbonSpanProcessor, cpu_clock

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(CarbonSpanProcessor())
provider.add_span_processor(SimpleSpanProcessor(exporter))
with provider.get_tracer("smoke").start_as_current_span("work"):
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < 0.2:
        x += sum(i * i for i in range(1000))
provider.shutdown()
(span,) = exporter.get_finished_spans()
print(json.dumps({"file": otel_carbon.__file__, "span_path": cpu_clock.span_path, "attributes": dict(span.attributes)}))
