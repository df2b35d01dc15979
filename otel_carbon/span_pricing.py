"""SpanPricer: what a span costs, from its start to its end, on one sampler.

The SDK-free core of :class:`~otel_carbon.processor.CarbonSpanProcessor` (which adds the SDK
hooks that write the figures into spans): the table of open spans and what each needs at
its end, the boxes of work handed to other threads (:mod:`otel_carbon.offload`), the host's
layout, the listeners, the enabled flag and the compiled span path's binding. The tracking
API prices its runs with a pricer of its own (:meth:`SpanPricer.figures_at_end`), so a
tracked call never loads the OpenTelemetry SDK.

Pricing is :func:`otel_carbon.attribution.attribute` (docs/attribution.md): a span pays
``carbon.cpu.time x price`` per component; its CPU time includes the work it handed to other
threads. Nothing here reads a sensor or a file, except a span ending on a stale ledger,
which takes the reading the sampler thread missed
(:meth:`~otel_carbon.sampler.Sampler.catch_up`).

**Compiled hooks.** Where ``otel_carbon._speedups`` was built, a pricer (or a drop-in
processor) binds the compiled span path, which does the common case and calls the methods
below for the rest (they stay the reference): see :mod:`otel_carbon.compiled_path`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any, Dict, Optional, Tuple

from opentelemetry.context import Context

from otel_carbon import attributes as A
from otel_carbon import compiled_path, config, cpu_clock, offload
from otel_carbon._log import warn_once
from otel_carbon.attribution import Layout, attribute, gpu_share_j, layout_for, span_attributes
from otel_carbon.cpu_clock import (
    _tls,
    current_owner,
    meter_for_span,
    offloaded_ns,
    span_cpu_ns,
    span_start_cpu_ns,
    thread_clock_id,
)
from otel_carbon.ledger import Tick
from otel_carbon.process_sampler import get_sampler
from otel_carbon.sampler import Sampler
from otel_carbon.span_listeners import Listener, SpanListeners, Table
from otel_carbon.task_timing import ensure_task_timing, install, running_loop

_logger = logging.getLogger("otel_carbon")
_monotonic_ns = time.monotonic_ns

#: What a span needs at its end: its CPU clock at start (ns), the task meter (asyncio) or
#: None, the starting thread's CPU clock id (threads), the ledger tick current at start, and
#: the CPU ns its thread's (or task's) spans had handed to other threads by then.
#: A plain tuple: the cheapest object to make on the span path.
_Open = Tuple[int, Any, Optional[int], Optional[Tick], int]


class SpanPricer:
    """The figures of spans (or any objects timed like spans) from their start to their end;
    see the module docstring.

    Args:
        sampler: the process-wide sampler by default (shared by every processor).
        idle_policy: ``"none"`` or ``"cpu"``; default ``OTEL_CARBON_IDLE_POLICY``.
        max_open_spans: most spans tracked while open; the oldest are dropped beyond it
            (counted in :attr:`dropped_open_spans`). Default ``OTEL_CARBON_MAX_OPEN_SPANS``.
        embodied_g_per_hour: the host's embodied carbon rate; each span then carries its
            share as ``carbon.embodied`` (g): the rate times the host time its CPU-seconds
            stand for (its share of the host's busy CPU time), the rule that prices energy.
            Default ``OTEL_CARBON_EMBODIED_G_PER_HOUR`` (off).
    """

    #: processors this one hands spans to (the wrapping route: CarbonSpanProcessor only)
    _wrapped: Tuple[Any, ...] = ()
    #: the class whose span hooks a subclass must keep to get the compiled span path
    _HOOKS_OF: type

    def __init__(
        self,
        sampler: Optional[Sampler] = None,
        idle_policy: Optional[str] = None,
        max_open_spans: Optional[int] = None,
        embodied_g_per_hour: Optional[float] = None,
    ) -> None:
        self._idle, self._max_open, self._embodied_g_per_s = config.span_options(idle_policy, max_open_spans, embodied_g_per_hour)
        if sampler is not None and not (
            hasattr(sampler, "ledger") and callable(getattr(sampler, "register_span_counter", None))
        ):
            raise ValueError(f"sampler must be an otel_carbon Sampler, got {type(sampler).__name__}")
        self._open: Dict[int, _Open] = {}
        #: spans (same keys) that handed work to other threads: what it used so far
        self._boxes: Dict[int, offload.Box] = {}
        # The SDK span object itself in drop-in mode; the ReadableSpan copy that on_end gets
        # in wrapping mode is another object, so there the key is the span id.
        self._key = _span_id if self._wrapped else id
        self.dropped_open_spans = 0
        self._sampler = sampler if sampler is not None else get_sampler()
        self._layout_for: Any = None
        self._layout = Layout(())
        self._resource_seen = False
        self._shutdown = False
        self._listeners = SpanListeners()
        self._counter = self._open.__len__
        self._hooks: Any = None
        self._enabled = False
        _instances.add(self)
        install()
        self.enable()

    # -- on and off ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        """Whether this processor puts figures on spans. A provider cannot drop a processor:
        ``enabled = False`` is how to stop the work (the hooks do nothing, or only forward
        to the wrapped processors; open spans are forgotten); ``True`` starts again."""
        return self._enabled

    @enabled.setter
    def enabled(self, on: bool) -> None:
        if on:
            self.enable()
        else:
            self.disable()

    def enable(self, sampler: Optional[Sampler] = None) -> None:
        """Start (again) putting figures on spans, on ``sampler`` if given."""
        if self._shutdown:
            raise ValueError("enable: this processor was shut down; make a new one")
        if sampler is not None and sampler is not self._sampler:
            self.disable()
            self._sampler, self._layout_for, self._resource_seen = sampler, None, False
        if self._enabled:
            return
        self._enabled = True
        self._open.clear()
        self._boxes.clear()
        for name in compiled_path.HOOKS:  # the class's hooks show through again
            self.__dict__.pop(name, None)
        self._sampler.register_span_counter(self._counter)
        if not self._wrapped and cpu_clock.speedups is not None and compiled_path.plain_hooks(type(self), self._HOOKS_OF):
            self._use_compiled_hooks(cpu_clock.speedups)
        offload.track(self, self._open, in_place=_IN_PLACE)

    def disable(self) -> None:
        """Stop putting figures on spans; spans pass through untouched."""
        if not self._enabled:
            return
        self._enabled = False
        for name in compiled_path.HOOKS:  # what this class passes on while off (if anything)
            passing = getattr(self, "_pass_" + name.lstrip("_"), None)
            if passing is not None:
                setattr(self, name, passing)
        offload.untrack(self)
        self._sampler.unregister_span_counter(self._counter)
        if self._hooks is not None:
            self._sampler.remove_tick_listener(self._tick_listener)
            self._hooks = None
        self._open.clear()
        self._boxes.clear()

    # The wrapped processors are the exporting route: sampled spans only (module docstring).
    def _pass_on_start(self, span: Any, parent_context: Optional[Context] = None) -> None:
        if self._wrapped and span.context.trace_flags.sampled:
            for p in self._wrapped:
                p.on_start(span, parent_context=parent_context)

    def _use_compiled_hooks(self, compiled: Any) -> None:
        """Bind the compiled span path (:mod:`otel_carbon.compiled_path`): its hooks become
        this instance's; they hand everything they do not do to the class's methods."""
        cls = type(self)
        self._hooks = compiled_path.make_hooks(
            compiled, self._open, self._boxes, cls.on_start.__get__(self, cls),
            cls._on_ending.__get__(self, cls) if hasattr(cls, "_on_ending") else _no_ending,
            self._drop_oldest, self._listeners.notify, self._max_open,
        )  # fmt: skip
        self._tick_listener = compiled_path.weak_tick_listener(self, self._sampler)
        self._sampler.add_tick_listener(self._tick_listener)
        self.on_tick(self._sampler.ledger.latest)
        for name in compiled_path.HOOKS:  # the hooks this class has become the compiled ones
            if hasattr(cls, name):
                setattr(self, name, getattr(self._hooks, name.lstrip("_")))

    def on_tick(self, tick: Optional[Tick]) -> None:
        """Tell the compiled hooks the sampler's latest tick and state: from the sampler
        thread after each tick, and from a span start that found the sampler idle."""
        sampler = self._sampler
        if tick is not None and self._layout_for is not sampler.ledger:
            self._refresh_layout()
        self._hooks.set_tick(tick, sampler.quiet, sampler.stale_after_ns)

    def _sync_hooks(self) -> None:
        """Tell the compiled hooks what they mirror (after any of it changes)."""
        if self._hooks is not None:
            layout = self._layout
            self._hooks.sync(
                self._resource_seen, layout.components if layout.compiled else None, self._listeners.mode,
                layout.gpu, layout.idle, layout.embodied_g_per_s, self._listeners.table,
            )  # fmt: skip

    # -- span start -------------------------------------------------------------------

    def on_start(self, span: Any, parent_context: Optional[Context] = None) -> None:
        try:
            sampler = self._sampler
            if sampler.quiet:  # one attribute read on the span path
                sampler.wake()
            if self._hooks is not None:
                # The compiled hooks sent this span here (first span, idle back-off, or a
                # running loop): tell them the sampler is awake now, not at its next tick.
                self.on_tick(sampler.ledger.latest)
            if not self._resource_seen:  # once, before the clock is read: not the span's work
                self._first_resource(span)
            tls = _tls
            if current_owner() is None:  # not inside a timed asyncio task step: the thread clock
                clock_id = tls.clock_id
                if clock_id == 0:  # first span on this thread (always, when compiled)
                    clock_id = thread_clock_id()
                loop = running_loop()
                if loop is not None:
                    ensure_task_timing(loop)
                state: _Open = (span_start_cpu_ns(tls), None, clock_id, sampler.ledger.latest, offloaded_ns())
            else:
                meter, now_ns = meter_for_span()
                state = (now_ns, meter, None, sampler.ledger.latest, meter.offloaded_ns)
            opened = self._open
            opened[self._key(span)] = state
            if len(opened) > self._max_open:
                self._drop_oldest()
        except Exception as exc:  # noqa: BLE001 - never raise into the application
            warn_once(_logger, "on_start", "otel_carbon: on_start failed: %r", exc)
        if self._wrapped:
            self._pass_on_start(span, parent_context)

    def box_for(self, span: Any) -> Optional[offload.Box]:
        """Where work that ``span`` hands to another thread is counted (see
        :mod:`otel_carbon.offload`), if this processor follows the span.

        In drop-in mode the key is the span's address: a span that never ended and was freed
        leaves its entry, and a later span can take its address. So an entry answers only
        for a span of this processor's provider, and a box only for the state it was made
        for (one left by the freed span is closed: what it still gets is late work)."""
        key = self._key(span)
        state = self._open.get(key)
        if state is None or not (self._wrapped or self._provides(span)):
            return None
        box = self._boxes.get(key)
        if box is None or box.owner is not state:
            with _box_lock:
                box = self._boxes.get(key)
                if box is None or box.owner is not state:
                    stale, box = box, offload.Box(state[2], state)
                    self._boxes[key] = box
                    if stale is not None:
                        offload.close(stale)
        return box

    def _provides(self, span: Any) -> bool:
        """Whether ``span`` was made by a provider that runs this processor (an SDK span
        knows its provider's processors; anything else, e.g. a tracked run, is taken as
        ours)."""
        members = getattr(getattr(span, "_span_processor", None), "_span_processors", None)
        return members is None or any(p is self for p in members)

    def _drop_oldest(self) -> None:
        try:
            while len(self._open) > self._max_open:
                oldest = next(iter(self._open))
                if self._open.pop(oldest, None) is not None:
                    self.dropped_open_spans += 1
                box = self._boxes.pop(oldest, None)
                if box is not None:
                    offload.close(box)
        except (RuntimeError, StopIteration):  # changed by another thread meanwhile
            pass
        warn_once(
            _logger,
            "max-open-spans",
            "otel_carbon: more than %d spans open at once (leaked spans?); the oldest are no "
            "longer tracked and will be marked carbon.method=unavailable",
            self._max_open,
        )

    def _first_resource(self, span: Any) -> None:
        self._resource_seen = True
        resource = getattr(span, "resource", None)
        if resource is not None:
            self._sampler.use_resource(dict(resource.attributes))
        self._sync_hooks()

    def figures_at_end(self, span: Any) -> Dict[str, Any]:
        """The carbon attributes of ``span``, ending now on this thread, without touching it
        (its state here goes): what the hooks attach, for code that times its own spans (the
        tracking API's runs). ``span`` is what was given to :meth:`on_start`."""
        key = self._key(span)
        state = self._open.pop(key, None)
        box = self._boxes.pop(key, None) if self._boxes else None
        handed_off_ns = offload.close(box) if box is not None else 0
        if state is None:
            return {A.METHOD: A.UNAVAILABLE}
        if box is not None and box.owner is not state:  # a freed span's, at this address
            handed_off_ns = 0
        cpu0_ns, meter, clock_id, start, offloaded0_ns = state
        cpu_ns, clock, handed_off_ns = span_cpu_ns(cpu0_ns, meter, clock_id, offloaded0_ns, handed_off_ns)
        cpu_s = (max(cpu_ns, 0) + handed_off_ns) / 1e9
        sampler = self._sampler
        tick = sampler.ledger.latest
        now_ns = _monotonic_ns()
        if tick is None or now_ns - tick.t_ns > sampler.stale_after_ns:  # a starved sampler thread
            tick = sampler.catch_up() or tick
            now_ns = _monotonic_ns()
            if tick is None:
                return {A.METHOD: A.UNAVAILABLE}
        if self._layout_for is not sampler.ledger:
            self._refresh_layout()
        layout = self._layout
        gpu_j = 0.0
        if layout.gpu:
            start_ns, end_ns = getattr(span, "start_time", None), getattr(span, "end_time", None)
            wall_ns = end_ns - start_ns if start_ns and end_ns else None
            gpu_j = gpu_share_j(start, tick, now_ns - tick.t_ns, wall_ns)
        figures = attribute(cpu_s, start, tick, layout, now_ns - tick.t_ns > sampler.stale_after_ns, gpu_j)
        return span_attributes(figures, layout, tick, clock, handed_off_ns / 1e9)

    def _refresh_layout(self) -> None:
        """Which per-component attributes this host has (see :func:`layout_for`)."""
        sampler = self._sampler
        self._layout = layout_for(sampler.sensors, bool(sampler.gpus), self._idle, self._embodied_g_per_s)
        self._layout_for = sampler.ledger
        self._sync_hooks()

    # -- listeners (metrics) ------------------------------------------------------------

    def add_listener(self, listener: Listener, local_roots_only: bool = False, table: Optional[Table] = None) -> None:
        """Call ``listener(span, figures)`` for every span that gets figures, on the thread
        that ends it. ``figures`` maps the carbon attribute names to their values. It must
        be fast and must not raise (exceptions are caught and logged once).
        ``local_roots_only``: only spans with no parent or a remote one (one per request);
        while every listener says so, a child span costs no listener call at all.
        ``table``: the listener's sums (:class:`~otel_carbon.span_listeners.Table`), which
        the compiled span path adds a span to itself when its key is there."""
        self._listeners.add(listener, local_roots_only, table)
        self._sync_hooks()

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)
        self._sync_hooks()

    @property
    def open_spans(self) -> int:
        return len(self._open)


SpanPricer._HOOKS_OF = SpanPricer

#: replacing a box left at a key by a span that never ended (rare): one thread at a time
_box_lock = threading.Lock()

#: Every pricer (and processor) in this process (weakly), for the fork hook below.
_instances: "weakref.WeakSet[SpanPricer]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """The spans open in the parent at fork are the parent's: the child forgets them (were
    they kept, they would count as open forever, split the child's GPU energy and fill the
    open-span cap). A child that ends its copy of one exports it marked unavailable."""
    for processor in list(_instances):
        processor._open.clear()
        processor._boxes.clear()
        if processor._hooks is not None:  # the parent's ticks are not the child's
            processor.on_tick(None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


#: our span hooks: a pool that is handed them runs them in place (see otel_carbon.offload)
_IN_PLACE = compiled_path.in_place(SpanPricer)


def _span_id(span: Any) -> int:
    return span.context.span_id  # type: ignore[no-any-return]


def _no_ending(span: Any) -> None:
    """A pricer's end of span: nothing to write (its figures are read with figures_at_end)."""
