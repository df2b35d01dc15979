"""CPU time of the work that belongs to a span: per thread, or per asyncio task.

* **Threads.** ``time.thread_time_ns()`` at span start and end (a system call, ~0.5 us).
  Nested spans on one thread: the parent includes its children.
* **asyncio.** Many spans interleave on one thread, so the thread clock over a span's window
  counts other tasks' work too. Instead each task keeps a :class:`TaskMeter` that adds up the
  CPU time of that task's *steps*, timed only while a span is open in the task. Two hooks
  feed it, both in :mod:`otel_carbon.task_timing` and installed by its ``install`` (at once
  where asyncio is imported, else the moment it is: a program that never uses asyncio never
  imports it for us):

  - the default event loop runs every callback through ``asyncio.Handle._run``; a wrapper
    times the step when the handle's context holds a meter *owned by that context*. A child
    task copies its parent's context (and so sees the parent's meter) but has a different
    context object, so its work is never charged to the parent.
  - loops that do not use ``asyncio.Handle`` (uvloop) get, the first time a span starts in
    one, a task factory that wraps each new task's coroutine and times its ``send`` /
    ``throw`` calls the same way. Tasks created before that (including the one that started
    the first span) fall back to the thread clock, and say so (``carbon.cpu.clock=thread``).

* **Coalesced reads.** On this kind of machine the thread clock is a system call that
  costs ~1 us in place (the call, and the caches it leaves cold): two per span were most of
  the span path. A span that starts within :data:`CLOCK_REUSE_NS` (wall) of this thread's
  last real clock read -- the previous span's end, or its parent's start -- takes that
  reading plus the wall time elapsed since (``perf_counter_ns``, no system call) instead
  of a new one (:func:`span_start_cpu_ns`); so does a task step that begins right after
  another one ended. A thread's CPU clock never runs faster than
  the wall clock, so the estimate is never below the true value: the span's (or step's) CPU
  time can only be *under*-counted, by the part of that gap (< 50 us) the thread spent off the
  CPU, and conservation (spans + unattributed = charged) still holds. Span ends always
  read the clock.
* **A span ended on another thread** than it started on is charged the CPU time of the
  thread that started it, read through that thread's CPU clock
  (``pthread_getcpuclockid``); if that thread is gone, ``carbon.cpu.clock=none`` and 0 s.
* **Compiled.** ``otel_carbon._speedups`` (C, built when a compiler is at hand; off with
  ``OTEL_CARBON_SPEEDUPS=off``) replaces :func:`span_start_cpu_ns`, :func:`read_cpu_ns`,
  :func:`thread_clock_id`, :func:`current_owner`, :func:`swap_owner`, :class:`TaskMeter`,
  :func:`meter_for_span`, :func:`offloaded_ns`, :func:`add_offloaded_ns` and the step
  hooks with the same rules, the per-thread state kept
  in C thread-local storage (``_tls`` then keeps its defaults).
  The Python functions are the reference and the fallback.
* **Fork.** In a child the forking thread is a new thread (new clock id, clock near 0): its
  cached clock id and last read are forgotten.
"""

from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from typing import Any, Optional

from otel_carbon import config

thread_time_ns = time.thread_time_ns
perf_counter_ns = time.perf_counter_ns
get_ident = threading.get_ident

#: a span starting this soon (wall ns) after the thread's last clock read reuses it
CLOCK_REUSE_NS = 50_000


class TaskMeter:
    """Cumulative CPU nanoseconds of one task's steps (while spans are open in it)."""

    __slots__ = ("owner", "acc_ns", "step_t0_ns", "in_step", "open_spans", "offloaded_ns")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.acc_ns = 0
        #: CPU ns that spans of this task handed to other threads, added as those spans end
        self.offloaded_ns = 0
        self.step_t0_ns = 0
        self.in_step = False
        self.open_spans = 0

    def now_ns(self) -> int:
        if self.in_step:
            # max: a coalesced step start may be ahead of a real read by < CLOCK_REUSE_NS
            return self.acc_ns + max(read_cpu_ns(_tls) - self.step_t0_ns, 0)
        return self.acc_ns


_METER: "contextvars.ContextVar[Optional[TaskMeter]]" = contextvars.ContextVar("otel_carbon_task_meter", default=None)


class _Local(threading.local):
    owner: Optional[object] = None  # the context / coroutine wrapper whose step runs now
    #: this thread's CPU clock id (negative on Linux; None where the OS has none); 0 until
    #: first asked (0 is CLOCK_REALTIME, never a thread's clock)
    clock_id: Optional[int] = 0
    #: this thread's last real clock read: (thread CPU ns, perf_counter ns taken just before)
    last_read: "tuple[int, int]" = (0, -CLOCK_REUSE_NS)
    #: CPU ns that spans on this thread handed to other threads (see otel_carbon.offload),
    #: added as each such span ends; a span's share is the change over its window
    offloaded_ns: int = 0


_tls = _Local()


def span_start_cpu_ns(tls: "_Local") -> int:
    """This thread's CPU clock for a span starting now (see "Coalesced reads" above)."""
    wall_ns = perf_counter_ns()
    cpu_ns, read_wall_ns = tls.last_read
    if wall_ns - read_wall_ns < CLOCK_REUSE_NS:
        return cpu_ns + wall_ns - read_wall_ns
    cpu_ns = thread_time_ns()
    tls.last_read = (cpu_ns, wall_ns)
    return cpu_ns


def read_cpu_ns(tls: "_Local") -> int:
    """This thread's CPU clock now (a real read, remembered for the next span start)."""
    wall_ns = perf_counter_ns()
    cpu_ns = thread_time_ns()
    tls.last_read = (cpu_ns, wall_ns)
    return cpu_ns


def offloaded_ns() -> int:
    """CPU ns that spans ended on this thread handed to other threads, so far."""
    return _tls.offloaded_ns


def add_offloaded_ns(ns: int) -> None:
    """A span ending on this thread handed ``ns`` CPU ns to other threads: the spans still
    open on this thread (its ancestors) include them."""
    _tls.offloaded_ns += ns


def current_owner() -> Optional[object]:
    """The task step running on this thread (a ``Context`` or a wrapper), else None."""
    return _tls.owner


def swap_owner(owner: Optional[object]) -> Optional[object]:
    """Make ``owner`` the task step running on this thread; returns the previous one."""
    tls = _tls
    previous = tls.owner
    tls.owner = owner
    return previous


def meter_for_span() -> "tuple[TaskMeter, int]":
    """The running task's meter with one more open span (created and bound if needed), and
    its reading now. Only inside a timed task step (:func:`current_owner` set)."""
    owner = current_owner()
    meter = _METER.get()
    if meter is None or meter.owner is not owner:
        meter = TaskMeter(owner)
        _METER.set(meter)
    meter.open_spans += 1
    now_ns = span_start_cpu_ns(_tls)  # a span start: coalesced, like on threads
    if not meter.in_step:  # first open span: start timing the rest of this step
        meter.step_t0_ns = now_ns
        meter.in_step = True
        return meter, meter.acc_ns
    return meter, meter.acc_ns + max(now_ns - meter.step_t0_ns, 0)


def _begin(owner: object, meter: Optional[TaskMeter]) -> None:
    if meter is not None and meter.owner is owner and meter.open_spans > 0:
        # often right after another task's step ended (and read the clock): coalesced
        meter.step_t0_ns = span_start_cpu_ns(_tls)
        meter.in_step = True


def _finish(owner: object, meter: Optional[TaskMeter]) -> None:
    if meter is not None and meter.in_step and meter.owner is owner:
        meter.acc_ns += max(read_cpu_ns(_tls) - meter.step_t0_ns, 0)
        meter.in_step = False


def thread_clock_id() -> Optional[int]:
    """This thread's CPU clock id (cached per thread), or None where the OS has none.

    The id is taken while the thread is alive: reading it later from another thread is safe
    (``clock_gettime`` fails with EINVAL once the thread is gone), whereas calling
    ``pthread_getcpuclockid`` on a dead thread's handle is undefined behaviour.
    """
    tls = _tls
    if tls.clock_id == 0:
        try:
            tls.clock_id = time.pthread_getcpuclockid(threading.get_ident())
        except (AttributeError, OSError):
            tls.clock_id = None
    return tls.clock_id


def other_thread_cpu_ns(clock_id: Optional[int]) -> Optional[int]:
    """CPU time on another thread's clock (see :func:`thread_clock_id`), or None."""
    if clock_id is None:
        return None
    try:
        return time.clock_gettime_ns(clock_id)
    except (OSError, ValueError, OverflowError):
        return None


speedups: Any = None
#: which span path runs, and why (``otel-carbon sensors`` prints it)
span_path = "pure Python (OTEL_CARBON_SPEEDUPS=off)"
if not getattr(sys, "_is_gil_enabled", lambda: True)():
    # A free-threaded build: the compiled hooks rely on the GIL and would turn it back on for
    # the whole process when imported.
    span_path = "pure Python (a free-threaded build: the compiled span path needs the GIL)"
elif config.speedups():
    try:
        from otel_carbon import _speedups as speedups

        span_path = "compiled (otel_carbon._speedups)"
    except ImportError as exc:  # not built (no compiler at install time): the Python functions above
        speedups = None
        span_path = (
            f"pure Python: the compiled span path was not built ({exc}); reinstall where a C compiler "
            "and the Python headers are available (`pip install -v` shows why the build failed)"
        )
if speedups is not None:
    span_start_cpu_ns = speedups.span_start_cpu_ns  # noqa: F811
    read_cpu_ns = speedups.read_cpu_ns  # noqa: F811
    thread_clock_id = speedups.thread_clock_id  # noqa: F811
    current_owner = speedups.current_owner  # noqa: F811
    swap_owner = speedups.swap_owner  # noqa: F811
    TaskMeter = speedups.TaskMeter  # type: ignore[misc] # noqa: F811
    _METER = speedups.METER
    meter_for_span = speedups.meter_for_span  # noqa: F811
    _begin = speedups._begin  # noqa: F811
    _finish = speedups._finish  # noqa: F811
    offloaded_ns = speedups.offloaded_ns  # noqa: F811
    add_offloaded_ns = speedups.add_offloaded_ns  # noqa: F811


#: ``carbon.cpu.clock`` values: what timed a span's own CPU time
CLOCK_THREAD = "thread"  # its thread's CPU clock
CLOCK_TASK = "task"  # its asyncio task's meter
CLOCK_OTHER_THREAD = "other_thread"  # ended on another thread: the starting thread's clock
CLOCK_NONE = "none"  # ended on another thread, which is gone: 0 s


def span_cpu_ns(cpu0_ns: int, meter: Optional[TaskMeter], clock_id: Optional[int], offloaded0_ns: int, handed_off_ns: int) -> "tuple[int, str, int]":
    """A span ending now on this thread: ``(own CPU ns, clock, handed-off CPU ns)`` from its
    state at start (clock reading, task meter or None, the starting thread's clock id, the
    hand-off count then) and the CPU ns its own hand-offs used. Handed-off work counts what
    its children here handed off too; its ancestors here then include its own."""
    if meter is not None:
        cpu_ns = meter.now_ns() - cpu0_ns
        meter.open_spans -= 1
        children_ns = meter.offloaded_ns - offloaded0_ns
        meter.offloaded_ns += handed_off_ns
        return cpu_ns, CLOCK_TASK, handed_off_ns + children_ns
    tls = _tls
    if clock_id == (tls.clock_id or thread_clock_id()):
        cpu_ns = read_cpu_ns(tls) - cpu0_ns
        children_ns = offloaded_ns() - offloaded0_ns
        if handed_off_ns:
            add_offloaded_ns(handed_off_ns)
        return cpu_ns, CLOCK_THREAD, handed_off_ns + children_ns
    # the starting thread's own count is out of reach: this span's own hand-offs only
    now = other_thread_cpu_ns(clock_id)
    if now is None:
        return 0, CLOCK_NONE, handed_off_ns
    return now - cpu0_ns, CLOCK_OTHER_THREAD, handed_off_ns


def _forget_thread_clock_in_child() -> None:
    """In a forked child the forking thread is a new thread: its CPU clock starts again near
    0 and its clock id is another. Forget the parent's (a coalesced read from before the fork
    would put a span's start far ahead of its end)."""
    _tls.clock_id = 0
    _tls.last_read = (0, -CLOCK_REUSE_NS)
    _tls.offloaded_ns = 0
    if speedups is not None:
        speedups.forget_thread_clock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_thread_clock_in_child)
