"""Environment variables: every name, its default and its parser live here.

Bad values never raise: :func:`env_float` and friends log one warning that names the
variable and the expected form, and return the documented default. Code arguments are
validated by the callers (they raise ``ValueError``).
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional, TypeVar

from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")
T = TypeVar("T")

# Sensors
OTEL_CARBON_POWERCAP_ROOT = "OTEL_CARBON_POWERCAP_ROOT"
"""Root of the powercap sysfs tree (default ``/sys/class/powercap``)."""
OTEL_CARBON_NVML = "OTEL_CARBON_NVML"
"""``auto`` (default): use NVIDIA GPUs when NVML loads; ``off``: never load NVML."""
OTEL_CARBON_CPU_TDP_W = "OTEL_CARBON_CPU_TDP_W"
"""CPU package TDP in watts for the TDP curve model (overrides the bundled table)."""
OTEL_CARBON_CPU_MODEL = "OTEL_CARBON_CPU_MODEL"
"""``auto`` (default), ``ccf`` (per-vCPU min/max watts) or ``tdp`` (TDP curve)."""
OTEL_CARBON_POWER_W = "OTEL_CARBON_POWER_W"
"""A constant host power draw in watts; replaces every CPU/memory sensor."""
OTEL_CARBON_IDLE_POWER_W = "OTEL_CARBON_IDLE_POWER_W"
"""Static (idle) host power in watts, for measured counters (default: 0, see docs/attribution.md)."""
OTEL_CARBON_IDLE_POLICY = "OTEL_CARBON_IDLE_POLICY"
"""``none`` (default): idle energy is reported, not put on spans; ``cpu``: spans also
carry a share of idle energy (``carbon.energy.idle``) in proportion to their CPU time."""

OTEL_CARBON_EMBODIED_G_PER_HOUR = "OTEL_CARBON_EMBODIED_G_PER_HOUR"
"""The host's embodied carbon rate in g CO2e per hour (e.g. manufacturing emissions over
the server's lifetime); spans then carry their share as ``carbon.embodied``. Default: off."""

# Sampler and processor
OTEL_CARBON_SAMPLE_INTERVAL = "OTEL_CARBON_SAMPLE_INTERVAL"
"""Seconds between sampler ticks (default 0.1)."""
OTEL_CARBON_MAX_OPEN_SPANS = "OTEL_CARBON_MAX_OPEN_SPANS"
"""Most spans tracked while open, per processor (default 100000); older ones are dropped."""

OTEL_CARBON_SPEEDUPS = "OTEL_CARBON_SPEEDUPS"
"""``on`` (default): the span path's compiled part (``otel_carbon._speedups``) when it was
built; ``off``: the pure-Python span path. Both give the same figures."""

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
DEFAULT_SAMPLE_INTERVAL_S = 0.1
DEFAULT_MAX_OPEN_SPANS = 100_000


def _env(name: str, default: T, parse: Callable[[str], T], expected: str) -> T:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError):
        warn_once(
            _logger,
            f"env:{name}",
            "%s=%r is invalid: expected %s; using the default %r",
            name,
            raw,
            expected,
            default,
        )
        return default


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not (value > 0 and value < float("inf")):
        raise ValueError(raw)
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not (value >= 0 and value < float("inf")):
        raise ValueError(raw)
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(raw)
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise ValueError(raw)
        return value

    return parse


def env_positive_float(name: str, default: Optional[float]) -> Optional[float]:
    return _env(name, default, _positive_float, "a number > 0")


def env_non_negative_float(name: str, default: Optional[float]) -> Optional[float]:
    return _env(name, default, _non_negative_float, "a number >= 0")


def env_positive_int(name: str, default: int) -> int:
    return _env(name, default, _positive_int, "a whole number > 0")


def env_choice(name: str, default: str, *choices: str) -> str:
    return _env(name, default, _choice(*choices), "one of " + ", ".join(choices))


def env_str(name: str, default: str) -> str:
    raw = os.environ.get(name)
    return raw.strip() if raw and raw.strip() else default


MAX_SAMPLE_INTERVAL_S = 3600.0


def _interval(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= MAX_SAMPLE_INTERVAL_S:
        raise ValueError(raw)
    return value


def sample_interval_s() -> float:
    return _env(
        OTEL_CARBON_SAMPLE_INTERVAL,
        DEFAULT_SAMPLE_INTERVAL_S,
        _interval,
        f"a number of seconds > 0 and <= {MAX_SAMPLE_INTERVAL_S:g}",
    )


def powercap_root() -> str:
    return env_str(OTEL_CARBON_POWERCAP_ROOT, DEFAULT_POWERCAP_ROOT)


def idle_policy() -> str:
    return env_choice(OTEL_CARBON_IDLE_POLICY, "none", "none", "cpu")


def embodied_g_per_hour() -> Optional[float]:
    return env_non_negative_float(OTEL_CARBON_EMBODIED_G_PER_HOUR, None)


def speedups() -> bool:
    return env_choice(OTEL_CARBON_SPEEDUPS, "on", "on", "off") == "on"


def max_open_spans() -> int:
    return env_positive_int(OTEL_CARBON_MAX_OPEN_SPANS, DEFAULT_MAX_OPEN_SPANS)


# -- Carbon intensity (appended by the intensity module; see otel_carbon/intensity/) --------
OTEL_CARBON_INTENSITY = "OTEL_CARBON_INTENSITY"
"""A fixed grid intensity in g CO2e/kWh (number >= 0); beats every location setting."""
OTEL_CARBON_REGION = "OTEL_CARBON_REGION"
"""Sub-national region of the bundled table: ``US-CA``, ``CA-QC``, ``CN-GD``, ``SE3``..."""
OTEL_CARBON_COUNTRY = "OTEL_CARBON_COUNTRY"
"""Country as ISO 3166 alpha-2 or alpha-3 code, case-insensitive (``FR``, ``fra``)."""
OTEL_CARBON_PUE = "OTEL_CARBON_PUE"
"""Power Usage Effectiveness (number >= 1) applied to every zone; default: the cloud
provider's average for cloud regions, 1.0 elsewhere."""
OTEL_CARBON_INTENSITY_PROVIDER = "OTEL_CARBON_INTENSITY_PROVIDER"
"""Live intensity: ``none`` (default, no network), ``electricitymaps``, ``watttime``, ``uk``."""
OTEL_CARBON_INTENSITY_PROVIDER_URL = "OTEL_CARBON_INTENSITY_PROVIDER_URL"
"""Base URL of the live provider's API (default: the provider's public endpoint)."""
OTEL_CARBON_INTENSITY_REFRESH = "OTEL_CARBON_INTENSITY_REFRESH"
"""Seconds between live refreshes (default per provider: 600 Electricity Maps, 300 WattTime,
900 UK)."""
OTEL_CARBON_INTENSITY_TIMEOUT = "OTEL_CARBON_INTENSITY_TIMEOUT"
"""Seconds before a live request is abandoned (default 5)."""
OTEL_CARBON_ELECTRICITYMAPS_TOKEN = "OTEL_CARBON_ELECTRICITYMAPS_TOKEN"
"""Electricity Maps API key (sent as the ``auth-token`` header; never logged)."""
OTEL_CARBON_ELECTRICITYMAPS_ZONE = "OTEL_CARBON_ELECTRICITYMAPS_ZONE"
"""Electricity Maps zone (``DE``, ``US-CAL-CISO``); default: the resolved country's alpha-2."""
OTEL_CARBON_WATTTIME_USERNAME = "OTEL_CARBON_WATTTIME_USERNAME"
"""WattTime account name (HTTP basic auth on ``/login``; never logged)."""
OTEL_CARBON_WATTTIME_PASSWORD = "OTEL_CARBON_WATTTIME_PASSWORD"
"""WattTime password (never logged)."""
OTEL_CARBON_WATTTIME_REGION = "OTEL_CARBON_WATTTIME_REGION"
"""WattTime grid region (``CAISO_NORTH``); required with the ``watttime`` provider."""

DEFAULT_INTENSITY_TIMEOUT_S = 5.0


# -- Metrics (appended by the meter; see otel_carbon/metrics.py) --------------------------
OTEL_CARBON_METRIC_SPAN_ATTRIBUTES = "OTEL_CARBON_METRIC_SPAN_ATTRIBUTES"
"""Comma-separated span attributes to add to the per-span metrics' attributes (beside the
span name, ``http.route``, ``http.request.method``, ``rpc.service`` and ``rpc.method``).
Only low-cardinality attributes: URL and ``*.id`` attributes are refused with a warning."""


def metric_span_attributes() -> "tuple[str, ...]":
    raw = os.environ.get(OTEL_CARBON_METRIC_SPAN_ATTRIBUTES, "")
    return tuple(name.strip() for name in raw.split(",") if name.strip())


# -- Zero-code and configure() (appended by otel_carbon.instrumentor / otel_carbon.setup) --
OTEL_CARBON_METRICS = "OTEL_CARBON_METRICS"
"""``on`` (default): the ``carbon`` instrumentor (``opentelemetry-instrument``) and
``otel_carbon.configure()`` also add the meter instruments; ``off``: span attributes only.
A ``metrics=`` argument in code beats it."""

DEFAULT_METRICS = "on"


def metrics_enabled() -> bool:
    return env_choice(OTEL_CARBON_METRICS, DEFAULT_METRICS, "on", "off", "true", "false", "1", "0") in ("on", "true", "1")


# -- Tracking API and emissions.csv (appended by the tracking module; see otel_carbon/track.py)
OTEL_CARBON_SAVE_TO_FILE = "OTEL_CARBON_SAVE_TO_FILE"
"""``true`` (default) or ``false``: whether trackers append a row to ``emissions.csv`` when
their ``save_to_file`` argument is not given (CodeCarbon's default is to write the file)."""
OTEL_CARBON_OUTPUT_DIR = "OTEL_CARBON_OUTPUT_DIR"
"""Folder of ``emissions.csv`` when a tracker's ``output_dir`` is not given (default ``.``)."""
OTEL_CARBON_TRACK_SCOPE = "OTEL_CARBON_TRACK_SCOPE"
"""What a tracker's result counts when its ``scope`` is not given: ``process`` (default: the
whole process's CPU time while it ran, like CodeCarbon's process mode), ``span`` (only the
work of the tracked span: correct when tracked calls overlap in one process) or ``machine``
(everything the host drew, idle included, like CodeCarbon's machine mode)."""


def save_to_file_default() -> bool:
    return env_choice(OTEL_CARBON_SAVE_TO_FILE, "true", "true", "false", "1", "0", "yes", "no") in ("true", "1", "yes")


def output_dir_default() -> str:
    return env_str(OTEL_CARBON_OUTPUT_DIR, ".")


def track_scope_default() -> str:
    return env_choice(OTEL_CARBON_TRACK_SCOPE, "process", "process", "span", "machine")


OTEL_CARBON_METRIC_SPANS = "OTEL_CARBON_METRIC_SPANS"
"""Which spans feed ``carbon.span.energy`` / ``carbon.span.emissions``: ``local_root``
(default: spans with no parent or a remote one, i.e. one per request; a parent's figures
already include its children's) or ``all``."""


def metric_spans() -> str:
    return env_choice(OTEL_CARBON_METRIC_SPANS, "local_root", "local_root", "all")
