"""The figures of one tracked run: :class:`EmissionsResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Tuple

from otel_carbon import attributes as A

COMPONENTS = (A.CPU, A.MEMORY, A.GPU, "idle")


@dataclass(frozen=True)
class EmissionsResult:
    """The figures of one tracked run (or of a running one, from ``flush()``).

    Energy is in J per component (``cpu``, ``memory``, ``gpu``, and ``idle`` when the idle
    policy puts static power on spans); the ``*_kwh`` and ``*_kg`` properties give
    CodeCarbon's units. ``float(result)`` is the emissions in kg, like CodeCarbon's
    ``tracker.stop()``.
    """

    name: str
    run_id: str
    scope: str
    start_unix_s: float
    duration_s: float
    cpu_time_s: float
    energy_j: Mapping[str, float]
    energy_total_j: float
    emissions_g: float
    intensity_g_per_kwh: float
    pue: float
    zone: str
    method: str
    span_energy_j: float
    span_cpu_time_s: float
    final: bool = True
    _window: Tuple[Any, int, int, Any] = field(default=(None, 0, 0, None), repr=False, compare=False)

    @property
    def energy_kwh(self) -> float:
        return self.energy_total_j / A.JOULES_PER_KWH

    @property
    def energy_kwh_by_component(self) -> Dict[str, float]:
        return {k: v / A.JOULES_PER_KWH for k, v in self.energy_j.items()}

    @property
    def emissions_kg(self) -> float:
        return self.emissions_g / 1000.0

    @property
    def estimated(self) -> bool:
        return self.method in (A.ESTIMATED, A.MIXED)

    def ledger_window(self) -> Any:
        """The process's ledger over the run (:class:`otel_carbon.ledger.Window`: host
        energy, ``proc_cpu_s``, ``charged_j``...), or None. Computed on demand."""
        sampler, t0_ns, t1_ns, start = self._window
        if sampler is None:
            return None
        try:
            return sampler.ledger.window(t0_ns, t1_ns, start=start)
        except Exception:  # noqa: BLE001
            return None

    def __float__(self) -> float:
        return self.emissions_kg

    def __format__(self, spec: str) -> str:
        return format(self.emissions_kg, spec) if spec else repr(self)
