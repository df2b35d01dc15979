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
    imported, else right after it is (:class:`_OnAsyncioImport`), before any loop can run."""
    global _original_handle_run
    with _install_lock:
        if _original_handle_run is not None:
            return
        events = sys.modules.get("asyncio.events")
        handle = getattr(events, "Handle", None)
        if handle is not None:
            _original_handle_run = handle._run
            handle._run = _timed_handle_run
        elif not any(isinstance(f, _OnAsyncioImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _OnAsyncioImport())


class _OnAsyncioImport:
    """A meta path finder that finds ``asyncio.events`` through the others, unchanged, and
    calls :func:`install` once it has run; then it leaves ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "asyncio.events":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:  # an old-style loader: no hook, the first loop's span installs it
            return spec

        def exec_then_install(module: Any) -> None:
            exec_module(module)
            install()

        loader.exec_module = exec_then_install
        return spec


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
