"""Grid carbon intensity (g CO2e/kWh): where the code runs, and how dirty its power is.

Interface used by the rest of the package (keep it stable):

* :class:`Intensity` -- a resolved value with its zone, year, source and PUE;
  ``emissions_g(energy_j)`` applies both intensity and PUE.
* :func:`resolve_intensity` -- the resolution chain, run once at configuration:
  arguments → env (``OTEL_CARBON_INTENSITY``, ``OTEL_CARBON_REGION``,
  ``OTEL_CARBON_COUNTRY``) → Resource ``cloud.provider`` + ``cloud.region`` → world.
* :func:`intensity_source` -- what the sampler reads every tick (``current()``): static
  for bundled data, refreshed in the background when ``OTEL_CARBON_INTENSITY_PROVIDER``
  names a live provider. No network unless a live provider is configured.

Modules: :mod:`.model` (value object), :mod:`.bundled` (table lookups, suggestions),
:mod:`.resolve` (the chain), :mod:`.providers` (live APIs), :mod:`.live` (refresher
thread), :mod:`.source` (the factory). Importing this package parses no data file.
"""

from __future__ import annotations

from otel_carbon.intensity.bundled import UnknownZoneError, parse_cloud
from otel_carbon.intensity.live import LiveIntensitySource
from otel_carbon.intensity.model import CUSTOM_ZONE, WORLD_ZONE, Intensity
from otel_carbon.intensity.resolve import resolve, resolve_intensity
from otel_carbon.intensity.source import IntensitySource, StaticIntensitySource, intensity_source

__all__ = [
    "CUSTOM_ZONE",
    "WORLD_ZONE",
    "Intensity",
    "IntensitySource",
    "LiveIntensitySource",
    "StaticIntensitySource",
    "UnknownZoneError",
    "intensity_source",
    "parse_cloud",
    "resolve",
    "resolve_intensity",
]
