"""Per-route metrics that count every request, whatever the trace sampler decides.

A span the sampler drops is a ``NonRecordingSpan``: no span processor ever sees it, so under
head sampling (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``_ARG=0.1``) per-route
energy would count one request in ten. :class:`RecordUnsampled` wraps the application's
sampler (never replaces it) and turns its ``DROP`` into ``RECORD_ONLY`` for **local roots**
(no parent, or a remote parent). A ``RECORD_ONLY`` span is recording but not sampled: span
processors see it, so ours attaches figures and the meter sums it, while the SDK's
``BatchSpanProcessor`` and ``SimpleSpanProcessor`` skip it (they export sampled spans only;
a :class:`~otel_carbon.processor.CarbonSpanProcessor` that wraps processors forwards sampled
spans only). The exported traces stay exactly as sampled, and the sampled flag propagated
downstream is unchanged (not sampled).

**Children** of such a root: the delegate decides for them as before; a parent-based
sampler drops them (their parent is not sampled), so they stay ``NonRecordingSpan`` and
cost what they cost without us. That is what the default per-span metrics need: they sum
local roots only, and a root's figures already include its children's work (its thread's
or task's CPU time, and what the dropped children hand to other threads: see
:func:`otel_carbon.offload.dropped_under`). With ``children=True`` (what ``configure()`` and the instrumentor pick
when the meter takes every span, ``OTEL_CARBON_METRIC_SPANS=all``) a dropped child of a
recording parent is recorded too.

**Cost** of an unsampled request: its root becomes a real SDK span (ids, attributes,
processors' hooks: about a sampled span's cost minus the export); the instrumentation also
sets the attributes it skips on a non-recording span. See BENCHMARKS.md.

:func:`install` wraps a tracer provider's sampler (and, where the SDK keeps its tracers,
those already handed out); :func:`uninstall` undoes it. On SDKs without a tracer registry
(before 1.42) a tracer obtained before :func:`install` keeps the unwrapped sampler.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from otel_carbon.offload import dropped_under

_logger = logging.getLogger("otel_carbon")
_DROP = Decision.DROP
_RECORD_ONLY = Decision.RECORD_ONLY


class RecordUnsampled(Sampler):
    """``delegate``'s decisions, except that a dropped local root is recorded, not exported.

    Args:
        delegate: the sampler that decides what is exported (the application's).
        children: also record a dropped span whose local parent is recording.
    """

    def __init__(self, delegate: Sampler, children: bool = False) -> None:
        if not callable(getattr(delegate, "should_sample", None)):
            raise ValueError(f"delegate must be an OpenTelemetry Sampler, got {type(delegate).__name__}")
        if not isinstance(children, bool):
            raise ValueError(f"children must be True or False, got {children!r}")
        self.delegate = delegate
        self.children = children
        self._decide = delegate.should_sample

    def should_sample(
        self,
        parent_context: Optional[Context],
        trace_id: int,
        name: str,
        kind: Optional[SpanKind] = None,
        attributes: Attributes = None,
        links: Optional[Sequence[Link]] = None,
        trace_state: Optional[TraceState] = None,
    ) -> SamplingResult:
        if trace_state is None:
            result = self._decide(parent_context, trace_id, name, kind, attributes, links)
        else:
            result = self._decide(parent_context, trace_id, name, kind, attributes, links, trace_state)
        if result.decision is not _DROP:
            return result
        parent = get_current_span(parent_context)
        context = parent.get_span_context()
        if context.is_valid and not context.is_remote:  # a local child
            if parent.is_recording():
                if self.children:
                    return SamplingResult(_RECORD_ONLY, attributes, result.trace_state)
                dropped_under(parent)  # work it hands to other threads is the parent's
            return result  # the delegate's decision stands
        # The delegate's DROP result carries no attributes; the span keeps the ones it was
        # started with (http.route and the like), as a sampled one would.
        return SamplingResult(_RECORD_ONLY, attributes, result.trace_state)

    def get_description(self) -> str:
        return f"RecordUnsampled{{{self.delegate.get_description()}}}"


def install(tracer_provider: Any, children: bool = False) -> bool:
    """Wrap ``tracer_provider``'s sampler in :class:`RecordUnsampled`; True if it did (False
    when it is wrapped already or is not an SDK tracer provider)."""
    current = getattr(tracer_provider, "sampler", None)
    if current is None or isinstance(current, RecordUnsampled):
        return False
    wrapper = RecordUnsampled(current, children=children)
    tracer_provider.sampler = wrapper
    _retarget(tracer_provider, current, wrapper)
    return True


def uninstall(tracer_provider: Any) -> bool:
    """Put back the sampler :func:`install` wrapped; True if it did."""
    current = getattr(tracer_provider, "sampler", None)
    if not isinstance(current, RecordUnsampled):
        return False
    tracer_provider.sampler = current.delegate
    _retarget(tracer_provider, current, current.delegate)
    return True


def _retarget(tracer_provider: Any, old: Any, new: Any) -> None:
    """The tracers the provider handed out already hold ``old``: the SDK (>= 1.42) keeps
    them in ``_tracers``; earlier ones keep no list (those tracers keep ``old``)."""
    tracers = getattr(tracer_provider, "_tracers", None)
    if not isinstance(tracers, dict):
        _logger.debug("otel_carbon: this SDK keeps no tracer registry; tracers made earlier keep their sampler")
        return
    for tracer in list(tracers.values()):
        if getattr(tracer, "sampler", None) is old:
            tracer.sampler = new
