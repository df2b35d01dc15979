"""RAPL energy counters through the Linux powercap sysfs tree.

Layout (``/sys/class/powercap`` or ``OTEL_CARBON_POWERCAP_ROOT``)::

    intel-rapl:0/            name=package-0  energy_uj  max_energy_range_uj
    intel-rapl:0/intel-rapl:0:0/   name=core        (inside the package figure)
    intel-rapl:0/intel-rapl:0:1/   name=uncore      (inside the package figure)
    intel-rapl:0/intel-rapl:0:2/   name=dram        (memory, not inside the package)
    intel-rapl:1/            name=psys (whole platform: reported, never summed)

Decisions:

* CPU = sum of the *package* zones; memory = sum of the *dram* zones. core/uncore are
  parts of the package and psys contains everything, so neither is summed.
* AMD exposes the same tree (package and core only). On multi-die parts several zones can
  mirror one counter: zones with a name already seen are skipped, and so is a package zone
  whose counter moves in lockstep with another at probe time.
* Counters are read with ``os.pread`` on file descriptors kept open.
* **Nothing read here may hang or flood the process.** Every file is opened with
  ``O_NONBLOCK`` and kept only if it is a regular file (sysfs attributes are): a FIFO, a
  device (``/dev/zero``) or a socket in the tree, directly or through a symlink, is a
  :class:`Diagnostic`. At most :data:`MAX_ATTRIBUTE_BYTES` bytes are read, and a value must
  be ASCII digits.
* A ``max_energy_range_uj`` outside [:data:`MIN_RANGE_UJ`, :data:`MAX_RANGE_UJ`] is
  implausible and skips the zone: the lower bound is the range a zone at
  :data:`MAX_ZONE_POWER_W` wraps in twice the shortest sampler interval (real parts report
  6.5e10 or more), the upper one a 64-bit counter.
* A forward step larger than :data:`MAX_JUMP_POWER_W` times the time since the last
  reading is not energy (no zone draws that): it is treated as a reset, like a backward
  step that no wrap explains.
* Wraparound: a counter that went down by less than a wrap could explain is treated as
  one wrap through ``max_energy_range_uj``. If the wrap would imply more than
  :data:`MAX_ZONE_POWER_W`, it was a reset instead (driver reload, hotplug): the new value
  is taken as the energy since the reset when plausible, else 0, and the reset is logged.
* The sampler must read each counter at least once per wrap period at the highest power we
  accept: :meth:`RaplSensor.max_read_interval_s` gives half of that, and the sampler uses
  it as an upper bound on its interval.
* ``energy_uj`` is root-only on Linux since 2020 (CVE-2020-8694). An unreadable counter
  gives a :class:`Diagnostic` naming the file and the usual fixes; the caller falls back to
  the models.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from otel_carbon._log import warn_once
from otel_carbon.attributes import CPU, MEASURED, MEMORY
from otel_carbon.sensors.base import Diagnostic, HostSample, SensorError, SensorInfo

_logger = logging.getLogger("otel_carbon")

#: Highest power one zone may plausibly draw, for wrap/reset decisions (W).
MAX_ZONE_POWER_W = 1000.0
#: A forward step of a counter above this power times the time since the last reading is
#: a reset, not energy (W).
MAX_JUMP_POWER_W = 10_000.0
#: Most bytes read from one powercap file (a 64-bit counter is 20 digits and a newline).
MAX_ATTRIBUTE_BYTES = 32
#: Plausible ``max_energy_range_uj``: a wrap at MAX_ZONE_POWER_W takes at least twice the
#: shortest sampler interval (0.01 s), and a counter has at most 64 bits.
MIN_RANGE_UJ = int(2 * MAX_ZONE_POWER_W * 0.01 * 1e6)
MAX_RANGE_UJ = 2**64
_PERMISSION_FIX = (
    "energy_uj is readable only by root since Linux 5.10 (CVE-2020-8694): run as root, or "
    "grant read access (e.g. a udev rule or `chmod o+r` on the energy_uj files at boot, or a "
    "container started with that path mounted readable). Until then the CPU model is used."
)

Opener = Callable[[str], int]


def _default_opener(path: str) -> int:
    return os.open(path, _OPEN_FLAGS)


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def _check_regular(fd: int, path: str) -> None:
    """Raise :class:`SensorError` unless ``fd`` is a regular file (what sysfs attributes are)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        raise SensorError(f"{path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(mode):
        raise SensorError(f"{path}: not a regular file ({_file_kind(mode)}), not a powercap attribute")


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return kind
    return "not a file"


def _parse_uj(raw: bytes, path: str) -> int:
    text = raw.strip()
    if not (text.isdigit() and len(text) <= 20):  # bytes.isdigit(): ASCII digits only
        raise SensorError(f"{path}: not a number: {raw[:MAX_ATTRIBUTE_BYTES]!r}")
    return int(text)


@dataclass
class Zone:
    path: str  # directory of the zone
    name: str  # package-0, dram, core, psys ...
    max_range_uj: int
    fd: int
    last_uj: int = -1
    last_t_ns: int = 0
    energy_j: float = 0.0
    resets: int = 0

    def read_uj(self) -> int:
        try:
            raw = os.pread(self.fd, MAX_ATTRIBUTE_BYTES, 0)
        except OSError as exc:
            raise SensorError(f"{self.path}/energy_uj: {exc.strerror or exc}") from exc
        return _parse_uj(raw, f"{self.path}/energy_uj")

    def advance(self, t_ns: int) -> float:
        """Read the counter and return the cumulative joules of this zone."""
        now_uj = self.read_uj()
        if self.last_uj >= 0:
            delta_uj = now_uj - self.last_uj
            if delta_uj < 0:
                delta_uj = self._wrapped_delta(now_uj, t_ns)
            elif delta_uj > MAX_JUMP_POWER_W * self._elapsed_s(t_ns) * 1e6:
                delta_uj = self._reset(now_uj, t_ns, "jumped forward")
            self.energy_j += delta_uj / 1e6
        self.last_uj = now_uj
        self.last_t_ns = t_ns
        return self.energy_j

    def _elapsed_s(self, t_ns: int) -> float:
        return max((t_ns - self.last_t_ns) / 1e9, 1e-3)

    def _wrapped_delta(self, now_uj: int, t_ns: int) -> int:
        budget_uj = MAX_ZONE_POWER_W * self._elapsed_s(t_ns) * 1e6
        wrap_uj = self.max_range_uj - self.last_uj + now_uj
        if self.max_range_uj > 0 and 0 <= wrap_uj <= budget_uj:
            return wrap_uj
        return self._reset(now_uj, t_ns, "went back without a plausible wrap")

    def _reset(self, now_uj: int, t_ns: int, how: str) -> int:
        """A counter reset (driver reload, hotplug, a bogus value): the new value is the
        energy since the reset when plausible, else 0."""
        self.resets += 1
        warn_once(
            _logger,
            f"rapl-reset:{self.path}",
            "RAPL counter %s/energy_uj %s, from %d to %d in %.3f s (max_energy_range_uj=%d): "
            "treated as a counter reset",
            self.path,
            how,
            self.last_uj,
            now_uj,
            (t_ns - self.last_t_ns) / 1e9,
            self.max_range_uj,
        )
        return now_uj if now_uj <= MAX_ZONE_POWER_W * self._elapsed_s(t_ns) * 1e6 else 0

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


@dataclass
class RaplSensor:
    """Cumulative joules of one component (cpu or memory) over its RAPL zones."""

    component: str
    zones: List[Zone]
    name: str = ""
    method: str = MEASURED
    idle_power_w: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"rapl-{self.component}"

    def read(self, sample: HostSample) -> float:
        with self._lock:
            return sum(zone.advance(sample.t_ns) for zone in self.zones)

    def max_read_interval_s(self) -> float:
        """Half the shortest wrap period at :data:`MAX_ZONE_POWER_W`."""
        ranges = [z.max_range_uj for z in self.zones if z.max_range_uj > 0]
        if not ranges:
            return float("inf")
        return min(ranges) / 1e6 / MAX_ZONE_POWER_W / 2

    def info(self) -> SensorInfo:
        return SensorInfo(
            name=self.name,
            component=self.component,
            method=self.method,
            source="rapl",
            details={
                "zones": [z.path for z in self.zones],
                "names": [z.name for z in self.zones],
                "max_read_interval_s": round(self.max_read_interval_s(), 1),
                "resets": sum(z.resets for z in self.zones),
            },
        )

    def close(self) -> None:
        for zone in self.zones:
            zone.close()


def _read_attribute(path: str) -> bytes:
    """At most MAX_ATTRIBUTE_BYTES of a regular file, opened without blocking."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise SensorError(f"{path}: {exc.strerror or exc}") from exc
    try:
        _check_regular(fd, path)
        return os.pread(fd, MAX_ATTRIBUTE_BYTES, 0)
    except OSError as exc:
        raise SensorError(f"{path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def _read_name(path: str) -> str:
    name = _read_attribute(path).strip().decode("ascii", errors="replace")
    if not name or not name.isprintable():
        raise SensorError(f"{path}: not a zone name: {name!r}")
    return name


def _read_range_uj(path: str) -> int:
    range_uj = _parse_uj(_read_attribute(path), path)
    if not MIN_RANGE_UJ <= range_uj <= MAX_RANGE_UJ:
        raise SensorError(
            f"{path}: {range_uj} is not a plausible counter range (expected {MIN_RANGE_UJ} to 2^64 uJ)"
        )
    return range_uj


def _zone_dirs(root: str) -> List[str]:
    """Zone directories: top-level ``intel-rapl:N`` and their ``intel-rapl:N:M`` children.

    Real sysfs also links every subzone at the top level; visiting children through their
    parent and skipping top-level names with two colons avoids counting them twice.
    """
    try:
        top = sorted(n for n in os.listdir(root) if n.startswith("intel-rapl:") and n.count(":") == 1)
    except OSError:
        return []
    dirs: List[str] = []
    for name in top:
        path = os.path.join(root, name)
        dirs.append(path)
        try:
            children = sorted(c for c in os.listdir(path) if c.startswith(name + ":"))
        except OSError:
            children = []
        dirs.extend(os.path.join(path, c) for c in children)
    return dirs


def _open_zone(path: str, opener: Opener) -> Tuple[Optional[Zone], Optional[Diagnostic]]:
    energy_path = os.path.join(path, "energy_uj")
    try:
        name = _read_name(os.path.join(path, "name"))
        max_range_uj = _read_range_uj(os.path.join(path, "max_energy_range_uj"))
    except SensorError as exc:
        return None, Diagnostic(path, f"unreadable name or max_energy_range_uj: {exc}", "zone skipped")
    try:
        fd = opener(energy_path)
    except PermissionError as exc:
        return None, Diagnostic(energy_path, f"permission denied ({exc.strerror or exc})", _PERMISSION_FIX)
    except OSError as exc:
        return None, Diagnostic(energy_path, f"cannot open: {exc.strerror or exc}", "zone skipped")
    zone = Zone(path=path, name=name, max_range_uj=max_range_uj, fd=fd)
    try:
        _check_regular(fd, energy_path)
        zone.read_uj()
    except SensorError as exc:
        cause = exc.__cause__
        zone.close()
        if isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EPERM):
            return None, Diagnostic(energy_path, "permission denied", _PERMISSION_FIX)
        return None, Diagnostic(energy_path, str(exc), "zone skipped")
    return zone, None


def _log_diagnostic(diag: Diagnostic) -> None:
    """One log line per unreadable zone: INFO for the usual permission case (most hosts
    outside root), WARNING for a tree that holds something other than counters."""
    level = logging.INFO if diag.fix == _PERMISSION_FIX else logging.WARNING
    warn_once(_logger, f"rapl:{diag.path}", "otel_carbon: RAPL zone skipped: %s: %s", diag.path, diag.problem, level=level)


def _drop_mirrors(packages: List[Zone]) -> List[Zone]:
    """Drop package zones that mirror another (same name, or same counter in lockstep)."""
    kept: List[Zone] = []
    first: Dict[int, int] = {}
    for zone in packages:
        if any(k.name == zone.name for k in kept):
            zone.close()
            continue
        try:
            first[id(zone)] = zone.read_uj()
        except SensorError as exc:  # it changed since it was opened: skip it
            _log_diagnostic(Diagnostic(zone.path, str(exc), "zone skipped"))
            zone.close()
            continue
        kept.append(zone)
    unique: List[Zone] = []
    for zone in kept:
        twin = next(
            (u for u in unique if first[id(u)] == first[id(zone)] and _same_reading(u, zone)),
            None,
        )
        if twin is not None and first[id(zone)] != 0:
            zone.close()
            continue
        unique.append(zone)
    return unique


def _same_reading(a: Zone, b: Zone) -> bool:
    try:
        return a.read_uj() == b.read_uj()
    except SensorError:
        return False  # kept apart; the sampler marks a zone that fails unavailable


def probe_rapl(root: str, opener: Opener = _default_opener) -> Tuple[List[RaplSensor], List[Diagnostic]]:
    """Find the readable RAPL zones under ``root``; one sensor per component."""
    diagnostics: List[Diagnostic] = []
    packages: List[Zone] = []
    drams: List[Zone] = []
    for path in _zone_dirs(root):
        zone, diag = _open_zone(path, opener)
        if diag is not None:
            diagnostics.append(diag)
            _log_diagnostic(diag)
        if zone is None:
            continue
        if zone.name.startswith("package"):
            packages.append(zone)
        elif zone.name == "dram":
            drams.append(zone)
        else:
            zone.close()  # core, uncore (inside package), psys (contains everything)
    sensors: List[RaplSensor] = []
    packages = _drop_mirrors(packages)
    if packages:
        sensors.append(RaplSensor(CPU, packages))
    if drams:
        sensors.append(RaplSensor(MEMORY, drams))
    return sensors, diagnostics
