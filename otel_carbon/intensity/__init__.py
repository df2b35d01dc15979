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

from typing import Any

from otel_carbon.intensity.model import CUSTOM_ZONE, WORLD_ZONE, Intensity

# Imported now: every process resolves an intensity, and the function ``resolve`` must win
# over the submodule of the same name (importing a submodule sets the package's attribute).
from otel_carbon.intensity.resolve import resolve, resolve_intensity

#: The rest loads on first use (``from otel_carbon.intensity import X`` works for all of
#: them): the live provider and its urllib/http.client stay out of a process that does not
#: configure one.
_LAZY = {
    "UnknownZoneError": "bundled",
    "parse_cloud": "bundled",
    "LiveIntensitySource": "live",
    "IntensitySource": "source",
    "StaticIntensitySource": "source",
    "intensity_source": "source",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value

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
