"""Rows of ``emissions.csv`` from tracked runs: written when the run ends, or, in a burst,
together a moment later.

A file's first :data:`BURST_ROWS` rows in any second are written when their run ends (a
script, a notebook cell, a training job: the row is in the file when the call returns).
Past that, as when a decorated request handler runs many times a second, rows wait at most
``OTEL_CARBON_CSV_MAX_DELAY_S`` (default 0.5 s; ``0``: every row at once) and go in one
locked append: the call pays for a small dict, not for building a line and appending it
(~60-70 µs a call on a small VM). Waiting rows are written by a background thread, by
:func:`flush_rows`, before a tracker's ``stop()`` / ``flush()`` writes its own row (an
explicit stop writes at once), and at exit. A forked child drops the rows its parent had
waiting (the parent writes them).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from otel_carbon import config
from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")

#: rows a file takes at once in any one second before later ones wait for a batch
BURST_ROWS = 10
_WINDOW_S = 1.0

_lock = threading.Lock()  # the state below
_write_lock = threading.Lock()  # one batch writer at a time: the thread, flush_rows(), exit
_wake = threading.Condition(_lock)
_pending: Dict[str, List[Tuple[Any, Dict[str, Any]]]] = {}  # path -> (file, codecarbon_row() arguments), in order
_oldest_t: List[float] = []  # monotonic time of the oldest waiting row, when any wait
_recent: Dict[str, List[float]] = {}  # path -> [start of its one-second window, rows written at once in it]
_writer: List[Optional[threading.Thread]] = [None]
_delay_s: List[Optional[float]] = [None]


def max_delay_s() -> float:
    if _delay_s[0] is None:
        _delay_s[0] = config.env_number(config.OTEL_CARBON_CSV_MAX_DELAY_S, config.DEFAULT_CSV_MAX_DELAY_S)
    return _delay_s[0]  # type: ignore[return-value]


def submit(file: Any, row: Dict[str, Any], at_once: bool = False) -> None:
    """Write the row ``codecarbon_row(**row)`` to ``file`` (an ``EmissionsCsvFile``) now
    or in the next batch (see the module's text). Never raises."""
    path = file.path
    if not at_once and max_delay_s() > 0:
        now = time.monotonic()
        with _lock:
            if path not in _pending:
                window = _recent.get(path)
                if window is None or now - window[0] >= _WINDOW_S:
                    window = _recent[path] = [now, 0.0]
                    if len(_recent) > 64:  # files no longer written to (this one's window is new)
                        for key in [k for k, w in _recent.items() if now - w[0] >= _WINDOW_S]:
                            del _recent[key]
                at_once = window[1] < BURST_ROWS
                window[1] += 1
            if not at_once:
                _pending.setdefault(path, []).append((file, row))
                if not _oldest_t:
                    _oldest_t.append(now)
                    _start_writer()
                    _wake.notify()
                return
    if path in _pending:  # the file's earlier rows first (any tracker's)
        flush_rows(path)
    _write([(file, row)])


def flush_rows(path: Optional[str] = None, timeout_s: float = 2.0) -> bool:
    """Write the rows waiting for the file at ``path`` (every file when None) now. False
    when another writer held the files past ``timeout_s``. Never raises."""
    if not _write_lock.acquire(timeout=timeout_s):
        return False
    try:
        with _lock:
            if path is None:
                batches = list(_pending.values())
                _pending.clear()
            else:
                batches = [_pending.pop(path, [])]
            if not _pending:
                _oldest_t.clear()
        for rows in batches:
            _write(rows)
        return True
    finally:
        _write_lock.release()


def _write(rows: List[Tuple[Any, Dict[str, Any]]]) -> None:
    """Append the rows of one path, one append per run of rows of the same tracker's file
    object (each keeps its own counts)."""
    from otel_carbon.exporters.codecarbon_rows import codecarbon_row

    start = 0
    while start < len(rows):
        file, end = rows[start][0], start + 1
        while end < len(rows) and rows[end][0] is file:
            end += 1
        try:
            file.append(*[codecarbon_row(**row) for _, row in rows[start:end]])
        except Exception as exc:  # noqa: BLE001 - never into the host application
            warn_once(_logger, "track-csv", "otel_carbon: could not write the emissions.csv row: %r", exc)
        start = end


def _start_writer() -> None:
    """Under ``_lock``: the background writer, once per process."""
    if _writer[0] is not None and _writer[0].is_alive():
        return
    thread = threading.Thread(target=_write_batches, name="otel-carbon-csv", daemon=True)
    _writer[0] = thread
    thread.start()


def _write_batches() -> None:
    from otel_carbon._untraced import untraced

    with untraced():
        while True:
            with _lock:
                while True:
                    if not _oldest_t:
                        _wake.wait()
                        continue
                    due_s = _oldest_t[0] + max_delay_s() - time.monotonic()
                    if due_s <= 0:
                        break
                    _wake.wait(due_s)
            flush_rows()


def _at_exit() -> None:
    flush_rows(timeout_s=2.0)


def _after_fork_in_child() -> None:
    global _lock, _write_lock, _wake
    _lock = threading.Lock()
    _write_lock = threading.Lock()
    _wake = threading.Condition(_lock)
    _pending.clear()
    _oldest_t.clear()
    _recent.clear()
    _writer[0] = None


atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
