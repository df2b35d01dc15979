"""The host's CPU time (busy and total CPU-seconds of all CPUs since boot), CPU count and
memory size.

Read from the first line of ``/proc/stat`` with ``os.pread`` on a descriptor kept open (half
the cost of ``psutil.cpu_times()``, which opens the file each time), and from ``os``; from
psutil only where there is no ``/proc`` or ``sysconf`` (macOS, Windows): psutil's import is
~15 ms of a cold start that a Linux host does not need.
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Optional


class ProcStat:
    """The first line of a ``/proc/stat`` kept open."""

    def __init__(self, path: str = "/proc/stat") -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.hz = float(os.sysconf("SC_CLK_TCK"))

    def read(self) -> "tuple[float, float]":
        fields = os.pread(self.fd, 256, 0).split(b"\n", 1)[0].split()
        user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
        busy = user + nice + system + irq + softirq
        return busy / self.hz, (busy + idle + iowait + steal) / self.hz


_proc_stats: Dict[str, ProcStat] = {}  # one kept-open fd per path, for the process's life
_proc_stats_lock = threading.Lock()


def open_proc_stat(proc_root: str = "/proc") -> Optional[ProcStat]:
    """``proc_root``/stat kept open, or None where there is none (not Linux): then the host's
    CPU times come from psutil."""
    path = os.path.join(proc_root, "stat")
    with _proc_stats_lock:
        if path not in _proc_stats:
            try:
                _proc_stats[path] = ProcStat(path)
            except OSError:
                return None
        return _proc_stats[path]


def host_cpu_seconds(proc_stat: Optional[ProcStat]) -> "tuple[float, float]":
    """(busy, total) CPU-seconds of the host since boot, all CPUs, from ``proc_stat`` (see
    :func:`open_proc_stat`), else psutil.

    busy = user + nice + system + irq + softirq; total adds idle, iowait and steal
    (time the hypervisor gave to someone else is not our work, nor free capacity we used).
    """
    if proc_stat is not None:
        try:
            return proc_stat.read()
        except (OSError, ValueError):
            pass
    import psutil  # no /proc here

    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    total = busy + t.idle + getattr(t, "iowait", 0.0) + getattr(t, "steal", 0.0)
    return busy, total


def logical_cpus() -> int:
    """The host's logical CPUs (``psutil.cpu_count(logical=True)``)."""
    return os.cpu_count() or 1


def total_memory_bytes() -> int:
    """The host's physical memory (``psutil.virtual_memory().total``)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        import psutil

        return int(psutil.virtual_memory().total)


def memory_in_use(meminfo: str = "/proc/meminfo") -> "tuple[float, int]":
    """(percent, bytes) of the host's memory in use, as ``psutil.virtual_memory()`` (6+)
    gives them on Linux: in use = MemTotal - MemAvailable (MemFree where MemAvailable is
    above the total, as in some containers), percent to one decimal; read from ``meminfo``,
    from psutil where that file is missing or lacks a field."""
    try:
        with open(meminfo, "rb") as fh:
            kib = {line.split(b":", 1)[0]: int(line.split()[1]) for line in fh if line.count(b":") == 1}
        total, avail = kib[b"MemTotal"], kib[b"MemAvailable"]
        if avail > total:
            avail = kib[b"MemFree"]
        return round((total - avail) / total * 100, 1), (total - avail) * 1024
    except (OSError, KeyError, ValueError, IndexError, ZeroDivisionError):
        import psutil

        vm = psutil.virtual_memory()
        return float(vm.percent), int(vm.total - vm.available)


def _reset_lock_after_fork() -> None:
    global _proc_stats_lock
    _proc_stats_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_after_fork)
