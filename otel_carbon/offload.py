"""Work handed to other threads is charged to the span that handed it off.

**The rule.** Work handed off at one of the seams below is charged to the span current in
the context it was handed off from, at that moment (the span OpenTelemetry would make the
parent of a span started inside the work). When that span was dropped by the sampler (a
``NonRecordingSpan`` under a recording parent: the child of a request recorded only for
the metrics), the work goes to the innermost recording span above it (:func:`dropped_under`). The work is timed on the thread that runs it:
its thread CPU clock over the work, plus whatever spans inside the work handed off in turn.
That CPU time is added to the span's ``carbon.cpu.time`` when the work finishes (and shown
as ``carbon.cpu.offloaded``), and so to its energy. Spans opened inside the work get their
own figures as usual; the span that handed it off includes them ("a parent includes its
children", across threads), and so do its ancestors on its own thread or task.

**Work that outlives its span** (fire-and-forget) is not charged to the ended span: its CPU
time goes to no span (the ledger's "unattributed" share) and is counted in
:func:`late_work` (how many pieces of work, and their CPU seconds), which the meter
publishes as ``carbon.offload.late`` (s).

**Seams** (all installed once per process by :func:`install`, for pools made before or
after it):

* ``concurrent.futures.ThreadPoolExecutor.submit`` (``map`` calls it; so do
  ``asyncio.to_thread``, ``loop.run_in_executor`` and asgiref's ``sync_to_async``), and
  asgiref's ``CurrentThreadExecutor.submit`` (thread-sensitive ``sync_to_async`` under an
  outer ``async_to_sync``, e.g. an async Django view behind sync middleware);
* ``anyio.to_thread.run_sync`` (Starlette/FastAPI ``def`` endpoints, ``run_in_threadpool``),
  patched when ``anyio.to_thread`` is imported (now or later);
* ``multiprocessing.pool.ThreadPool`` (``multiprocessing.dummy.Pool``): ``apply``, ``map``,
  ``starmap``, ``imap`` and their ``_async`` forms, patched when ``multiprocessing.pool`` is
  imported (now or later);
* ``threading.Thread.start`` inside a span: the thread's ``run`` is timed. Threads of the
  pools above, of asyncio, AnyIO, multiprocessing, OpenTelemetry and this package are
  machinery, not work, and are never charged.

**Cost.** With no span open, a hand-off costs one context lookup. Nothing here raises into
the application: a failure leaves the work unwrapped (and unmeasured) and logs once.

**Span processors run on a pool.** ``ConcurrentMultiSpanProcessor`` hands each processor's
hooks to its thread pool and waits for them. Our own hooks are run in place instead, on the
thread that started or ended the span, where its CPU clock is: a few microseconds the
caller waited for anyway, and the right CPU time.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import logging
import os
import threading
import weakref
from typing import Any, Callable, Optional, Tuple

from opentelemetry import trace

from otel_carbon import cpu_clock
from otel_carbon._log import warn_once
from otel_carbon._on_import import when_imported

_logger = logging.getLogger("otel_carbon")


class Box:
    """CPU ns of work handed off by one open span; closed when the span ends.

    ``clock_id``: the CPU clock id of the thread whose clock times the span (None for a span
    timed per asyncio task). Work handed to that very thread (asgiref's thread-sensitive
    executor can be it) is already on the span's clock and is not added twice.
    ``owner``: what the tracker keeps for that span while it is open (the box is that
    span's, not an earlier span's that had the same key)."""

    __slots__ = ("ns", "open", "clock_id", "owner")

    def __init__(self, clock_id: Optional[int] = None, owner: Any = None) -> None:
        self.ns = 0
        self.open = True
        self.clock_id = clock_id
        self.owner = owner


_lock = threading.Lock()
_late = [0, 0]  # pieces of work that finished after their span ended, and their CPU ns


def charge(box: Box, ns: int) -> None:
    """Add ``ns`` of handed-off work to ``box``, or to the late work if its span ended."""
    with _lock:
        if box.open:
            box.ns += ns
        else:
            _late[0] += 1
            _late[1] += ns


def close(box: Box) -> int:
    """The span of ``box`` ends: the CPU ns charged to it; later work is late work."""
    with _lock:
        box.open = False
        return box.ns


def late_work() -> Tuple[int, float]:
    """(pieces of work, CPU seconds) handed off by spans that ended before the work did."""
    with _lock:
        return _late[0], _late[1] / 1e9


#: what keeps boxes: (open spans, weak reference to an object with ``box_for(span) ->
#: Optional[Box]``), span processors; while every collection of open spans is empty, no
#: hand-off can belong to a span
_tracked: Tuple[Tuple[Any, "weakref.ref[Any]"], ...] = ()
_opens: Tuple[Any, ...] = ()
#: objects whose bound methods a pool runs in place (our span hooks)
_in_place: Tuple[type, ...] = ()
_get_current_span = trace.get_current_span


def track(tracker: Any, opened: Any, in_place: Tuple[type, ...] = ()) -> None:
    """Ask ``tracker.box_for(span)`` for the box of each hand-off while ``opened`` (its
    open spans) is not empty; run bound methods of ``in_place`` types in place when a
    thread pool is given them."""
    global _in_place, _opens, _tracked
    _tracked = (*((o, r) for o, r in _tracked if r() is not None), (opened, weakref.ref(tracker)))
    _opens = tuple(o for o, _ in _tracked)
    _in_place = tuple({*_in_place, *in_place})
    install()


def untrack(tracker: Any) -> None:
    """Stop asking ``tracker`` (shut down)."""
    global _opens, _tracked
    _tracked = tuple((o, r) for o, r in _tracked if r() is not None and r() is not tracker)
    _opens = tuple(o for o, _ in _tracked)


#: the recording span under which a span was last dropped in this thread's or task's context
#: (see :func:`dropped_under`), weakly
_dropped_under: "contextvars.ContextVar[Optional[weakref.ref[Any]]]" = contextvars.ContextVar(
    "otel_carbon_dropped_under", default=None
)


def dropped_under(parent: Any) -> None:
    """A span started here under the recording span ``parent`` was dropped by the sampler (a
    ``NonRecordingSpan``, e.g. the child of a request recorded only for the metrics: see
    :mod:`otel_carbon.record_unsampled`). Work handed off inside it, or inside spans dropped
    under it, is charged to ``parent``, the innermost span that records: what it would have
    included had the child been sampled."""
    _dropped_under.set(weakref.ref(parent))


def _recording_above(span: Any) -> Any:
    """The recording span ``span`` was dropped under in this context, if still open and of
    the same trace (the context variable outlives the span it was set for)."""
    ref = _dropped_under.get()
    parent = ref() if ref is not None else None
    if parent is None or not parent.is_recording():
        return None
    if parent.get_span_context().trace_id != span.get_span_context().trace_id:
        return None
    return parent


def current_box() -> Optional[Box]:
    """The box of the span current here, when a tracker follows that span (or, for a
    dropped span, the recording span it was dropped under)."""
    if not any(_opens):
        return None
    span = _get_current_span()
    if not span.is_recording():
        span = _recording_above(span)
        if span is None:
            return None
    for opened, ref in _tracked:
        if opened:
            tracker = ref()
            box = tracker.box_for(span) if tracker is not None else None
            if box is not None:
                return box
    return None


def timed(box: Box, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, timed on the thread that runs it and charged to ``box``."""

    def run(*args: Any, **kwargs: Any) -> Any:
        tls = cpu_clock._tls
        try:
            if box.clock_id is not None and box.clock_id == cpu_clock.thread_clock_id():
                start_ns = None  # the span's own thread: its clock counts this work already
            else:
                start_ns = cpu_clock.read_cpu_ns(tls) + cpu_clock.offloaded_ns()
        except Exception as exc:  # noqa: BLE001 - never raise into the application
            warn_once(_logger, "offload-charge", "otel_carbon: could not time handed-off work: %r", exc)
            start_ns = None
        if start_ns is None:
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        finally:
            try:
                charge(box, max(cpu_clock.read_cpu_ns(tls) + cpu_clock.offloaded_ns() - start_ns, 0))
            except Exception as exc:  # noqa: BLE001
                warn_once(_logger, "offload-charge", "otel_carbon: could not time handed-off work: %r", exc)

    return run


def _followed(fn: Any) -> Any:
    """``fn``, timed for the span current here if a tracker follows it; else ``fn`` itself
    (with no span open anywhere, after one check)."""
    if not any(_opens):
        return fn
    try:
        box = current_box()
    except Exception as exc:  # noqa: BLE001
        warn_once(_logger, "offload-box", "otel_carbon: could not follow handed-off work: %r", exc)
        return fn
    return fn if box is None else timed(box, fn)


# -- seams ----------------------------------------------------------------------------------

_originals: dict = {}


def _patch_submit(cls: type) -> None:
    """Time what is submitted to executors of ``cls`` (and its subclasses)."""
    original = cls.submit  # type: ignore[attr-defined]
    if getattr(original, "_otel_carbon", False):
        return

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        try:
            in_place = bool(_in_place) and isinstance(getattr(fn, "__self__", None), _in_place)
        except Exception:  # noqa: BLE001 - an odd callable: not ours
            in_place = False
        if in_place:
            return _run_in_place(fn, args, kwargs)
        return original(self, _followed(fn), *args, **kwargs)

    submit._otel_carbon = True  # type: ignore[attr-defined]
    submit.__doc__ = original.__doc__
    _originals[cls] = original
    cls.submit = submit  # type: ignore[attr-defined]


def _run_in_place(fn: Any, args: Any, kwargs: Any) -> "concurrent.futures.Future[Any]":
    future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - the pool would have kept it in the future too
        future.set_exception(exc)
    return future


#: modules whose threads are machinery (pool workers, exporters, samplers), never charged
_MACHINERY = ("concurrent.", "asyncio", "anyio", "opentelemetry", "otel_carbon", "asgiref", "threading", "multiprocessing")


def _start(self: threading.Thread) -> None:
    if any(_opens):
        try:
            target = getattr(self, "_target", None)
            if target is None:
                module = type(self).__module__ or ""
            else:  # a function, a bound method, or a functools.partial of one
                module = getattr(target, "__module__", None) or getattr(getattr(target, "func", None), "__module__", "")
            if not module.startswith(_MACHINERY):
                box = current_box()
                if box is not None:
                    self.run = timed(box, self.run)  # type: ignore[method-assign]
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "offload-thread", "otel_carbon: could not follow a thread's work: %r", exc)
    _originals["start"](self)


def _patch_asgiref(module: Any) -> None:
    """asgiref runs thread-sensitive ``sync_to_async`` work on the thread of an outer
    ``async_to_sync`` (Django's sync middleware around an async view) through this
    executor; otherwise through a ``ThreadPoolExecutor``, patched already."""
    _patch_submit(module.CurrentThreadExecutor)


def _patch_anyio(module: Any) -> None:
    original = getattr(module, "run_sync", None)
    if original is None or getattr(original, "_otel_carbon", False):
        return

    async def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await original(_followed(func), *args, **kwargs)

    run_sync._otel_carbon = True  # type: ignore[attr-defined]
    run_sync.__doc__ = original.__doc__
    module.run_sync = run_sync


def _patch_thread_pool(module: Any) -> None:
    """``multiprocessing.pool.ThreadPool`` (and ``multiprocessing.dummy.Pool``): ``apply``,
    ``map``, ``starmap``, their ``_async`` forms and ``imap`` go through these methods.
    Only the thread pool: a process pool's callables must stay picklable."""
    cls = module.ThreadPool
    for name in ("apply_async", "_map_async", "imap", "imap_unordered"):
        original = getattr(cls, name, None)
        if original is not None and not getattr(original, "_otel_carbon", False):
            setattr(cls, name, _timing_callable(original))


def _timing_callable(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original(self, func, ...)`` with ``func`` timed for the span current here."""

    def method(self: Any, func: Any, *args: Any, **kwargs: Any) -> Any:
        return original(self, _followed(func), *args, **kwargs)

    method._otel_carbon = True  # type: ignore[attr-defined]
    method.__name__, method.__doc__ = original.__name__, original.__doc__
    return method


#: modules with a hand-off seam, patched when imported (now or later)
_LATER = {
    "anyio.to_thread": _patch_anyio,
    "asgiref.current_thread_executor": _patch_asgiref,
    "multiprocessing.pool": _patch_thread_pool,
}


def _after_fork_in_child() -> None:
    """A fork can happen while another thread holds the lock: the child gets a fresh one.
    The parent's late work is the parent's: the child counts its own from 0."""
    global _lock
    _lock = threading.Lock()
    _late[:] = [0, 0]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def install() -> None:
    """Install the seams once per process (idempotent)."""
    with _lock:
        if _originals:
            return
        _originals["start"] = threading.Thread.start
        _patch_submit(concurrent.futures.ThreadPoolExecutor)
        threading.Thread.start = _start  # type: ignore[method-assign]
    for name, patch in _LATER.items():
        when_imported(name, patch)
