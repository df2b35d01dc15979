"""Rows of ``emissions.csv`` from our figures: CodeCarbon's columns and units.

See :mod:`otel_carbon.exporters.emissions_csv` for the mapping. Host and zone facts are read
once; a row shares its static part (:class:`CsvRow`) so the file encodes it once.
"""

from __future__ import annotations

import datetime
import functools
import platform
import time
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from otel_carbon import __version__
from otel_carbon import attributes as A

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

KWH = A.JOULES_PER_KWH
_MEMORY_MAX_AGE_S = 1.0
_memory_cache: List[Any] = [0.0, None]  # [monotonic time, (percent, used GiB)]


# -- host and zone facts (read once, only when a row is written) ---------------------------


@functools.lru_cache(maxsize=None)
def host_facts() -> Dict[str, Any]:
    from otel_carbon.host_cpu import logical_cpus, total_memory_bytes
    from otel_carbon.sensors.cpu_model import cpu_model_name

    return {
        "os": platform.platform(),
        "python_version": platform.python_version(),
        "codecarbon_version": f"otel-carbon {__version__}",
        "cpu_count": logical_cpus(),
        "cpu_model": cpu_model_name(),
        "ram_total_size": total_memory_bytes() / 1024**3,
    }


@functools.lru_cache(maxsize=None)
def _country_index() -> Dict[str, Tuple[str, str]]:
    """alpha-2 and alpha-3 -> (alpha-3, name)."""
    from otel_carbon.data import load_table

    index: Dict[str, Tuple[str, str]] = {}
    for row in load_table("grid_intensity_countries"):
        entry = (row["iso3"], row["country_name"])
        index[row["iso3"].upper()] = entry
        if row["iso2"]:
            index[row["iso2"].upper()] = entry
    return index


@functools.lru_cache(maxsize=256)
def zone_columns(zone: str) -> Dict[str, str]:
    """CodeCarbon's location columns for one of our zones (``FR``, ``US-CA``, ``aws:eu-west-1``)."""
    from otel_carbon.data import load_table

    out = {"country_name": "", "country_iso_code": "", "region": "", "cloud_provider": "", "cloud_region": "", "on_cloud": "N"}
    iso3 = ""
    if ":" in zone:
        provider, _, region_name = zone.partition(":")
        out.update(cloud_provider=provider, cloud_region=region_name, on_cloud="Y")
        for row in load_table("cloud_regions"):
            if row["provider"] == provider and row["region"].lower() == region_name.lower():
                iso3 = row["country_iso3"]
                break
    elif zone.upper() in _country_index():
        iso3 = zone.upper()
    else:
        for row in load_table("grid_intensity_subnational"):
            if row["region_code"].upper() == zone.upper():
                iso3 = row["country_iso3"]
                out["region"] = row["region_name"].lower()
                break
    found = _country_index().get(iso3.upper()) if iso3 else None
    if found is not None and found[0] != "WLD":
        out["country_iso_code"], out["country_name"] = found
    return out


_last_timestamp: List[Any] = [None, ""]


def _timestamp(unix_s: float) -> str:
    """CodeCarbon's timestamp: local time, seconds, ISO 8601 without a zone."""
    second = int(unix_s)
    if _last_timestamp[0] != second:
        _last_timestamp[:] = [second, datetime.datetime.fromtimestamp(second).strftime("%Y-%m-%dT%H:%M:%S")]
    return _last_timestamp[1]  # type: ignore[no-any-return]


class CsvRow(Dict[str, Any]):
    """A row: a plain dict of CodeCarbon's columns, which also keeps the part that is the
    same for every row of a tracker (``static``) so the file encodes that part once."""

    __slots__ = ("static",)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in _DYNAMIC:
            self.static = None  # changed: encode it in full
        super().__setitem__(key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self.static = None
        super().update(*args, **kwargs)


#: columns that change from row to row (numbers, or strings without CSV specials)
_DYNAMIC = (
    "timestamp", "run_id", "duration", "emissions", "emissions_rate", "cpu_power", "gpu_power", "ram_power",
    "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed", "cpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb",
)


@functools.lru_cache(maxsize=64)
def _static_columns(project_name: str, experiment_id: str, zone: str, pue: float, tracking_mode: str,
                    gpu_count: int, gpu_model: str) -> Dict[str, Any]:
    static: Dict[str, Any] = {
        "project_name": project_name,
        "experiment_id": experiment_id,
        "water_consumed": 0.0,
        "longitude": "",
        "latitude": "",
        "tracking_mode": tracking_mode,
        "gpu_utilization_percent": 0.0,
        "gpu_count": gpu_count,
        "gpu_model": gpu_model,
        "pue": pue,
        "wue": 0.0,
    }
    static.update(zone_columns(zone))
    static.update(host_facts())
    return static


def codecarbon_row(
    *,
    end_unix_s: float,
    project_name: str,
    run_id: str,
    experiment_id: str,
    duration_s: float,
    cpu_j: float,
    memory_j: float,
    gpu_j: float,
    emissions_g: float,
    zone: str,
    pue: float,
    tracking_mode: str = "process",
    cpu_utilization_percent: float = 0.0,
    gpu_count: int = 0,
    gpu_model: str = "",
) -> CsvRow:
    """One row in CodeCarbon's columns and units from our figures (J, g, s)."""
    duration_s = max(float(duration_s), 0.0)
    emissions_kg = emissions_g / 1000.0
    per_s = 1.0 / duration_s if duration_s > 0 else 0.0
    static = _static_columns(project_name, experiment_id, zone, pue, tracking_mode, gpu_count, gpu_model)
    memory = _memory() or (0.0, 0.0)
    row = CsvRow(static)
    dict.update(
        row,
        timestamp=_timestamp(end_unix_s),
        run_id=run_id,
        duration=duration_s,
        emissions=emissions_kg,
        emissions_rate=emissions_kg * per_s,
        cpu_power=cpu_j * per_s,
        gpu_power=gpu_j * per_s,
        ram_power=memory_j * per_s,
        cpu_energy=cpu_j / KWH,
        gpu_energy=gpu_j / KWH,
        ram_energy=memory_j / KWH,
        energy_consumed=(cpu_j + gpu_j + memory_j) / KWH,
        cpu_utilization_percent=cpu_utilization_percent,
        ram_utilization_percent=memory[0],
        ram_used_gb=memory[1],
    )
    row.static = static
    return row


def _memory() -> Optional[Tuple[float, float]]:
    """(RAM used %, used GiB), read at most once a second (it costs ~30 us a read)."""
    now = time.monotonic()
    if _memory_cache[1] is None or now - _memory_cache[0] > _MEMORY_MAX_AGE_S:
        try:
            from otel_carbon.host_cpu import memory_in_use

            percent, used = memory_in_use()
            _memory_cache[:] = [now, (percent, used / 1024**3)]
        except Exception:  # noqa: BLE001
            return None
    return _memory_cache[1]  # type: ignore[no-any-return]


def row_from_span(span: ReadableSpan, project_name: Optional[str] = None, experiment_id: str = "") -> Optional[Dict[str, Any]]:
    """A row for a span that has carbon figures (the run's figures when it is a tracked
    run with a wider scope), else None."""
    attrs = span.attributes or {}
    if A.ENERGY_TOTAL not in attrs and A.RUN_ENERGY_TOTAL not in attrs:
        return None
    wide = A.RUN_ENERGY_TOTAL in attrs
    cpu_key, mem_key, gpu_key, idle_key, em_key = (
        (A.RUN_ENERGY_CPU, A.RUN_ENERGY_MEMORY, A.RUN_ENERGY_GPU, A.RUN_ENERGY_IDLE, A.RUN_EMISSIONS)
        if wide
        else (A.ENERGY_CPU, A.ENERGY_MEMORY, A.ENERGY_GPU, A.ENERGY_IDLE, A.EMISSIONS)
    )

    def num(key: str) -> float:
        value = attrs.get(key, 0.0)
        return float(value) if isinstance(value, (int, float)) else 0.0

    start_ns = span.start_time or 0
    end_ns = span.end_time or start_ns
    intensity = num(A.INTENSITY)
    service = span.resource.attributes.get("service.name") if span.resource is not None else None
    energy_j = num(cpu_key) + num(idle_key) + num(mem_key) + num(gpu_key)
    emissions_g = num(em_key)
    pue = emissions_g * KWH / (energy_j * intensity) if energy_j > 0 and intensity > 0 else 1.0
    run_id = attrs.get(A.RUN_ID)
    return codecarbon_row(
        end_unix_s=end_ns / 1e9,
        project_name=project_name or str(service or span.name),
        run_id=str(run_id) if run_id else _uuid_of(span.context.trace_id if span.context else 0, span.context.span_id if span.context else 0),
        experiment_id=experiment_id,
        duration_s=(end_ns - start_ns) / 1e9,
        cpu_j=num(cpu_key) + num(idle_key),
        memory_j=num(mem_key),
        gpu_j=num(gpu_key),
        emissions_g=emissions_g,
        zone=str(attrs.get(A.ZONE, "")),
        pue=round(pue, 6),
        tracking_mode="machine" if attrs.get(A.RUN_SCOPE) == A.SCOPE_MACHINE else "process",
    )


def _uuid_of(trace_id: int, span_id: int) -> str:
    import uuid

    if trace_id:
        return str(uuid.UUID(int=trace_id))
    return str(uuid.uuid4())
