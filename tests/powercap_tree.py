"""Fake Linux powercap (RAPL) sysfs trees made of real files, for tests.

The layout follows ``/sys/class/powercap`` on real machines::

    root/
      intel-rapl/                      control type (``enabled``), not a zone
      intel-rapl:0/                    name=package-0  energy_uj  max_energy_range_uj  enabled
        intel-rapl:0:0/                name=core
        intel-rapl:0:1/                name=uncore
        intel-rapl:0:2/                name=dram
      intel-rapl:0:0 -> intel-rapl:0/intel-rapl:0:0    (sysfs also links every subzone
      intel-rapl:0:1 -> intel-rapl:0/intel-rapl:0:1     at the top level)
      ...
      intel-rapl:2/                    name=psys (after the packages, when asked for)

``energy_uj`` always holds a number zero-padded to 20 digits and a newline, rewritten in
place with one ``os.pwrite`` at offset 0, so a reader using ``os.pread`` + ``int()`` on a
descriptor kept open (as the RAPL sensor does) sees each value whole.

:class:`CounterDriver` advances counters from a separate *process* at known wattages: a
thread inside the measured process would be starved by the busy threads a test runs.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

#: A real Intel value (Skylake server): 2^32 energy units of 61 µJ.
DEFAULT_MAX_RANGE_UJ = 262143328850
#: What AMD Zen parts report (2^32 units of 15.3 µJ).
AMD_MAX_RANGE_UJ = 65712999613

_WIDTH = 20


@dataclass(frozen=True)
class FakeZone:
    """One zone directory of a fake powercap tree."""

    path: Path  # the zone's directory
    name: str  # what its ``name`` file says

    @property
    def energy_path(self) -> Path:
        return self.path / "energy_uj"

    @property
    def max_range_uj(self) -> int:
        return int((self.path / "max_energy_range_uj").read_text())

    def write_uj(self, value: int) -> None:
        """Set the counter: zero-padded to 20 digits + newline, one pwrite at offset 0."""
        value = int(value)
        if value < 0:
            raise ValueError(f"a RAPL counter is never negative, got {value}")
        data = f"{value:0{_WIDTH}d}\n".encode("ascii")
        fd = os.open(self.energy_path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, 0)
        finally:
            os.close(fd)

    def read_uj(self) -> int:
        fd = os.open(self.energy_path, os.O_RDONLY)
        try:
            return int(os.pread(fd, 64, 0))
        finally:
            os.close(fd)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text + "\n", encoding="ascii")


def _make_zone(directory: Path, name: str, max_range_uj: int, start_uj: int) -> FakeZone:
    directory.mkdir(parents=True)
    _write_text(directory / "name", name)
    _write_text(directory / "max_energy_range_uj", str(max_range_uj))
    _write_text(directory / "enabled", "1")
    zone = FakeZone(directory, name)
    zone.write_uj(start_uj)
    return zone


def _control_type(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    control = root / "intel-rapl"
    control.mkdir(exist_ok=True)
    _write_text(control / "enabled", "1")


def _link_subzone(root: Path, parent: str, child: str) -> None:
    (root / child).symlink_to(Path(parent) / child, target_is_directory=True)


def _start_value(index: int) -> int:
    # distinct, non-zero, well inside the range: never mistaken for a mirror or a wrap
    return 1_000_000_007 * (index + 1) + 12_345 * index


def build_intel_tree(
    root: Path,
    sockets: int = 2,
    dram: bool = True,
    psys: bool = False,
    max_range_uj: int = DEFAULT_MAX_RANGE_UJ,
) -> Dict[str, FakeZone]:
    """An Intel server tree: per socket a package zone with core, uncore and (optionally)
    dram subzones; optionally a psys zone. Keys: ``package-N``, ``package-N/core``,
    ``package-N/uncore``, ``package-N/dram``, ``psys``. Every counter starts at a distinct
    non-zero value."""
    root = Path(root)
    _control_type(root)
    zones: Dict[str, FakeZone] = {}
    counter = 0
    for socket in range(sockets):
        top = f"intel-rapl:{socket}"
        package = f"package-{socket}"
        zones[package] = _make_zone(root / top, package, max_range_uj, _start_value(counter))
        counter += 1
        subzones = ["core", "uncore"] + (["dram"] if dram else [])
        for index, sub in enumerate(subzones):
            child = f"{top}:{index}"
            zones[f"{package}/{sub}"] = _make_zone(root / top / child, sub, max_range_uj, _start_value(counter))
            counter += 1
            _link_subzone(root, top, child)
    if psys:
        zones["psys"] = _make_zone(root / f"intel-rapl:{sockets}", "psys", max_range_uj, _start_value(counter))
    return zones


def build_amd_tree(root: Path, dies: int = 2, max_range_uj: int = AMD_MAX_RANGE_UJ) -> Dict[str, FakeZone]:
    """An AMD multi-die tree: one ``package-0`` zone per die, all with the same name and
    the same counter value (one package counter seen through every die), each with a
    ``core`` subzone of its own. Keys: ``die-N`` (the package zone seen from die N) and
    ``die-N/core``. Keep the package zones equal while advancing them with
    ``CounterDriver(..., mirror=[[zones["die-0"], zones["die-1"], ...]])``."""
    root = Path(root)
    _control_type(root)
    zones: Dict[str, FakeZone] = {}
    package_start = _start_value(0)
    for die in range(dies):
        top = f"intel-rapl:{die}"
        zones[f"die-{die}"] = _make_zone(root / top, "package-0", max_range_uj, package_start)
        child = f"{top}:0"
        zones[f"die-{die}/core"] = _make_zone(root / top / child, "core", max_range_uj, _start_value(die + 1))
        _link_subzone(root, top, child)
    return zones


# -- the driver process ---------------------------------------------------------------------

_DRIVER = r"""
import json, os, select, sys, time

cfg = json.loads(sys.stdin.readline())
parent = cfg["parent"]
period = cfg["period_s"]
zones = []
for path, watts, followers in cfg["zones"]:
    with open(os.path.join(path, "max_energy_range_uj")) as fh:
        max_range = int(fh.read())
    with open(os.path.join(path, "energy_uj")) as fh:
        start = int(fh.read())
    fds = [os.open(os.path.join(p, "energy_uj"), os.O_WRONLY) for p in [path] + followers]
    zones.append((start, watts, max_range, fds))


def write(elapsed_s):
    for start, watts, max_range, fds in zones:
        value = start + int(round(watts * elapsed_s * 1e6))
        if max_range > 0:
            value %= max_range
        data = b"%020d\n" % value
        for fd in fds:
            os.pwrite(fd, data, 0)


t0 = time.monotonic_ns()
write(0.0)
sys.stdout.write("ready %d\n" % t0)
sys.stdout.flush()
while True:
    readable, _, _ = select.select([sys.stdin], [], [], period)
    if readable or os.getppid() != parent:  # stdin closed: stop; parent gone: stop
        break
    write((time.monotonic_ns() - t0) / 1e9)
write((time.monotonic_ns() - t0) / 1e9)
"""

ZoneWatts = Union[Dict[FakeZone, float], Sequence[Tuple[FakeZone, float]]]


class CounterDriver:
    """Advances fake RAPL counters at known wattages from a helper process.

    ``energy_uj(t) = start + watts * (t - t0) * 1e6``, modulo the zone's
    ``max_energy_range_uj``, where ``start`` is the value in the file when the driver
    starts and ``t0`` its monotonic start time (:attr:`t0_ns`, same clock as
    ``time.monotonic_ns()`` here). Written every ``period_s``. Each group in ``mirror``
    names a driven zone first; the other zones of the group get the same value at every
    write (a counter seen through several dies)."""

    def __init__(
        self,
        zones: ZoneWatts,
        period_s: float = 0.005,
        mirror: Iterable[Sequence[FakeZone]] = (),
    ) -> None:
        items = list(zones.items()) if isinstance(zones, dict) else [tuple(z) for z in zones]
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s!r}")
        for zone, watts in items:
            if not watts >= 0:
                raise ValueError(f"watts must be >= 0, got {watts!r} for {zone.name}")
        followers: Dict[FakeZone, List[FakeZone]] = {zone: [] for zone, _ in items}
        for group in mirror:
            leader, *rest = list(group)
            if leader not in followers:
                raise ValueError(f"mirror group must start with a driven zone, got {leader.path}")
            followers[leader].extend(rest)
        self.watts: Dict[FakeZone, float] = {zone: float(w) for zone, w in items}
        self.period_s = float(period_s)
        self._config = {
            "parent": os.getpid(),
            "period_s": self.period_s,
            "zones": [[str(z.path), float(w), [str(f.path) for f in followers[z]]] for z, w in items],
        }
        self._proc: Optional[subprocess.Popen] = None
        self.t0_ns: Optional[int] = None

    def start(self) -> "CounterDriver":
        if self._proc is not None:
            raise RuntimeError("CounterDriver already started")
        proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(self._config) + "\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("ready "):
            self.stop()
            raise RuntimeError(f"counter driver did not start (said {line!r})")
        self.t0_ns = int(line.split()[1])
        return self

    def stop(self) -> None:
        """Stop the helper (it writes a last value first). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

    def __enter__(self) -> "CounterDriver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
