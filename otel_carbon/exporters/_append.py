"""Append to a file shared by threads and processes: one write per record, under a lock.

The file is opened ``O_APPEND`` (every write lands at the end, atomically positioned) and
locked with ``fcntl.flock`` for the check-then-write (a header, a missing final newline).
The whole payload goes in one ``os.write`` (looped only if the kernel writes less, which
regular files do not do short of a full disk or a file-size limit). A write that fails
part-way (``ENOSPC``, ``EFBIG`` under ``ulimit -f``) is cut back to the size the file had
before it, still under the lock, so no torn record stays behind for the next writer to
append to. Where ``fcntl`` does not exist (Windows), a process-local lock still keeps
threads apart.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

HEAD_BYTES = 65536
_local_lock = threading.Lock()

#: ``payload(head, size, ends_with_newline) -> bytes``: what to append, given the file's
#: first bytes (up to 64 KiB), its size and whether it ends with a newline.
Payload = Callable[[bytes, int, bool], bytes]


def _truncate(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
    except OSError:  # pragma: no cover - nothing more can be done; the caller reports the write error
        pass


def locked_append(path: str, payload: Payload, head_bytes: int = HEAD_BYTES, mode: int = 0o644) -> int:
    """Append ``payload(...)`` to ``path`` (created if missing); return bytes written.

    Exceptions from ``payload`` (and ``OSError``) propagate after the lock is released.
    """
    flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    with _local_lock:
        fd = os.open(path, flags, mode)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            head = b""
            if size and head_bytes:  # most headers fit in the first 4 KiB
                head = os.pread(fd, min(size, 4096, head_bytes), 0)
                if b"\n" not in head and size > len(head):
                    head = os.pread(fd, min(size, head_bytes), 0)
            last = os.pread(fd, 1, size - 1) if size else b"\n"
            data = payload(head, size, last == b"\n")
            view = memoryview(data)
            written = 0
            try:
                while written < len(data):
                    n = os.write(fd, view[written:])
                    if n <= 0:
                        raise OSError(f"write to {path} made no progress")
                    written += n
            except BaseException:
                if written:
                    _truncate(fd, size)
                raise
            return written
        finally:
            os.close(fd)  # releases the flock
