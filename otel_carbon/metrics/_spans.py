"""Per-span metrics: ``carbon.span.energy`` (histogram, J) and ``carbon.span.emissions``
(counter, g), keyed by low-cardinality attributes only.

The span path must stay near free (the whole processor budget is 2-3 us, and an SDK
``Histogram.record`` costs 7-13 us on a small VM), so a span that ends only appends one
flat record -- span name, method, energy, emissions, the allow-listed attribute values -- to
a bounded deque (a full queue leaves the span out of the metrics and counts it): ~0.4 us.
The record holds no reference to the span (keeping thousands of ended spans alive until the
drain cost ~8 us per span here: the allocator can no longer reuse their memory) and is no
GC-tracked object (see :meth:`SpanRecorder.on_span`).

:meth:`SpanRecorder.drain` turns the queue into SDK measurements: the sampler thread calls
it after every tick, and every observable callback of the meter calls it first, so a
collection (periodic reader, Prometheus scrape, ``force_flush``) sees every span that ended
before it. It costs one ``Histogram.record`` per span (an exact histogram needs one SDK
measurement per value; ~3 us plus ~0.7 us per attribute in SDK 1.45) and one
``Counter.add`` per attribute set, and lets the application threads have the GIL every
:data:`DRAIN_CHUNK` spans.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from functools import partial
from typing import Any, Deque, Dict, Iterable, Mapping, Optional, Tuple

from otel_carbon import attributes as A
from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")

DEFAULT_MAX_QUEUE = 32_768  # ~200 bytes a span: a few MB at most
#: histogram buckets (J): a web request is ~1 mJ..1 J, a batch job up to kJ
ENERGY_BUCKETS_J = (
    1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 1e4,
)
#: distinct attribute sets kept in the drain's cache before it is cleared
MAX_CACHED_KEYS = 4096
#: the drain lets the application threads have the GIL after this many spans (~1.5 ms of
#: records, under the interpreter's 5 ms switch interval): a whole tick's worth in one go
#: can hold it for tens of ms in a busy service. Each yield costs ~20 us (a GIL hand-off).
DRAIN_CHUNK = 256
_yield_gil = partial(time.sleep, 0)

_URL_ATTRIBUTES = frozenset(
    {"url.full", "url.path", "url.query", "url.fragment", "http.url", "http.target", "http.client_ip"}
)
_EMPTY: Mapping[str, Any] = {}


def refused_reason(name: str) -> Optional[str]:
    """Why ``name`` may not be a metric attribute (a raw URL or an id), or None."""
    if name in _URL_ATTRIBUTES:
        return "it holds raw URLs (unbounded cardinality); use http.route"
    lowered = name.lower()
    if lowered.endswith((".id", "_id", ".uuid")) or lowered in ("id", "uuid"):
        return "it holds ids (unbounded cardinality)"
    return None


def _attribute_dict(span: Any) -> Mapping[str, Any]:
    """The span's attributes as a plain mapping, as cheaply as possible.

    An SDK span keeps a ``BoundedAttributes`` whose ``_dict`` is a plain dict; its public
    ``attributes`` is a mappingproxy over it, whose ``get`` goes through Python-level
    ``Mapping.get`` and raises a KeyError for every missing key. Reading the dict
    (read-only) is several times cheaper; anything else goes through the public property.
    """
    attrs = getattr(span, "_attributes", None)
    store = getattr(attrs, "_dict", attrs)
    if type(store) is dict:
        return store
    public = span.attributes
    return public if public is not None else _EMPTY


class SpanRecorder:
    """The listener a :class:`~otel_carbon.processor.CarbonSpanProcessor` calls at span end,
    its bounded queue, and the drain into the SDK instruments."""

    def __init__(self, meter: Any, allowlist: Tuple[str, ...], max_queue: int, local_roots_only: bool = True) -> None:
        self.allowlist = allowlist
        #: record only local root spans (no parent, or a remote one): one per request, and
        #: sums never count a child's energy twice (a parent's figures include it)
        self.local_roots_only = local_roots_only
        # http.method (old conventions) is read too, and reported as http.request.method
        # when the span has no http.request.method.
        self._fallback = A.HTTP_REQUEST_METHOD in allowlist and A.HTTP_METHOD_OLD not in allowlist
        self._lookup = allowlist + ((A.HTTP_METHOD_OLD,) if self._fallback else ())
        self._method_index = allowlist.index(A.HTTP_REQUEST_METHOD) if self._fallback else -1
        self._max_queue = max_queue
        self._n_values = len(self._lookup)
        self._max_items = max_queue * (4 + self._n_values)  # a span is 4 + n_values items
        self._queue: Deque[Any] = deque()
        self._drain_lock = threading.Lock()
        self._attrs_cache: Dict[Tuple[Any, ...], Dict[str, Any]] = {}
        self.dropped = 0
        self.recorded = 0
        self._histogram = meter.create_histogram(
            A.SPAN_ENERGY,
            unit=A.UNIT_J,
            description="Energy attributed to the work inside each span (carbon.energy.total)",
            explicit_bucket_boundaries_advisory=list(ENERGY_BUCKETS_J),
        )
        self._counter = meter.create_counter(
            A.SPAN_EMISSIONS,
            unit=A.UNIT_G,
            description="CO2e caused by the energy of spans (carbon.emissions)",
        )

    # -- span path (the thread that ends the span) ------------------------------------------

    def on_span(self, span: Any, figures: Dict[str, Any]) -> None:
        energy_j = figures.get(A.ENERGY_TOTAL)
        if energy_j is None:  # no figures (carbon.method=unavailable)
            return
        if self.local_roots_only:
            parent = span.parent
            if parent is not None and not parent.is_remote:
                return
        queue = self._queue
        if len(queue) >= self._max_items:
            self._full()
            return
        get = _attribute_dict(span).get
        # One flat record of plain values (str, float, None), never a tuple per span: that was
        # a GC-tracked object living until the drain, and a busy service queues hundreds per
        # tick, which added collections (Flask: 16.3 against 15.3 gen0 and 1.7 against 1.3 gen1
        # per 1,000 requests, ~3 us of GC a request). The temporary tuple is freed at once;
        # deque.extend of it is atomic under the GIL, so records never interleave.
        queue.extend((span.name, figures.get(A.METHOD), energy_j, figures.get(A.EMISSIONS, 0.0), *map(get, self._lookup)))

    @property
    def queued(self) -> int:
        """Spans waiting for the next drain."""
        return len(self._queue) // (4 + self._n_values)

    def reinit_after_fork(self) -> None:
        self._drain_lock = threading.Lock()
        self._queue.clear()

    def _full(self) -> None:
        self.dropped += 1
        warn_once(
            _logger,
            "metrics-queue-full",
            "otel_carbon: span metrics queue full (%d spans); spans are left out of the metrics "
            "(not out of traces) until the next drain",
            self._max_queue,
        )

    # -- drain (sampler thread, or the collecting thread) -----------------------------------

    def drain(self) -> int:
        """Record every queued span into the SDK instruments; returns how many."""
        if not self._queue:
            return 0
        with self._drain_lock:  # a collection waits for a drain in progress on another thread
            pop = self._queue.popleft
            record = self._histogram.record
            cache = self._attrs_cache
            emissions: Dict[Tuple[Any, ...], float] = {}
            n = 0
            value_slots = range(self._n_values)
            while True:
                try:
                    name = pop()
                except IndexError:
                    break
                method, energy_j, emissions_g = pop(), pop(), pop()
                key = (name, tuple([pop() for _ in value_slots]), method)
                attrs = cache.get(key)
                if attrs is None:
                    attrs = self._attributes(key)
                record(energy_j, attrs)
                emissions[key] = emissions.get(key, 0.0) + emissions_g
                n += 1
                if not n % DRAIN_CHUNK:
                    _yield_gil()
            for key, grams in emissions.items():
                self._counter.add(grams, cache.get(key) or self._attributes(key))
            self.recorded += n
            return n

    def _attributes(self, key: Tuple[Any, ...]) -> Dict[str, Any]:
        name, values, method = key
        attrs: Dict[str, Any] = {A.SPAN_NAME: name}
        for attr, value in zip(self.allowlist, values):
            if value is not None:
                attrs[attr] = value
        if self._fallback and values[self._method_index] is None and values[-1] is not None:
            attrs[A.HTTP_REQUEST_METHOD] = values[-1]
        if method is not None:
            attrs[A.METHOD] = method
        cache = self._attrs_cache
        if len(cache) >= MAX_CACHED_KEYS:
            cache.clear()
        cache[key] = attrs
        return attrs


def build_allowlist(extra: Iterable[str], from_env: Iterable[str]) -> Tuple[str, ...]:
    """Default attributes, then ``extra`` (refused names raise ValueError), then the
    environment's (refused names are skipped with a warning). Duplicates are dropped."""
    if isinstance(extra, (str, bytes)):
        raise ValueError(
            f"span_attribute_allowlist must be an iterable of attribute names, not a string: {extra!r}"
        )
    try:
        extra = tuple(extra)
    except TypeError:
        raise ValueError(f"span_attribute_allowlist must be an iterable of attribute names, got {extra!r}") from None
    names = list(A.DEFAULT_METRIC_SPAN_ATTRIBUTES)
    for name in extra:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"span_attribute_allowlist must hold non-empty strings, got {name!r}")
        reason = refused_reason(name)
        if reason is not None:
            raise ValueError(f"span_attribute_allowlist: {name!r} is refused: {reason}")
        if name not in names and name != A.SPAN_NAME:
            names.append(name)
    for name in from_env:
        reason = refused_reason(name)
        if reason is not None:
            warn_once(_logger, f"metric-attr:{name}", "otel_carbon: OTEL_CARBON_METRIC_SPAN_ATTRIBUTES: %r ignored: %s", name, reason)
        elif name not in names and name != A.SPAN_NAME:
            names.append(name)
    return tuple(names)
