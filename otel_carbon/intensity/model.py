"""The :class:`Intensity` value object: one grid carbon intensity and where it came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from otel_carbon.attributes import JOULES_PER_KWH

WORLD_ZONE = "world"
CUSTOM_ZONE = "custom"


@dataclass(frozen=True)
class Intensity:
    """A grid carbon intensity with its provenance.

    ``g_per_kwh`` is the intensity of the electricity *grid* (g CO2e per kWh drawn from
    it). ``pue`` is the data centre's Power Usage Effectiveness: the facility draws
    ``pue`` kWh from the grid for every kWh the servers use. The two are kept apart (not
    pre-multiplied) so that both stay visible and comparable with their sources; use
    :meth:`emissions_g` or :attr:`g_per_joule` to apply both.

    * ``zone``: ``"FR"`` (ISO alpha-2), ``"US-CA"`` (sub-national), ``"aws:eu-west-1"``
      (cloud region), ``"world"``, ``"custom"`` (a fixed value), or a live provider's
      zone (``"DE"``, ``"CAISO_NORTH"``, ``"GB"``).
    * ``year``: the data year (``None`` when the source gives none).
    * ``source``: a human-readable citation of the row or API the value came from.
    * ``live``: the value came from a live provider.
    * ``fallback``: a live provider is configured but this value is bundled data (the
      provider has not answered yet, or failed for longer than its maximum age).
    * ``as_of``: for live values, the provider's timestamp (ISO 8601) of the datum.
    """

    g_per_kwh: float
    zone: str
    year: Optional[int] = None
    source: str = ""
    pue: float = 1.0
    live: bool = False
    fallback: bool = False
    as_of: Optional[str] = None

    @property
    def g_per_joule(self) -> float:
        """g CO2e per joule used by the servers, PUE included."""
        return self.g_per_kwh * self.pue / JOULES_PER_KWH

    def emissions_g(self, energy_j: float) -> float:
        """g CO2e caused by ``energy_j`` joules used by the servers (PUE applied)."""
        return energy_j * self.g_per_kwh * self.pue / JOULES_PER_KWH

    def as_dict(self) -> dict:
        """Plain dict for JSON output (CLI) and logs."""
        return {
            "g_per_kwh": self.g_per_kwh,
            "zone": self.zone,
            "year": self.year,
            "source": self.source,
            "pue": self.pue,
            "live": self.live,
            "fallback": self.fallback,
            "as_of": self.as_of,
        }
