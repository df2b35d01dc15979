"""One carbon processor and one set of meter instruments per provider, with use counts.

:func:`otel_carbon.configure` and the ``carbon`` instrumentor (``opentelemetry-instrument``)
both attach through here, so using both never counts a span twice: the first caller adds
our processor to a tracer provider (the instruments to a meter provider), later callers
share it and add a use; the last :func:`release_processor` / :func:`release_metrics` turns
ours off. A provider cannot drop a processor, so "off" is the processor's ``enabled`` flag:
its hooks do nothing until a later caller attaches to the same provider and turns it on
again.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Optional, Sequence

from opentelemetry.sdk.trace import TracerProvider

from otel_carbon import config, record_unsampled
from otel_carbon._log import warn_once
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.process_sampler import get_sampler
from otel_carbon.sampler import Sampler

_logger = logging.getLogger("otel_carbon")


class _Slot:
    __slots__ = ("value", "users", "unsampled")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.users = 1
        self.unsampled = False  # whether we wrapped the provider's sampler (record_unsampled)


_registry_lock = threading.RLock()
_processors: "weakref.WeakKeyDictionary[Any, _Slot]" = weakref.WeakKeyDictionary()
_meters: "weakref.WeakKeyDictionary[Any, _Slot]" = weakref.WeakKeyDictionary()
#: providers whose processor of ours was turned off (a provider cannot drop a processor)
_disabled: "weakref.WeakKeyDictionary[Any, CarbonSpanProcessor]" = weakref.WeakKeyDictionary()


def acquire_processor(provider: TracerProvider, sampler: Optional[Sampler] = None) -> CarbonSpanProcessor:
    """The :class:`CarbonSpanProcessor` on ``provider``, added now if it has none of ours."""
    with _registry_lock:
        slot = _processors.get(provider)
        if slot is not None:
            slot.users += 1
            return slot.value  # type: ignore[no-any-return]
        processor = _disabled.pop(provider, None)
        if processor is not None:  # ours was turned off earlier: turn the same one back on
            processor.enable(sampler if sampler is not None else get_sampler())
        else:
            processor = CarbonSpanProcessor(sampler=sampler)
            provider.add_span_processor(processor)
        _processors[provider] = _Slot(processor)
        return processor


def release_processor(provider: TracerProvider) -> bool:
    """Drop one use; the last one turns our processor on ``provider`` off. True if it did."""
    with _registry_lock:
        slot = _last_use_dropped(_processors, provider)
        if slot is None:
            return False
        if slot.unsampled:
            record_unsampled.uninstall(provider)
        slot.value.disable()
        _disabled[provider] = slot.value
        return True


def record_unsampled_roots(provider: TracerProvider, instruments: Any) -> None:
    """With the meter on ``provider``'s spans: wrap its sampler so that dropped local roots
    are recorded for the metrics, never exported (:mod:`otel_carbon.record_unsampled`),
    unless ``OTEL_CARBON_RECORD_UNSAMPLED=off``. Undone when our processor is released."""
    if instruments is None or not config.record_unsampled():
        return
    with _registry_lock:
        slot = _processors.get(provider)
        if slot is not None and not slot.unsampled:
            slot.unsampled = record_unsampled.install(provider, children=instruments.spans == "all")


def metrics_class() -> Any:
    """``otel_carbon.metrics.CarbonMetrics``, or None (logged once) when it cannot load."""
    try:
        from otel_carbon.metrics import CarbonMetrics
    except ImportError as exc:
        warn_once(_logger, "metrics-import", "otel_carbon: meter instruments unavailable (%r); spans only", exc)
        return None
    return CarbonMetrics


def acquire_metrics(
    meter_provider: Any,
    processor: Optional[CarbonSpanProcessor],
    sampler: Optional[Sampler] = None,
    span_attribute_allowlist: Sequence[str] = (),
) -> Any:
    """The ``CarbonMetrics`` on ``meter_provider``, made now if it has none (None if the
    metrics module is unavailable)."""
    with _registry_lock:
        slot = _meters.get(meter_provider)
        if slot is not None:
            slot.users += 1
            if processor is not None:
                slot.value.attach(processor)  # idempotent
            return slot.value
        cls = metrics_class()
        if cls is None:
            return None
        instruments = cls(meter_provider, sampler=sampler, span_attribute_allowlist=tuple(span_attribute_allowlist))
        if processor is not None:
            instruments.attach(processor)
        _meters[meter_provider] = _Slot(instruments)
        return instruments


def check_allowlist(span_attribute_allowlist: Any) -> None:
    """ValueError (naming the argument) unless it is a list of attribute names the meter
    accepts: checked before anything is set up."""
    try:
        names = None if isinstance(span_attribute_allowlist, (str, bytes)) else list(span_attribute_allowlist)
    except TypeError:
        names = None
    if names is None or not all(isinstance(x, str) for x in names):
        raise ValueError(f"span_attribute_allowlist must be a list of attribute names, got {span_attribute_allowlist!r}")
    try:
        from otel_carbon.metrics._spans import build_allowlist
    except ImportError:
        return
    build_allowlist(span_attribute_allowlist, ())  # raises ValueError for URL / id attributes


def release_metrics(meter_provider: Any) -> bool:
    """Drop one use; the last one shuts our instruments on ``meter_provider`` down. True if it did."""
    with _registry_lock:
        slot = _last_use_dropped(_meters, meter_provider)
    if slot is None:
        return False
    slot.value.shutdown()
    return True


def _last_use_dropped(slots: "weakref.WeakKeyDictionary[Any, _Slot]", provider: Any) -> Optional[_Slot]:
    """Drop one use of ``provider``'s slot (under the lock); the slot, removed, when that
    was the last use, else None."""
    slot = slots.get(provider)
    if slot is None:
        return None
    slot.users -= 1
    if slot.users > 0:
        return None
    del slots[provider]
    return slot


def run_if_unused(action: Callable[[], None]) -> bool:
    """Run ``action`` when no provider holds our processor or instruments, under the lock
    that attaching takes (so nothing attaches meanwhile); True if it ran."""
    with _registry_lock:
        if _processors or _meters:
            return False
        action()
        return True
