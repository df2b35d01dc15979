"""Rate-limited warnings: a hook or background thread reports a problem, never raises, and
does not flood the log.

A matter (``key``) is logged the first time it happens, then at most once per
:data:`REPEAT_AFTER_S` while it keeps happening; the next message says how many repeats it
stood for. A sensor that recovers and fails again a day later is logged again, which a
log-once-per-process rule would hide (the SDK's ``DuplicateFilter`` uses a time window for
the same reason).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional

#: after this long, a matter already logged is logged again if it happens again
REPEAT_AFTER_S = 3600.0
#: matters remembered at most; beyond that, the ones whose window has passed are forgotten
#: (then, if none has, the oldest)
MAX_KEYS = 1024


class RepeatLimiter:
    """Which occurrences of a matter to log: the first, then one per ``window_s``."""

    def __init__(self, window_s: float = REPEAT_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not (isinstance(window_s, (int, float)) and window_s >= 0):
            raise ValueError(f"window_s must be a number of seconds >= 0, got {window_s!r}")
        self.window_s = float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: Dict[str, List[float]] = {}  # key -> [time logged, repeats not logged since]

    def allow(self, key: str) -> Optional[int]:
        """None when this occurrence is not to be logged; else how many were not logged
        since the last one that was."""
        now = self._clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return None
            if entry is None and len(self._seen) >= MAX_KEYS:
                self._forget_expired(now)
            self._seen[key] = [now, 0]
            return int(entry[1]) if entry is not None else 0

    def mark(self, key: str) -> None:
        """Count ``key`` as logged now (a caller that reports the matter its own way)."""
        with self._lock:
            self._seen[key] = [self._clock(), 0]

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def _forget_expired(self, now: float) -> None:
        for key in [k for k, (t, _) in self._seen.items() if now - t >= self.window_s]:
            del self._seen[key]
        if len(self._seen) >= MAX_KEYS:
            del self._seen[min(self._seen, key=lambda k: self._seen[k][0])]


_limiter = RepeatLimiter()


def warn_once(logger: logging.Logger, key: str, msg: str, *args: Any, level: int = logging.WARNING) -> bool:
    """Log ``msg`` for the matter ``key`` unless it was logged less than
    :data:`REPEAT_AFTER_S` ago; return whether it logged."""
    repeats = _limiter.allow(key)
    if repeats is None:
        return False
    if repeats:
        msg += " (%d more times since this was last logged)"
        args = (*args, repeats)
    logger.log(level, msg, *args)
    return True


def mark_seen(key: str) -> None:
    """Treat ``key`` as logged now (a caller that reports the matter its own way)."""
    _limiter.mark(key)


def reset_for_tests() -> None:
    _limiter.clear()
