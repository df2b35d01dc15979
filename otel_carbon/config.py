"""Environment variables: every name, its default and its parser live here.

Bad values never raise: :func:`env_number` (numbers, within their documented
:data:`RANGES`), :func:`env_choice` and :func:`env_token` (credentials, codes) log one
warning that names the variable and the expected form, and return the documented default.
Code arguments are validated by the callers (they raise ``ValueError``).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Callable, Dict, NamedTuple, Optional, TypeVar

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
"""Seconds between sampler ticks (default: follows the sensors, see
``otel_carbon.sensor_reading.default_interval_s``: 2 for models linear in CPU time, 0.25 for the TDP
curve, 0.1 for hardware counters and GPUs)."""
OTEL_CARBON_MAX_OPEN_SPANS = "OTEL_CARBON_MAX_OPEN_SPANS"
"""Most spans tracked while open, per processor (default 100000); older ones are dropped."""

OTEL_CARBON_SPEEDUPS = "OTEL_CARBON_SPEEDUPS"
"""``on`` (default): the span path's compiled part (``otel_carbon._speedups``) when it was
built; ``off``: the pure-Python span path. Both give the same figures."""

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"
DEFAULT_SAMPLE_INTERVAL_S = 0.1
DEFAULT_MAX_OPEN_SPANS = 100_000


class Range(NamedTuple):
    """The documented range of a numeric variable: ``low`` (excluded when ``low_open``) to
    ``high``, in ``unit``; ``integer`` for whole numbers. A value outside it is a mistake
    (a unit error, a typo) that would flood the host or give absurd figures."""

    low: float
    high: float
    unit: str = ""
    integer: bool = False
    low_open: bool = False

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return f"{kind} {'>' if self.low_open else '>='} {self.low:g} and <= {self.high:g}{unit}"

    def parse(self, raw: str) -> float:
        """The value of ``raw`` when it is a number in range, else ``ValueError``."""
        if not raw.isascii():  # float() would take Arabic-Indic or full-width digits
            raise ValueError(raw)
        value: float = int(raw) if self.integer else float(raw)
        low_ok = value > self.low if self.low_open else value >= self.low
        if not (low_ok and value <= self.high):  # NaN fails both
            raise ValueError(raw)
        return value


def _env(name: str, default: T, parse: Callable[[str], T], expected: str, strict: bool = False) -> T:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError, OverflowError):
        if strict:
            raise ValueError(f"{name}={raw!r} is invalid: expected {expected}") from None
        warn_once(
            _logger,
            f"env:{name}",
            "%s=%r is invalid: expected %s; using the default %s",
            name,
            raw,
            expected,
            "(unset)" if default is None else repr(default),
        )
        return default


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise ValueError(raw)
        return value

    return parse


def env_number(name: str, default: Optional[float], strict: bool = False) -> Optional[float]:
    """The value of numeric variable ``name`` within its documented :data:`RANGES`, else
    ``default`` with one warning naming the variable (``strict``: ``ValueError``)."""
    bounds = RANGES[name]
    return _env(name, default, bounds.parse, bounds.describe(), strict)


def env_choice(name: str, default: str, *choices: str) -> str:
    return _env(name, default, _choice(*choices), "one of " + ", ".join(choices))


def env_str(name: str, default: str) -> str:
    raw = os.environ.get(name)
    return raw.strip() if raw and raw.strip() else default


#: Longest credential accepted from the environment, and longest provider code (zone, region).
MAX_SECRET_CHARS = 1024
MAX_CODE_CHARS = 64


def env_token(name: str, *, secret: bool, strict: bool = False) -> Optional[str]:
    """A credential (``secret``) or a provider code: printable ASCII without whitespace, at
    most :data:`MAX_SECRET_CHARS` (:data:`MAX_CODE_CHARS`) characters; "" when unset; else
    None with one warning naming the variable. A secret's value is never shown: a token with
    a newline would otherwise reach an HTTP header, and then an error message."""
    raw = os.environ.get(name, "").strip()
    if raw == "" or (is_token(raw, MAX_SECRET_CHARS) if secret else is_code(raw)):
        return raw
    if secret:
        expected = f"printable ASCII without spaces or line breaks, at most {MAX_SECRET_CHARS} characters"
        shown = "the value is not shown"
    else:
        expected = f"letters, digits and . _ : + - only, at most {MAX_CODE_CHARS} characters"
        shown = f"got {raw[:MAX_CODE_CHARS]!r}"
    message = f"{name} is not usable: expected {expected} ({shown})"
    if strict:
        raise ValueError(message)
    warn_once(_logger, f"env:{name}", "%s; it is ignored", message)
    return None


_CODE = re.compile(r"[A-Za-z0-9_.:+-]+")


def is_code(text: str) -> bool:
    """A zone or region code: letters, digits and ``. _ : + -``, 1 to MAX_CODE_CHARS long."""
    return 0 < len(text) <= MAX_CODE_CHARS and text.isascii() and _CODE.fullmatch(text) is not None


def is_token(text: str, max_chars: int) -> bool:
    """Printable ASCII with no whitespace, 1 to ``max_chars`` characters."""
    return 0 < len(text) <= max_chars and text.isascii() and text.isprintable() and not any(c.isspace() for c in text)


MAX_SAMPLE_INTERVAL_S = 3600.0
MIN_SAMPLE_INTERVAL_S = 0.01


def sample_interval_s(default: float = DEFAULT_SAMPLE_INTERVAL_S) -> float:
    """``OTEL_CARBON_SAMPLE_INTERVAL``, else ``default`` (the sampler passes the interval its
    sensors need, ``sensor_reading.default_interval_s``)."""
    return env_number(OTEL_CARBON_SAMPLE_INTERVAL, default)  # type: ignore[return-value]


def powercap_root() -> str:
    return env_str(OTEL_CARBON_POWERCAP_ROOT, DEFAULT_POWERCAP_ROOT)


def idle_policy() -> str:
    return env_choice(OTEL_CARBON_IDLE_POLICY, "none", "none", "cpu")


def embodied_g_per_hour() -> Optional[float]:
    return env_number(OTEL_CARBON_EMBODIED_G_PER_HOUR, None)


def speedups() -> bool:
    return env_choice(OTEL_CARBON_SPEEDUPS, "on", "on", "off") == "on"


def max_open_spans() -> int:
    return int(env_number(OTEL_CARBON_MAX_OPEN_SPANS, DEFAULT_MAX_OPEN_SPANS))  # type: ignore[arg-type]


def span_options(idle: Optional[str], max_open: Optional[int], embodied_g_h: Optional[float]) -> "tuple[bool, int, float]":
    """A span processor's ``idle_policy``, ``max_open_spans`` and ``embodied_g_per_hour``,
    each from its variable when None, checked (ValueError names a bad one): whether spans
    get an idle share, the most open spans tracked, embodied g CO2e per second."""
    idle = idle_policy() if idle is None else idle
    if idle not in ("none", "cpu"):
        raise ValueError(f"idle_policy must be 'none' or 'cpu', got {idle!r}")
    max_open = max_open_spans() if max_open is None else max_open
    if not isinstance(max_open, int) or isinstance(max_open, bool) or max_open < 1:
        raise ValueError(f"max_open_spans must be an int >= 1, got {max_open!r}")
    embodied_g_h = embodied_g_per_hour() if embodied_g_h is None else embodied_g_h
    if embodied_g_h is not None and not (isinstance(embodied_g_h, (int, float)) and 0 <= embodied_g_h < float("inf")):
        raise ValueError(f"embodied_g_per_hour must be a number >= 0 (g CO2e per hour), got {embodied_g_h!r}")
    return idle == "cpu", max_open, (embodied_g_h or 0.0) / 3600.0


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


OTEL_CARBON_CSV_SAFE = "OTEL_CARBON_CSV_SAFE"
"""``off`` (default) or ``on``: in ``emissions.csv``, prefix a text cell that starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return with ``'`` so a spreadsheet shows it
as text instead of running it as a formula. Off by default: CodeCarbon writes such cells as
they are, and files shared with it stay byte-compatible."""


OTEL_CARBON_CSV_MAX_DELAY_S = "OTEL_CARBON_CSV_MAX_DELAY_S"
"""Seconds a tracked run's ``emissions.csv`` row may wait to be written with others
(default 0.5). A file's first 10 rows in any second are written when their run ends; past
that (a decorated function called many times a second), rows go in one append at most
this late, at ``otel_carbon.track.flush_rows()``, before a tracker's own ``stop()`` row, and
at exit. ``0``: every row at once."""
DEFAULT_CSV_MAX_DELAY_S = 0.5


def csv_safe() -> bool:
    return env_choice(OTEL_CARBON_CSV_SAFE, "off", "on", "off", "true", "false", "1", "0") in ("on", "true", "1")


def save_to_file_default() -> bool:
    return env_choice(OTEL_CARBON_SAVE_TO_FILE, "true", "true", "false", "1", "0", "yes", "no") in ("true", "1", "yes")


def output_dir_default() -> str:
    """``OTEL_CARBON_OUTPUT_DIR`` when it is a directory, else ``.`` (one warning)."""
    value = env_str(OTEL_CARBON_OUTPUT_DIR, ".")
    if value == "." or os.path.isdir(value):
        return value
    warn_once(_logger, f"env:{OTEL_CARBON_OUTPUT_DIR}", "%s=%r is not a directory; using the default '.'",
              OTEL_CARBON_OUTPUT_DIR, value)
    return "."


def track_scope_default() -> str:
    return env_choice(OTEL_CARBON_TRACK_SCOPE, "process", "process", "span", "machine")


OTEL_CARBON_METRIC_SPANS = "OTEL_CARBON_METRIC_SPANS"
"""Which spans feed ``carbon.span.energy`` / ``carbon.span.emissions``: ``local_root``
(default: spans with no parent or a remote one, i.e. one per request; a parent's figures
already include its children's) or ``all``."""


def metric_spans() -> str:
    return env_choice(OTEL_CARBON_METRIC_SPANS, "local_root", "local_root", "all")


OTEL_CARBON_METRIC_HISTOGRAM = "OTEL_CARBON_METRIC_HISTOGRAM"
"""``off`` (default) or ``on``: also record ``carbon.span.energy_distribution``, a histogram
of each recorded span's energy (p95 per route). It costs one SDK ``Histogram.record`` per
recorded span (~3 us plus ~0.7 us per attribute), on the sampler thread."""
OTEL_CARBON_METRIC_CARDINALITY_LIMIT = "OTEL_CARBON_METRIC_CARDINALITY_LIMIT"
"""Most attribute sets per per-span instrument, the overflow set included (default 2000);
spans with a new set beyond it are summed into the set ``otel.metric.overflow=true``."""
OTEL_CARBON_RECORD_UNSAMPLED = "OTEL_CARBON_RECORD_UNSAMPLED"
"""``on`` (default): where ``configure()`` or the ``carbon`` instrumentor adds the meter, the
tracer provider's sampler is wrapped so that the local root spans it drops are recorded
(``RECORD_ONLY``: seen by span processors, never exported) and the per-route metrics count
every request; ``off``: the sampler is left as it is (metrics then see sampled spans only)."""

DEFAULT_METRIC_CARDINALITY_LIMIT = 2000


def metric_histogram() -> bool:
    return env_choice(OTEL_CARBON_METRIC_HISTOGRAM, "off", "on", "off", "true", "false", "1", "0") in ("on", "true", "1")


def metric_cardinality_limit() -> int:
    return int(env_number(OTEL_CARBON_METRIC_CARDINALITY_LIMIT, DEFAULT_METRIC_CARDINALITY_LIMIT))  # type: ignore[arg-type]


def record_unsampled() -> bool:
    return env_choice(OTEL_CARBON_RECORD_UNSAMPLED, "on", "on", "off", "true", "false", "1", "0") in ("on", "true", "1")


# -- Documented ranges (docs/configuration.md shows this table) ------------------------------
#: Per-host watts: a constant draw, an idle draw or a CPU's TDP above this is a unit error.
MAX_HOST_POWER_W = 100_000.0
#: Highest grid intensity accepted (g CO2e/kWh); coal, the dirtiest source, is ~1,000.
MAX_INTENSITY_G_PER_KWH = 2000.0
#: Live refreshes: at most one a minute, at least one a day.
MIN_INTENSITY_REFRESH_S = 60.0
MAX_INTENSITY_REFRESH_S = 86_400.0

RANGES: Dict[str, Range] = {
    OTEL_CARBON_SAMPLE_INTERVAL: Range(MIN_SAMPLE_INTERVAL_S, MAX_SAMPLE_INTERVAL_S, "s"),
    OTEL_CARBON_MAX_OPEN_SPANS: Range(1, 10_000_000, integer=True),
    OTEL_CARBON_CPU_TDP_W: Range(0, 10_000.0, "W", low_open=True),
    OTEL_CARBON_POWER_W: Range(0, MAX_HOST_POWER_W, "W", low_open=True),
    OTEL_CARBON_IDLE_POWER_W: Range(0, MAX_HOST_POWER_W, "W"),
    OTEL_CARBON_EMBODIED_G_PER_HOUR: Range(0, 100_000.0, "g/h"),
    OTEL_CARBON_INTENSITY: Range(0, MAX_INTENSITY_G_PER_KWH, "g CO2e/kWh"),
    OTEL_CARBON_PUE: Range(1, 5, ""),
    OTEL_CARBON_INTENSITY_REFRESH: Range(MIN_INTENSITY_REFRESH_S, MAX_INTENSITY_REFRESH_S, "s"),
    OTEL_CARBON_INTENSITY_TIMEOUT: Range(0.1, 60.0, "s"),
    OTEL_CARBON_METRIC_CARDINALITY_LIMIT: Range(1, 100_000, integer=True),
    OTEL_CARBON_CSV_MAX_DELAY_S: Range(0, 60.0, "s"),
}
