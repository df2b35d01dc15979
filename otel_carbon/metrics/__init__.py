"""Energy, power and emissions as OpenTelemetry metrics.

::

    from otel_carbon import CarbonSpanProcessor
    from otel_carbon.metrics import CarbonMetrics

    processor = CarbonSpanProcessor()
    tracer_provider.add_span_processor(processor)
    CarbonMetrics(meter_provider).attach(processor)   # or CarbonMetrics() for the global one

Instruments (names and units in :mod:`otel_carbon.attributes`, table in docs/metrics.md):

* hardware, after the ``hw.*`` semantic conventions: ``hw.energy`` (counter, J) and
  ``hw.power`` (gauge, W) per component with ``hw.type``, ``hw.id``, ``hw.name`` and
  ``carbon.method``; ``hw.host.energy`` / ``hw.host.power`` for all components together;
  ``carbon.host.energy`` splits each component's energy into ``active`` and ``idle``;
* this process: ``carbon.process.energy`` (counter, J, per ``hw.type``) and
  ``carbon.process.emissions`` (counter, g);
* ``carbon.grid.intensity`` (gauge, g CO2e/kWh) with ``carbon.zone``;
* ``carbon.offload.late`` (counter, s): CPU time of work handed off by spans that ended
  before it did (charged to no span);
* per span: ``carbon.span.energy`` (counter, J), ``carbon.span.emissions`` (counter, g) and
  ``carbon.span.count`` (counter, ``{span}``) with the span name (``span.name``),
  ``http.route``, ``http.request.method``, ``rpc.service``, ``rpc.method``,
  ``carbon.method``, and the attributes the user adds (``span_attribute_allowlist``,
  ``OTEL_CARBON_METRIC_SPAN_ATTRIBUTES``). Raw URLs and ids are refused; at most
  ``cardinality_limit`` attribute sets, then ``otel.metric.overflow=true`` and
  ``carbon.span.overflow``. Opt-in: ``carbon.span.energy_distribution`` (histogram, J).

Cost on the span path: a key, a dict lookup and three additions under a lock, ~1 us (see
:mod:`otel_carbon.metrics._spans`); no SDK measurement per span unless the histogram is on.
The SDK reads the sums through asynchronous counters when it collects.

**Every request counts.** A span the trace sampler drops never reaches a span processor, so
under head sampling (``parentbased_traceidratio`` at 10 %) per-route metrics would see one
request in ten. :mod:`otel_carbon.record_unsampled` wraps the tracer provider's sampler so
that dropped local roots are recorded but not exported; ``configure()`` and the ``carbon``
instrumentor install it with the meter (``OTEL_CARBON_RECORD_UNSAMPLED=off`` to not).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Iterable, List, Optional

from opentelemetry import metrics as otel_metrics

from otel_carbon import config
from otel_carbon.metrics._hardware import POWER_WINDOW_NS, HardwareMeter
from otel_carbon.metrics._spans import DEFAULT_MAX_QUEUE, ENERGY_BUCKETS_J, SpanRecorder, build_allowlist
from otel_carbon.process_sampler import get_sampler
from otel_carbon.sampler import Sampler

__all__ = ["CarbonMetrics", "DEFAULT_MAX_QUEUE", "ENERGY_BUCKETS_J", "POWER_WINDOW_NS"]

_logger = logging.getLogger("otel_carbon")
SCOPE_NAME = "otel_carbon"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("otel-carbon")
    except Exception:  # noqa: BLE001
        return ""


class CarbonMetrics:
    """Carbon and energy instruments on a meter provider; see the module docstring.

    Args:
        meter_provider: the application's provider; the global one when None (a proxy
            until the application sets it, like any OpenTelemetry instrumentation).
        sampler: the process-wide sampler by default (the one the processors share).
        span_attribute_allowlist: span attributes to add to the per-span metrics, beside
            the defaults. Only low-cardinality ones: URL and ``*.id`` attributes raise
            ``ValueError``. ``OTEL_CARBON_METRIC_SPAN_ATTRIBUTES`` adds more.
        max_queue: most histogram values waiting for the next drain (opt-in histogram only);
            more are left out of the histogram (counted in :attr:`dropped_spans`).
        spans: ``"local_root"`` (one per request) or ``"all"``; default ``OTEL_CARBON_METRIC_SPANS``.
        cardinality_limit: most attribute sets per per-span instrument, the overflow set
            included; default ``OTEL_CARBON_METRIC_CARDINALITY_LIMIT`` (2000).
        histogram: also record ``carbon.span.energy_distribution``; default
            ``OTEL_CARBON_METRIC_HISTOGRAM`` (off).
    """

    def __init__(
        self,
        meter_provider: Any = None,
        *,
        sampler: Optional[Sampler] = None,
        span_attribute_allowlist: Iterable[str] = (),
        max_queue: int = DEFAULT_MAX_QUEUE,
        spans: Optional[str] = None,
        cardinality_limit: Optional[int] = None,
        histogram: Optional[bool] = None,
    ) -> None:
        if meter_provider is not None and not callable(getattr(meter_provider, "get_meter", None)):
            raise ValueError(f"meter_provider must be an OpenTelemetry MeterProvider, got {type(meter_provider).__name__}")
        if sampler is not None and not (hasattr(sampler, "ledger") and hasattr(sampler, "add_tick_listener")):
            raise ValueError(f"sampler must be an otel_carbon Sampler, got {type(sampler).__name__}")
        if not isinstance(max_queue, int) or isinstance(max_queue, bool) or max_queue < 1:
            raise ValueError(f"max_queue must be an int >= 1, got {max_queue!r}")
        if spans is None:
            spans = config.metric_spans()
        if spans not in ("local_root", "all"):
            raise ValueError(f"spans must be 'local_root' or 'all', got {spans!r}")
        if cardinality_limit is None:
            cardinality_limit = config.metric_cardinality_limit()
        if not isinstance(cardinality_limit, int) or isinstance(cardinality_limit, bool) or cardinality_limit < 1:
            raise ValueError(f"cardinality_limit must be an int >= 1, got {cardinality_limit!r}")
        if histogram is None:
            histogram = config.metric_histogram()
        if not isinstance(histogram, bool):
            raise ValueError(f"histogram must be True, False or None, got {histogram!r}")
        allowlist = build_allowlist(span_attribute_allowlist, config.metric_span_attributes())
        provider = meter_provider if meter_provider is not None else otel_metrics.get_meter_provider()
        meter = provider.get_meter(SCOPE_NAME, _version())
        self._sampler = sampler if sampler is not None else get_sampler()
        self._spans = SpanRecorder(
            meter, allowlist, max_queue, local_roots_only=spans == "local_root",
            cardinality_limit=cardinality_limit, histogram=histogram,
        )
        self._hardware = HardwareMeter(meter, self._sampler, self._spans.drain)
        self._processors: List[Any] = []
        self._lock = threading.Lock()
        self._shutdown = False
        # bound methods are new objects at each access; the remove_* calls compare identity
        self._span_listener = self._spans.on_span
        self._tick_listener = self._on_tick
        self._sampler.add_tick_listener(self._tick_listener)
        _instances.add(self)

    @property
    def span_attributes(self) -> "tuple[str, ...]":
        """The span attributes the per-span metrics carry (besides ``span.name``)."""
        return self._spans.allowlist

    @property
    def spans(self) -> str:
        """Which spans are recorded: ``"local_root"`` or ``"all"``."""
        return "local_root" if self._spans.local_roots_only else "all"

    @property
    def dropped_spans(self) -> int:
        """Spans left out of the opt-in histogram because its queue was full (never out of
        the counters)."""
        return self._spans.dropped

    @property
    def recorded_spans(self) -> int:
        """Spans summed into the per-span counters so far."""
        return self._spans.recorded

    @property
    def overflowed_spans(self) -> int:
        """Spans summed into the overflow set (``otel.metric.overflow=true``)."""
        return self._spans.overflowed

    def attach(self, processor: Any) -> "CarbonMetrics":
        """Record the spans that ``processor`` (a CarbonSpanProcessor) gives figures to."""
        if not callable(getattr(processor, "add_listener", None)):
            raise ValueError(f"processor must be a CarbonSpanProcessor, got {type(processor).__name__}")
        with self._lock:
            if self._shutdown:
                raise ValueError("attach() after shutdown()")
            if any(p is processor for p in self._processors):
                return self
            self._processors.append(processor)
        processor.add_listener(self._span_listener, local_roots_only=self._spans.local_roots_only, table=self._spans.table())
        return self

    def detach(self, processor: Any) -> None:
        with self._lock:
            self._processors = [p for p in self._processors if p is not processor]
        processor.remove_listener(self._span_listener)

    def _on_tick(self, tick: Any) -> None:
        self._hardware.on_tick(tick)
        self._spans.drain()

    def drain(self) -> int:
        """Record the queued histogram values now (the sampler thread and every collection
        also do); returns how many. Never raises. The counters need no drain."""
        try:
            return self._spans.drain()
        except Exception as exc:  # noqa: BLE001
            _logger.warning("otel_carbon: span metrics drain failed: %r", exc)
            return 0

    def _reinit_after_fork(self) -> None:
        """In a forked child: fresh locks (one may have been held by the parent's sampler
        thread at fork time); the sums carry on, like the SDK instruments' storage."""
        self._lock = threading.Lock()
        self._spans.reinit_after_fork()
        self._hardware.reinit_after_fork()

    def shutdown(self) -> None:
        """Stop recording: detach from the processors and the sampler, record what is still
        queued; the observable callbacks report nothing from then on. Safe to call twice."""
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
            processors, self._processors = self._processors, []
        for processor in processors:
            processor.remove_listener(self._span_listener)
        self._sampler.remove_tick_listener(self._tick_listener)
        self.drain()
        self._hardware.closed = True


_instances: "weakref.WeakSet[CarbonMetrics]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for instance in list(_instances):
        instance._reinit_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
