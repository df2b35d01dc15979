"""Measuring one test, or one block of a test, as a span of the plugin's own provider.

The spans go through a private ``TracerProvider`` (always sampled, no exporter): they never
reach the exporters of the application under test, and the plugin keeps the finished
ones for its reports. Figures come from :class:`otel_carbon.track.EmissionsTracker` with
``scope="span"``: the span's own CPU time (its thread's clock, plus the work it hands to
other threads where that is followed) x the price of a CPU-second, the processor's rule.
The span is the current span while the test runs, so spans the test opens are its
children.
"""

from __future__ import annotations

import os
import threading
from typing import Any, List, Optional

_lock = threading.Lock()
_provider: Any = None
_finished: List[Any] = []
_keeping = False  # set while a --carbon session collects its test spans


def provider() -> Any:
    """The plugin's tracer provider (created on first use)."""
    global _provider
    if _provider is None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON

        class _Keep(SpanProcessor):
            def on_end(self, span: Any) -> None:
                if _keeping and span.parent is None:  # a test's span, not a measure() block
                    _finished.append(span)

        with _lock:
            if _provider is None:
                made = TracerProvider(sampler=ALWAYS_ON, resource=Resource.create({"service.name": "pytest", "process.pid": os.getpid()}))
                made.add_span_processor(_Keep())
                _provider = made
    return _provider


def keep_test_spans() -> None:
    global _keeping
    _keeping = True


def take_finished() -> List[Any]:
    """The spans finished since the last call (``ReadableSpan``)."""
    with _lock:
        spans = _finished[:]
        del _finished[: len(spans)]
    return spans


def tracker(name: str) -> Any:
    from otel_carbon.track import EmissionsTracker

    return EmissionsTracker(name=name, project_name="pytest", scope="span", save_to_file=False, tracer_provider=provider())


class Measurement:
    """The figures of one ``carbon.measure()`` block, set when the block ends. A figure
    that could not be measured is NaN (so ``assert m.energy_j < budget`` fails)."""

    __slots__ = ("name", "result", "energy_j", "cpu_time_s", "emissions_g", "duration_s", "method")

    def __init__(self, name: str) -> None:
        self.name = name
        self.result: Any = None
        nan = float("nan")
        self.energy_j = self.cpu_time_s = self.emissions_g = self.duration_s = nan
        self.method = "unavailable"

    def _set(self, result: Any) -> None:
        self.result = result
        if result is not None:
            self.energy_j = result.energy_total_j
            self.cpu_time_s = result.cpu_time_s
            self.emissions_g = result.emissions_g
            self.duration_s = result.duration_s
            self.method = result.method

    def __repr__(self) -> str:
        return (f"Measurement({self.name!r}, energy_j={self.energy_j:.6g}, cpu_time_s={self.cpu_time_s:.6g}, "
                f"emissions_g={self.emissions_g:.6g}, method={self.method!r})")


class _Block:
    def __init__(self, name: str) -> None:
        self._tracker = tracker(name)
        self._measurement = Measurement(name)

    def __enter__(self) -> Measurement:
        self._tracker.start()
        return self._measurement

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._measurement._set(self._tracker.stop(_error=exc))


class CarbonFixture:
    """What the ``carbon`` fixture gives a test."""

    def measure(self, name: Optional[str] = None) -> _Block:
        """A context manager measuring its block as a span named ``name`` (default
        ``carbon.measure``); it yields a :class:`Measurement`, filled in at the end."""
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        return _Block(name or "carbon.measure")
