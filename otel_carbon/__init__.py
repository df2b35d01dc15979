"""otel_carbon: energy (J) and CO2e (g) on every OpenTelemetry span.

Importing the package is cheap: it loads no data file, starts no thread and never touches
NVML. The sampler starts when the first processor (or tracker) is created.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["CarbonSpanProcessor", "EmissionsTracker", "configure", "track_emissions", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "CarbonSpanProcessor":
        from otel_carbon.processor import CarbonSpanProcessor

        return CarbonSpanProcessor
    if name == "configure":
        from otel_carbon.setup import configure

        return configure
    if name in ("EmissionsTracker", "track_emissions"):
        from otel_carbon import track

        return getattr(track, name)
    raise AttributeError(f"module 'otel_carbon' has no attribute {name!r}")
