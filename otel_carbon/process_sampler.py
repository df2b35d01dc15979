"""The process-wide sampler: one per process, started on first use, shared by every
processor, meter and tracker, so the same joules are never counted twice (see
:mod:`otel_carbon.sampler`)."""

from __future__ import annotations

import os
import threading
from typing import Callable, Optional

from otel_carbon.sampler import Sampler
from otel_carbon.sensors.probe import get_probe

_sampler: Optional[Sampler] = None
_sampler_lock = threading.Lock()


def get_sampler() -> Sampler:
    """The process-wide sampler, created and started on first use."""
    sampler = _sampler
    if sampler is not None:
        return sampler
    return get_or_create_sampler()[0]


def get_or_create_sampler(make: Optional[Callable[[], Sampler]] = None) -> "tuple[Sampler, bool]":
    """The process-wide sampler, and whether this call made it: when there is none,
    ``make()`` (default: a sampler over the probed sensors) is started and becomes it, all
    under one lock, so two callers never start two samplers (``make`` runs under it: it
    must not call :func:`set_sampler`). Exceptions from ``make`` propagate (nothing is
    installed)."""
    global _sampler
    with _sampler_lock:
        if _sampler is not None:
            return _sampler, False
        made = make() if make is not None else Sampler(get_probe())
        _sampler = made.start()
        return _sampler, True


def current_sampler() -> Optional[Sampler]:
    """The process-wide sampler if one exists (none is created)."""
    return _sampler


def set_sampler(sampler: Optional[Sampler]) -> Optional[Sampler]:
    """Replace the process-wide sampler (tests, custom sensors); returns the old one."""
    global _sampler
    with _sampler_lock:
        old, _sampler = _sampler, sampler
    return old


def shutdown_sampler(timeout_s: float = 2.0) -> None:
    old = set_sampler(None)
    if old is not None:
        old.shutdown(timeout_s)


def _after_fork_in_child() -> None:
    global _sampler_lock
    _sampler_lock = threading.Lock()  # the parent may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
