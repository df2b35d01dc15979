"""Per-span metrics: sums per attribute set, kept here and published at collection time.

* ``carbon.span.energy`` (J), ``carbon.span.emissions`` (g) and ``carbon.span.count``
  (``{span}``): asynchronous counters over one table, keyed by low-cardinality attributes
  only (span name, ``carbon.method`` and the allow-list).
* ``carbon.span.overflow`` (``{span}``): spans folded into the overflow set.
* ``carbon.span.energy_distribution`` (histogram, J): opt-in (``histogram=True``,
  ``OTEL_CARBON_METRIC_HISTOGRAM=on``).

**Cost.** An SDK measurement costs 3-13 us on a small VM (``Histogram.record`` ~3 us plus
~0.7 us per attribute in SDK 1.45), a whole span 15-20 us: one per span was most of what the
meter cost. So a span that ends only does plain arithmetic: its key (a tuple of plain
values), one dict lookup and three additions under a lock, ~1 us in all; the SDK reads the
table through the counters' callbacks when it collects. The compiled span path does even
that itself (the recorder hands it the table, :meth:`SpanRecorder.table`): a local root whose
key is in the table is added there in C, with no call to :meth:`SpanRecorder.on_span`, which
only makes new cells. Every addition to a cell is one step (``_speedups.cell_add``), so the
two paths never lose each other's spans. The opt-in histogram still needs one
SDK measurement per span: the span path queues two values and the sampler thread (or the
next collection) records them.

**Cardinality cap.** At most ``cardinality_limit`` attribute sets per instrument, the
overflow set included (the rule of the OpenTelemetry specification's cardinality limit);
a span with a new set beyond that is summed into ``otel.metric.overflow=true`` and counted
in ``carbon.span.overflow``. The table never holds more, whatever an allow-listed attribute
carries (a raw URL, say). Sets are never evicted: a cumulative counter that disappears and
comes back looks like a reset.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from functools import partial
from typing import Any, Deque, Dict, Iterable, List, Mapping, Optional, Tuple

from opentelemetry.metrics import CallbackOptions, Observation

from otel_carbon import attributes as A
from otel_carbon import cpu_clock
from otel_carbon._log import warn_once
from otel_carbon.span_listeners import Table

_logger = logging.getLogger("otel_carbon")

DEFAULT_MAX_QUEUE = 32_768  # histogram values waiting for the sampler thread (opt-in only)
#: histogram buckets (J): a web request is ~1 mJ..1 J, a batch job up to kJ
ENERGY_BUCKETS_J = (
    1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 1e4,
)
#: the histogram drain lets the application threads have the GIL after this many values
DRAIN_CHUNK = 256
_yield_gil = partial(time.sleep, 0)

_URL_ATTRIBUTES = frozenset(
    {"url.full", "url.path", "url.query", "url.fragment", "http.url", "http.target", "http.client_ip"}
)
_EMPTY: Mapping[str, Any] = {}
_OVERFLOW_ATTRIBUTES = {A.METRIC_OVERFLOW: True}

# A cell of the table: [energy_j, emissions_g, spans, attributes]
_ENERGY, _EMISSIONS, _COUNT, _ATTRS = range(4)


def _py_cell_add(cell: List[Any], energy_j: float, emissions_g: float) -> None:
    """cell_add without the extension (only Python adds to cells then; under the lock)."""
    cell[_ENERGY] += energy_j
    cell[_EMISSIONS] += emissions_g
    cell[_COUNT] += 1


#: adds one span to a cell at once (the compiled span path adds to the same cells)
_cell_add = getattr(cpu_clock.speedups, "cell_add", None) or _py_cell_add


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


def _key_function(n: int, names: Tuple[str, ...]) -> Any:
    """``key(name, method, get) -> (name, method, get(names[0]), ..., get(names[n-1]))``
    with the names as constants: twice as fast as ``map(get, names)`` into a tuple (the key
    is most of what a span costs the meter). The names are bound as globals of the lambda,
    never pasted into its source."""
    source = "lambda name, method, get: (name, method, " + "".join(f"get(_k{i}), " for i in range(n)) + ")"
    return eval(source, {f"_k{i}": name for i, name in enumerate(names)})  # noqa: S307 - fixed template


class SpanRecorder:
    """The listener a :class:`~otel_carbon.processor.CarbonSpanProcessor` calls at span end,
    the table of sums it keeps, and the instruments that publish it."""

    def __init__(
        self,
        meter: Any,
        allowlist: Tuple[str, ...],
        max_queue: int,
        local_roots_only: bool = True,
        cardinality_limit: int = 2000,
        histogram: bool = False,
    ) -> None:
        self.allowlist = allowlist
        #: record only local root spans (no parent, or a remote one): one per request, and
        #: sums never count a child's energy twice (a parent's figures include it)
        self.local_roots_only = local_roots_only
        # http.method (old conventions) is read too, and reported as http.request.method
        # when the span has no http.request.method.
        self._fallback = A.HTTP_REQUEST_METHOD in allowlist and A.HTTP_METHOD_OLD not in allowlist
        self._lookup = allowlist + ((A.HTTP_METHOD_OLD,) if self._fallback else ())
        self._method_index = allowlist.index(A.HTTP_REQUEST_METHOD) if self._fallback else -1
        self._key = _key_function(len(self._lookup), self._lookup)
        self._lock = threading.Lock()
        self._cells: Dict[Tuple[Any, ...], List[Any]] = {}
        self._max_sets = max(cardinality_limit - 1, 0)  # the overflow set counts toward the limit
        self._overflow: List[Any] = [0.0, 0.0, 0, _OVERFLOW_ATTRIBUTES]
        self.overflowed = 0
        self.dropped = 0
        self._max_items = 2 * max_queue
        self._queue: Optional[Deque[Any]] = deque() if histogram else None
        self._drain_lock = threading.Lock()
        self._histogram = None
        if histogram:
            self._histogram = meter.create_histogram(
                A.SPAN_ENERGY_DISTRIBUTION,
                unit=A.UNIT_J,
                description="Energy of each recorded span (carbon.energy.total), for percentiles",
                explicit_bucket_boundaries_advisory=list(ENERGY_BUCKETS_J),
            )
        for name, unit, index, description in (
            (A.SPAN_ENERGY, A.UNIT_J, _ENERGY, "Energy attributed to the work inside the recorded spans (carbon.energy.total)"),
            (A.SPAN_EMISSIONS, A.UNIT_G, _EMISSIONS, "CO2e caused by the energy of the recorded spans (carbon.emissions)"),
            (A.SPAN_COUNT, A.UNIT_SPANS, _COUNT, "Spans summed into carbon.span.energy and carbon.span.emissions"),
        ):
            meter.create_observable_counter(name, [self._callback(index)], unit=unit, description=description)
        meter.create_observable_counter(
            A.SPAN_OVERFLOW, [self._overflow_callback], unit=A.UNIT_SPANS,
            description="Spans summed into the overflow attribute set (otel.metric.overflow=true) of the "
            "per-span metrics: their own set was beyond the cardinality limit",
        )

    # -- span path (the thread that ends the span) ------------------------------------------

    def on_span(self, span: Any, figures: Dict[str, Any]) -> None:
        """A span's figures. With :attr:`local_roots_only`, local roots only: the processor
        filters them (the listener is added with ``local_roots_only``; see ``attach``)."""
        energy_j = figures.get(A.ENERGY_TOTAL)
        if energy_j is None:  # no figures (carbon.method=unavailable)
            return
        try:
            get = span._attributes._dict.get  # an SDK span: its attribute dict, read-only
        except AttributeError:
            get = _attribute_dict(span).get
        key = self._key(span.name, figures.get(A.METHOD), get)
        emissions_g = figures.get(A.EMISSIONS, 0.0)
        with self._lock:
            cell = self._cells.get(key)
            if cell is None:
                cell = self._new_cell(key)
            _cell_add(cell, energy_j, emissions_g)
        queue = self._queue
        if queue is not None:
            if len(queue) >= self._max_items:
                self._full()
            else:
                queue.extend((cell[3], energy_j))  # atomic under the GIL: pairs never interleave

    def table(self) -> Optional[Table]:
        """The table for the compiled span path to add local roots to (see the module
        docstring), or None where every span must come through :meth:`on_span`: with the
        histogram (each span queues a value), when every span is recorded, or when an
        allow-listed name is one of our own ``carbon.*`` attributes (the compiled path reads
        the span's attributes before it adds ours)."""
        if self._queue is not None or not self.local_roots_only or any(n.startswith("carbon.") for n in self._lookup):
            return None
        return Table(self._cells, self._lookup)

    def _new_cell(self, key: Tuple[Any, ...]) -> List[Any]:
        """A new set's cell, or the overflow cell beyond the limit (called under the lock)."""
        if len(self._cells) >= self._max_sets:
            self.overflowed += 1
            if self.overflowed == 1:
                warn_once(
                    _logger,
                    "metrics-cardinality",
                    "otel_carbon: the per-span metrics reached their cardinality limit (%d attribute sets with "
                    "the overflow set; cardinality_limit, OTEL_CARBON_METRIC_CARDINALITY_LIMIT); spans with a new "
                    "set are summed into otel.metric.overflow=true (an allow-listed attribute with unbounded values?)",
                    self._max_sets + 1,
                )
            return self._overflow
        cell = [0.0, 0.0, 0, self._attributes(key)]
        self._cells[key] = cell
        return cell

    def _attributes(self, key: Tuple[Any, ...]) -> Dict[str, Any]:
        name, method, *values = key
        attrs: Dict[str, Any] = {A.SPAN_NAME: name}
        for attr, value in zip(self.allowlist, values):
            if value is not None:
                attrs[attr] = value
        if self._fallback and values[self._method_index] is None and values[-1] is not None:
            attrs[A.HTTP_REQUEST_METHOD] = values[-1]
        if method is not None:
            attrs[A.METHOD] = method
        return attrs

    def _full(self) -> None:
        self.dropped += 1
        warn_once(
            _logger,
            "metrics-queue-full",
            "otel_carbon: span energy histogram queue full (%d spans); spans are left out of the "
            "histogram (not out of the counters or traces) until the next drain",
            self._max_items // 2,
        )

    # -- what the table holds ---------------------------------------------------------------

    @property
    def recorded(self) -> int:
        """Spans summed so far (the overflow set's included)."""
        with self._lock:
            return sum(c[2] for c in self._cells.values()) + self._overflow[2]

    @property
    def attribute_sets(self) -> int:
        """Attribute sets in the table (the overflow set's included once it has a span)."""
        return len(self._cells) + (1 if self._overflow[2] else 0)

    @property
    def queued(self) -> int:
        """Histogram values waiting for the next drain."""
        return len(self._queue) // 2 if self._queue is not None else 0

    def _rows(self) -> List[List[Any]]:
        with self._lock:
            rows = [list(c) for c in self._cells.values()]
            if self._overflow[2]:
                rows.append(list(self._overflow))
        return rows

    def _callback(self, index: int) -> Any:
        def callback(options: CallbackOptions) -> Iterable[Observation]:
            try:
                return [Observation(row[index], row[3]) for row in self._rows()]
            except Exception as exc:  # noqa: BLE001 - never raise into the SDK's collection
                warn_once(_logger, f"metrics-span-callback:{index}", "otel_carbon: span metric callback failed: %r", exc)
                return []

        return callback

    def _overflow_callback(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.overflowed)]

    def reinit_after_fork(self) -> None:
        """In a forked child: fresh locks (the parent may have held one at fork time). The
        sums carry on from the parent's, as the SDK's own instruments' storage does."""
        self._lock = threading.Lock()
        self._drain_lock = threading.Lock()

    # -- histogram drain (sampler thread, or the collecting thread) -------------------------

    def drain(self) -> int:
        """Record the queued histogram values into the SDK histogram; returns how many."""
        queue = self._queue
        if not queue or self._histogram is None:
            return 0
        with self._drain_lock:  # a collection waits for a drain in progress on another thread
            pop = queue.popleft
            record = self._histogram.record
            n = 0
            while True:
                try:
                    attrs = pop()
                except IndexError:
                    break
                record(pop(), attrs)
                n += 1
                if not n % DRAIN_CHUNK:
                    _yield_gil()
            return n


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
