"""The compiled span path of a :class:`~otel_carbon.processor.CarbonSpanProcessor`.

Where ``otel_carbon._speedups`` was built (and ``OTEL_CARBON_SPEEDUPS`` is not ``off``), a
drop-in processor whose class keeps the span hooks binds the C ones (:func:`make_hooks`) as
instance attributes (``on_start``, ``_on_ending``, ``on_end``). They do the common case -- a
span on its thread's clock or its asyncio task's meter that ends within the tick it started
in, that handed no work to other threads, with fitting span limits, any layout (components,
GPU share, idle share, embodied carbon: :func:`otel_carbon.attribution.attribute`, mirrored)
-- and call the processor's Python methods for everything else and on any error, so those
stay the reference.

The C side reads no Python attribute per span: the processor pushes the sampler's latest
tick and idle state to it from a tick listener (:func:`weak_tick_listener`, calling the
processor's ``on_tick``), and its layout, listeners and first-resource flag when they
change (its ``_sync_hooks``). A span may so be priced by a tick a few microseconds older
than the ledger's newest; a span that starts in C and ends in Python (or the reverse) shares
the same state tuple.
"""

from __future__ import annotations

import sys
import weakref
from typing import Any, Callable, Optional, Tuple

from otel_carbon import attributes as A
from otel_carbon import cpu_clock
from otel_carbon.cpu_clock import CLOCK_TASK, CLOCK_THREAD
from otel_carbon.task_timing import running_loop

#: the names the compiled hooks use: attribute keys and values, then the fields they read
#: from the SDK span, its attribute mapping and the ledger tick
NAMES = (
    A.CPU_TIME, A.CPU_CLOCK, A.ENERGY_TOTAL, A.EMISSIONS, A.INTENSITY, A.ZONE, A.METHOD,
    CLOCK_THREAD, CLOCK_TASK, A.UNAVAILABLE, "_attributes", "_dict", "price_j_per_cpu_s", "g_per_j",
    "t_ns", "intensity", "g_per_kwh", "zone", "method", "maxlen", "max_value_len", "parent", "is_remote",
    A.ENERGY_GPU, A.ENERGY_IDLE, A.EMBODIED, "gpu_per_span_w", "idle_price_j_per_cpu_s", "wall_s_per_busy_s",
    "start_time", "end_time", "_name", A.RUN_SCOPE,
)  # fmt: skip

#: the span hooks a processor may hold as instance attributes
HOOKS = ("on_start", "_on_ending", "on_end")


def plain_hooks(cls: type, base: type) -> bool:
    """Whether ``cls`` keeps ``base``'s span hooks (a subclass that overrides one keeps Python)."""
    return all(getattr(cls, name, None) is getattr(base, name, None) for name in HOOKS)


def in_place(processor_cls: type) -> Tuple[type, ...]:
    """The types whose span hooks a pool runs in place (see :mod:`otel_carbon.offload`)."""
    speedups = cpu_clock.speedups
    return (processor_cls,) if speedups is None else (processor_cls, speedups.Hooks)


def make_hooks(
    compiled: Any,
    open_spans: dict,
    boxes: dict,
    on_start: Callable[..., None],
    on_ending: Callable[[Any], None],
    drop_oldest: Callable[[], None],
    notify: Callable[[Any, Any], None],
    max_open: int,
) -> Any:
    """The compiled hooks over a processor's open spans and hand-off boxes; ``on_start`` and
    ``on_ending`` are the Python hooks they fall back to."""
    # a C size; a bigger cap is no cap either way
    return compiled.Hooks(open_spans, boxes, running_loop, on_start, on_ending, drop_oldest, notify, NAMES, min(max_open, sys.maxsize))


def weak_tick_listener(processor: Any, sampler: Any) -> Callable[[Optional[Any]], None]:
    """A tick listener that pushes each tick to ``processor`` without keeping it alive (and
    removes itself from ``sampler`` after)."""
    ref = weakref.ref(processor)

    def on_tick(tick: Optional[Any]) -> None:
        alive = ref()
        if alive is not None:
            alive.on_tick(tick)
        else:
            sampler.remove_tick_listener(on_tick)

    return on_tick
