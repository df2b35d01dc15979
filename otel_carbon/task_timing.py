"""The hooks that feed each asyncio task's :class:`~otel_carbon.cpu_clock.TaskMeter`: the
default loop's ``asyncio.Handle._run``, and a task factory for loops that do not use
``asyncio.Handle`` (uvloop). See :mod:`otel_carbon.cpu_clock` for the rules; asyncio itself
is imported by the application, never for these hooks.
"""

from __future__ import annotations

import collections.abc
import sys
import threading
from typing import TYPE_CHECKING, Any, Optional

from otel_carbon import cpu_clock
from otel_carbon._on_import import when_imported
from otel_carbon.cpu_clock import _METER, _begin, _finish, swap_owner

if TYPE_CHECKING:
    import asyncio


# -- default loop: asyncio.Handle._run ---------------------------------------------------

_original_handle_run: Any = None
_install_lock = threading.Lock()


def _timed_handle_run(self: "asyncio.Handle") -> None:
    ctx = self._context  # type: ignore[attr-defined]
    previous = swap_owner(ctx)
    _begin(ctx, ctx.get(_METER))
    try:
        _original_handle_run(self)
    finally:
        _finish(ctx, ctx.get(_METER))
        swap_owner(previous)


def install() -> None:
    """Install the Handle hook once per process (idempotent): now if ``asyncio.events`` is
    imported, else right after it is (:mod:`otel_carbon._on_import`), before any loop can run."""
    global _install_requested
    with _install_lock:
        if _install_requested:
            return
        _install_requested = True
    when_imported("asyncio.events", _hook_handle)


_install_requested = False


def _hook_handle(events: Any) -> None:
    global _original_handle_run
    with _install_lock:
        if _original_handle_run is None:
            _original_handle_run = events.Handle._run
            events.Handle._run = _timed_handle_run


# -- other loops (uvloop): a task factory that times coroutine steps ---------------------


class _TimedCoroutine(collections.abc.Coroutine):  # type: ignore[type-arg]
    """Wraps a task's coroutine; each ``send``/``throw`` is one timed step of that task."""

    __slots__ = ("_coro",)

    def __init__(self, coro: Any) -> None:
        self._coro = coro

    def send(self, value: Any) -> Any:
        previous = swap_owner(self)
        _begin(self, _METER.get())
        try:
            return self._coro.send(value)
        finally:
            _finish(self, _METER.get())
            swap_owner(previous)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        previous = swap_owner(self)
        _begin(self, _METER.get())
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        finally:
            _finish(self, _METER.get())
            swap_owner(previous)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        return self.send(None)

    def __getattr__(self, name: str) -> Any:  # cr_frame, cr_code, __name__ ... for debuggers
        return getattr(self._coro, name)

    def __repr__(self) -> str:
        return repr(self._coro)


def _timed_task_factory(loop: "asyncio.AbstractEventLoop", coro: Any, **kwargs: Any) -> "asyncio.Task[Any]":
    import asyncio  # imported: a loop is running

    if asyncio.iscoroutine(coro) and not isinstance(coro, _TimedCoroutine):
        coro = _TimedCoroutine(coro)
    return asyncio.Task(coro, loop=loop, **kwargs)


def ensure_task_timing(loop: "Optional[asyncio.AbstractEventLoop]") -> bool:
    """On a loop the Handle hook does not cover, install the timing task factory if the loop
    has none. Returns whether tasks created from now on will be timed."""
    if loop is None:
        return False
    try:
        factory = loop.get_task_factory()
        if factory is None:
            loop.set_task_factory(_timed_task_factory)  # type: ignore[arg-type]
            return True
        return factory is _timed_task_factory
    except Exception:  # noqa: BLE001 - a foreign loop may not support factories
        return False


def _running_loop() -> "Optional[asyncio.AbstractEventLoop]":
    events = sys.modules.get("asyncio.events")
    return events._get_running_loop() if events is not None else None


#: The event loop running on this thread, or None (none can run before asyncio is imported:
#: a synchronous program never imports it for this). Compiled: the same in C.
running_loop = getattr(cpu_clock.speedups, "running_loop", None) or _running_loop
