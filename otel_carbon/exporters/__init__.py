"""File exporters: CodeCarbon's ``emissions.csv`` and OTLP JSON lines.

* :mod:`.emissions_csv` -- one row per tracked run, with exactly CodeCarbon 3.x's columns
  and units, appended safely by many threads and processes (and by CodeCarbon itself).
* :mod:`.otlp_json` -- spans as OTLP JSON, one ``ExportTraceServiceRequest`` per line (the
  OpenTelemetry Collector file exporter's format), read by ``otel-carbon report``.

Importing this package imports neither submodule.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CODECARBON_COLUMNS", "EmissionsCsvFile", "EmissionsCsvSpanExporter", "OtlpJsonFileSpanExporter"]


def __getattr__(name: str) -> Any:
    if name in ("CODECARBON_COLUMNS", "EmissionsCsvFile", "EmissionsCsvSpanExporter"):
        from otel_carbon.exporters import emissions_csv

        return getattr(emissions_csv, name)
    if name == "OtlpJsonFileSpanExporter":
        from otel_carbon.exporters.otlp_json import OtlpJsonFileSpanExporter

        return OtlpJsonFileSpanExporter
    raise AttributeError(f"module 'otel_carbon.exporters' has no attribute {name!r}")
