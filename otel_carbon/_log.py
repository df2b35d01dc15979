"""Log-once helpers: a hook or background thread reports a problem once, never raises."""

from __future__ import annotations

import logging
import threading
from typing import Any, Set

_seen: Set[str] = set()
_lock = threading.Lock()


def warn_once(logger: logging.Logger, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> bool:
    """Log ``msg`` the first time ``key`` is seen in this process; return whether it logged."""
    with _lock:
        if key in _seen:
            return False
        _seen.add(key)
    logger.log(level, msg, *args)
    return True


def mark_seen(key: str) -> None:
    """Treat ``key`` as already logged (a caller that reports the matter its own way)."""
    with _lock:
        _seen.add(key)


def reset_for_tests() -> None:
    with _lock:
        _seen.clear()
