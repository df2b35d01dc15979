"""CarbonSpanProcessor: energy and CO2e on every span.

How figures reach the exporters (the SDK makes spans read-only before ``on_end``):

* **Drop-in** -- ``provider.add_span_processor(CarbonSpanProcessor())``, in any order
  relative to the exporting processors. The SDK (>= 1.40) calls ``_on_ending`` on *every*
  processor before it calls ``on_end`` on any of them; there we write our attributes into
  the span. ``Span.set_attribute`` is dropped at that point (the end time is already set:
  open-telemetry/opentelemetry-python#5614), so the attributes go into the span's attribute
  mapping directly (one ``dict.update``, atomic under the GIL; the SDK's span lock is not
  taken). This is the one use of SDK internals, guarded: if it
  ever fails, the span is exported unchanged and we log once.
* **Wrapping** (public API only) -- ``CarbonSpanProcessor(BatchSpanProcessor(exporter))``:
  the wrapped processors receive, in ``on_end``, a copy of the span with our attributes.
  They are the exporting route, so they get *sampled* spans only: a recorded but unsampled
  span (``RECORD_ONLY``, e.g. a request :mod:`otel_carbon.record_unsampled` keeps for the
  metrics) gets figures and reaches the meter, never the wrapped processors. A processor
  that wants unsampled spans goes on the provider beside ours.

What a span costs -- the open spans, the hand-offs, pricing, listeners, the compiled span
path -- is :class:`~otel_carbon.span_pricing.SpanPricer`'s; this class adds the SDK hooks.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, Optional, Tuple

from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_carbon import attributes as A
from otel_carbon._log import warn_once
from otel_carbon.sampler import Sampler
from otel_carbon.span_limits import copy_with, within_limits
from otel_carbon.span_pricing import SpanPricer

_logger = logging.getLogger("otel_carbon")


class CarbonSpanProcessor(SpanPricer, SpanProcessor):
    """Attach energy (J) and CO2e (g) to every span; see the module docstring.

    Args:
        *processors: optional processors to wrap (public-API route); when given, they get an
            enriched copy of each span in ``on_end``. Without them, add this processor to the
            provider beside the exporting processors (drop-in route).
        sampler, idle_policy, max_open_spans, embodied_g_per_hour: as for
            :class:`~otel_carbon.span_pricing.SpanPricer`.
    """

    def __init__(
        self,
        *processors: SpanProcessor,
        sampler: Optional[Sampler] = None,
        idle_policy: Optional[str] = None,
        max_open_spans: Optional[int] = None,
        embodied_g_per_hour: Optional[float] = None,
    ) -> None:
        for p in processors:
            if not isinstance(p, SpanProcessor):
                raise ValueError(f"processors must be SpanProcessor instances, got {type(p).__name__}")
        self._wrapped: Tuple[SpanProcessor, ...] = processors
        SpanPricer.__init__(self, sampler, idle_policy, max_open_spans, embodied_g_per_hour)

    def _pass_on_ending(self, span: Span) -> None:
        if self._wrapped and span.context.trace_flags.sampled:
            for p in self._wrapped:
                hook = getattr(p, "_on_ending", None)
                if hook is not None:
                    hook(span)

    def _pass_on_end(self, span: ReadableSpan) -> None:
        if self._wrapped and span.context.trace_flags.sampled:
            for p in self._wrapped:
                p.on_end(span)

    # -- span end -----------------------------------------------------------------------

    def _on_ending(self, span: Span) -> None:
        if self._wrapped:
            self._pass_on_ending(span)
            return
        try:
            values = self.figures_at_end(span)
            bounded = span._attributes  # noqa: SLF001
            target = bounded._dict  # noqa: SLF001
            run_values = priced_by_run(target)
            if run_values is not None:
                values = run_values
            else:
                # Straight into the span's attribute dict (see the module docstring), within the
                # span's limits. No lock: one dict.update of str keys and plain values runs
                # without releasing the GIL, so nobody sees it half done.
                kept, dropped = within_limits(values, target, getattr(bounded, "maxlen", None), getattr(bounded, "max_value_len", None))
                target.update(kept)
                if dropped:
                    bounded.dropped += dropped
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "on_ending", "otel_carbon: could not attach carbon attributes: %r", exc)
            return
        if self._listeners:
            self._listeners.notify(span, values)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._wrapped:
            return
        try:
            values = self.figures_at_end(span)
            run_values = priced_by_run(span.attributes or {})
            if run_values is not None:
                values, enriched = run_values, span
            else:
                enriched = copy_with(span, values)
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "on_end", "otel_carbon: could not attach carbon attributes: %r", exc)
            enriched = span
        else:
            if self._listeners:
                self._listeners.notify(enriched, values)
        self._pass_on_end(enriched)

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self.disable()
        self._shutdown = True
        for p in self._wrapped:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        deadline = time.monotonic() + timeout_millis / 1000
        ok = True
        for p in self._wrapped:
            left_ms = max(int((deadline - time.monotonic()) * 1000), 0)
            ok = p.force_flush(left_ms) and ok
        return ok


def priced_by_run(attributes: Any) -> Optional[Dict[str, Any]]:
    """The carbon figures of a span the tracking API priced itself (a tracked run's span
    carries ``carbon.run.scope``; its figures use the run's own location), else None: such
    a span keeps them."""
    if A.RUN_SCOPE not in attributes or A.ENERGY_TOTAL not in attributes:
        return None
    return {k: v for k, v in attributes.items() if k in A.SPAN_ATTRIBUTES}


CarbonSpanProcessor._HOOKS_OF = CarbonSpanProcessor
