"""Measuring one test, or one block of a test, as a span of the plugin's own provider.

The spans go through a private ``TracerProvider`` (always sampled, no exporter) with a
:class:`~otel_carbon.processor.CarbonSpanProcessor`: they never reach the exporters of the
application under test, the plugin keeps the finished test spans for its reports, and their
figures are the processor's: the span's own CPU time (its thread's clock, plus the work it
hands to thread pools and threads) x the price of a CPU-second. The span is the
current span while it is open, so spans the test opens are its children.
"""

from __future__ import annotations

import os
import threading
from typing import Any, List, Optional

_lock = threading.Lock()
_tracer: Any = None
_finished: List[Any] = []
_keeping = False  # set while a --carbon session collects its test spans


def tracer() -> Any:
    """The plugin's tracer (its provider and the sampler start on first use)."""
    global _tracer
    if _tracer is None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        from otel_carbon import __version__
        from otel_carbon.processor import CarbonSpanProcessor

        class _Keep(SpanProcessor):
            def on_end(self, span: Any) -> None:
                if _keeping and span.parent is None:  # a test's span, not a measure() block
                    _finished.append(span)

        with _lock:
            if _tracer is None:
                provider = TracerProvider(
                    sampler=ALWAYS_ON,
                    resource=Resource.create({"service.name": "pytest", "process.pid": os.getpid()}),
                    span_limits=SpanLimits(max_span_attributes=128),  # room for our attributes
                )
                provider.add_span_processor(CarbonSpanProcessor())
                provider.add_span_processor(_Keep())
                _tracer = provider.get_tracer("otel_carbon.pytest_plugin", __version__)
    return _tracer


def keep_test_spans() -> None:
    global _keeping
    _keeping = True


def take_finished() -> List[Any]:
    """The test spans finished since the last call (``ReadableSpan``)."""
    with _lock:
        spans = _finished[:]
        del _finished[: len(spans)]
    return spans


class Current:
    """A span started now and made the current span; :meth:`end` ends it."""

    __slots__ = ("span", "token")

    def __init__(self, name: str) -> None:
        from opentelemetry import context, trace

        self.span = tracer().start_span(name)
        self.token = context.attach(trace.set_span_in_context(self.span))

    def end(self) -> Any:
        from opentelemetry import context

        try:
            context.detach(self.token)
        finally:
            self.span.end()
        return self.span


class Measurement:
    """The figures of one ``carbon.measure()`` block, set when the block ends. A figure
    that could not be measured is NaN (so ``assert m.energy_j < budget`` fails)."""

    __slots__ = ("name", "attributes", "energy_j", "cpu_time_s", "emissions_g", "duration_s", "method")

    def __init__(self, name: str) -> None:
        self.name = name
        self.attributes: Any = {}  # the span's carbon.* attributes
        nan = float("nan")
        self.energy_j = self.cpu_time_s = self.emissions_g = self.duration_s = nan
        self.method = "unavailable"

    def _set(self, span: Any) -> None:
        from otel_carbon import attributes as A

        nan = float("nan")
        attrs = self.attributes = {k: v for k, v in (span.attributes or {}).items() if k.startswith("carbon.")}
        self.energy_j = float(attrs.get(A.ENERGY_TOTAL, nan))
        self.cpu_time_s = float(attrs.get(A.CPU_TIME, nan))
        self.emissions_g = float(attrs.get(A.EMISSIONS, nan))
        self.method = str(attrs.get(A.METHOD, A.UNAVAILABLE))
        if span.start_time and span.end_time:
            self.duration_s = (span.end_time - span.start_time) / 1e9

    def __repr__(self) -> str:
        return (f"Measurement({self.name!r}, energy_j={self.energy_j:.6g}, cpu_time_s={self.cpu_time_s:.6g}, "
                f"emissions_g={self.emissions_g:.6g}, method={self.method!r})")


class _Block:
    def __init__(self, name: str) -> None:
        self._name = name
        self._measurement = Measurement(name)
        self._current: Optional[Current] = None

    def __enter__(self) -> Measurement:
        self._current = Current(self._name)
        return self._measurement

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._current is not None:
            self._measurement._set(self._current.end())


class CarbonFixture:
    """What the ``carbon`` fixture gives a test."""

    def measure(self, name: Optional[str] = None) -> _Block:
        """A context manager measuring its block as a span named ``name`` (default
        ``carbon.measure``); it yields a :class:`Measurement`, filled in at the end."""
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        return _Block(name or "carbon.measure")
