"""Our attributes into a span under the application's span limits.

The application's limits are the application's (``SpanLimits``, ``OTEL_SPAN_ATTRIBUTE_*``):
our attributes never push out the application's own; those of ours that do not fit are
counted in the span's dropped-attribute count, most useful first (:data:`KEEP_FIRST`); our
string values are cut to the value-length limit. :func:`copy_with` makes the enriched copy
the wrapping route forwards, keeping the dropped attribute, event and link counts.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util import BoundedList

from otel_carbon import attributes as A

#: our attributes in the order they are kept when a span's attribute limit leaves no room
#: for all of them (the rest, in their own order, after these)
KEEP_FIRST = (A.ENERGY_TOTAL, A.EMISSIONS, A.METHOD, A.CPU_TIME, A.INTENSITY, A.ZONE, A.CPU_CLOCK, A.CPU_OFFLOADED)


def within_limits(
    values: Dict[str, Any], present: Any, maxlen: Optional[int], max_value_len: Optional[int]
) -> Tuple[Dict[str, Any], int]:
    """The part of ``values`` that fits beside the ``present`` attributes under the span's
    limits (``SpanLimits``: attribute count, string value length), and how many did not.
    The application's attributes are never pushed out for ours."""
    if max_value_len is not None:
        values = {k: v[:max_value_len] if isinstance(v, str) else v for k, v in values.items()}
    if maxlen is None or len(present) + len(values) <= maxlen:
        return values, 0
    new = [k for k in values if k not in present]
    room = max(maxlen - len(present), 0)
    if len(new) <= room:
        return values, 0
    ranked = sorted(new, key=lambda k: KEEP_FIRST.index(k) if k in KEEP_FIRST else len(KEEP_FIRST))
    dropped = set(ranked[room:])
    return {k: v for k, v in values.items() if k not in dropped}, len(dropped)


def copy_with(span: ReadableSpan, values: Dict[str, Any]) -> ReadableSpan:
    """A copy of ``span`` with ``values`` added, under the span's limits, its dropped
    attribute, event and link counts kept (and ours that did not fit counted)."""
    original = span.attributes or {}
    limited = getattr(span, "_attributes", None)  # the SDK's BoundedAttributes: the limits
    maxlen = getattr(limited, "maxlen", None)
    max_value_len = getattr(limited, "max_value_len", None)
    kept, dropped = within_limits(values, original, maxlen, max_value_len)
    merged = BoundedAttributes(maxlen, {**original, **kept}, immutable=True, max_value_len=max_value_len)
    merged.dropped = span.dropped_attributes + dropped
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=merged,
        events=_bounded(span.events, span.dropped_events),
        links=_bounded(span.links, span.dropped_links),
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _bounded(items: Any, dropped: int) -> Any:
    """``items`` as an SDK bounded list that still says how many were dropped."""
    if not dropped:
        return items
    bounded = BoundedList.from_seq(None, items)
    bounded.dropped = dropped
    return bounded
