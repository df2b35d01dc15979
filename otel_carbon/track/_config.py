"""What a tracker or a decorated function is configured with, validated once."""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

from otel_carbon import config
from otel_carbon import attributes as R
from otel_carbon._log import warn_once
from otel_carbon.intensity.model import Intensity

_logger = logging.getLogger("otel_carbon")

#: CodeCarbon arguments accepted for drop-in migration and ignored (see the table in docs/codecarbon.md).
_CODECARBON_IGNORED = frozenset(
    """offline log_level measure_power_secs gpu_ids emissions_endpoint experiment_name
    co2_signal_api_token electricitymaps_api_token api_call_interval api_endpoint api_key
    allow_multiple_runs default_cpu_power force_cpu_power force_ram_power rapl_include_dram
    rapl_prefer_psys force_mode_cpu_load wue logging_logger prometheus_url output_handlers
    save_to_api save_to_logger save_to_prometheus save_to_logfire country_2letter_iso_code
    on_csv_write tracking_mode""".split()
)



class _Config:
    """What a tracker or a decorated function was configured with (validated once)."""

    __slots__ = ("name", "project_name", "experiment_id", "scope", "csv", "intensity", "provider", "sampler", "on_result",
                 "attach", "idle")

    def __init__(self, name: Optional[str], project_name: Optional[str], kwargs: Dict[str, Any], attach: bool = True) -> None:
        opts = dict(kwargs)
        scope = opts.pop("scope", None)
        mode = opts.get("tracking_mode")
        if scope is None and mode is not None:
            if mode not in ("process", "machine"):
                raise ValueError(f"tracking_mode must be 'process' or 'machine', got {mode!r}")
            scope = mode
        if scope is None:
            scope = config.track_scope_default()
        if scope not in R.SCOPES:
            raise ValueError(f"scope must be one of {', '.join(R.SCOPES)}, got {scope!r}")
        if opts.get("on_csv_write", "append") != "append":
            raise ValueError(f"on_csv_write must be 'append' (rows are only ever appended), got {opts['on_csv_write']!r}")
        self.scope = scope
        self.project_name = project_name if project_name is not None else (name or "otel_carbon")
        self.name = name or self.project_name
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        experiment_id = opts.pop("experiment_id", None)
        self.experiment_id = "" if experiment_id is None else str(experiment_id)
        self.on_result = opts.pop("on_result", None)
        if self.on_result is not None and not callable(self.on_result):
            raise ValueError(f"on_result must be callable, got {self.on_result!r}")
        self.provider = opts.pop("tracer_provider", None)
        self.sampler = opts.pop("sampler", None)
        self.attach = attach
        self.idle = config.idle_policy() == "cpu"
        self.intensity = _intensity_override(opts)
        self.csv = _csv_file(opts)
        for key in opts:
            if key not in _CODECARBON_IGNORED:
                raise ValueError(f"unknown argument {key!r}")
            if key.startswith("save_to_") and opts[key]:
                warn_once(_logger, f"cc-arg:{key}", "otel_carbon: %s is not supported; export the spans "
                          "and metrics through OpenTelemetry instead", key)


def _intensity_override(opts: Dict[str, Any]) -> Optional[Intensity]:
    country = opts.pop("country_iso_code", None)
    region = opts.pop("region", None)
    provider = opts.pop("cloud_provider", None)
    cloud_region = opts.pop("cloud_region", None)
    pue = opts.pop("pue", None)
    if (provider is None) != (cloud_region is None):
        raise ValueError("cloud_provider and cloud_region must be given together")
    if country is None and region is None and provider is None and pue is None:
        return None
    from otel_carbon.intensity.resolve import resolve_intensity

    for argument, value in (("country_iso_code", country), ("region", region), ("cloud_provider", provider), ("cloud_region", cloud_region)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{argument} must be a non-empty string, got {value!r}")
    try:
        return resolve_intensity(
            None, country=country, region=region, cloud=(provider, cloud_region) if provider else None, pue=pue
        )
    except ValueError as exc:
        named = "region" if region else "country_iso_code" if country else "cloud_region" if provider else "pue"
        raise ValueError(f"{named}: {exc}") from None


def _csv_file(opts: Dict[str, Any]) -> Any:
    save = opts.pop("save_to_file", None)
    output_dir = opts.pop("output_dir", None)
    output_file = opts.pop("output_file", None)
    if save is None:
        save = config.save_to_file_default()
    if not save:
        return None
    output_dir = output_dir if output_dir is not None else config.output_dir_default()
    output_file = output_file if output_file is not None else "emissions.csv"
    if not isinstance(output_file, str) or not output_file or os.sep in output_file:
        raise ValueError(f"output_file must be a file name, got {output_file!r}")
    if not os.path.isdir(output_dir):
        raise ValueError(f"output_dir {output_dir!r} is not a directory")
    from otel_carbon.exporters.emissions_csv import EmissionsCsvFile

    return EmissionsCsvFile(os.path.join(output_dir, output_file))
