"""Live carbon-intensity providers: Electricity Maps, WattTime, UK Carbon Intensity.

Each provider has ``name``, ``default_refresh_s`` and ``fetch() -> LiveReading``, which
makes one blocking request (called only from the refresher thread or the CLI, never on a
span's path) and raises :class:`ProviderError` on any failure. Every provider takes a
``base_url`` so tests (and proxies) can point it elsewhere.

Credentials are plain constructor arguments here; :mod:`otel_carbon.intensity.source`
reads them from the environment only. They are kept out of ``repr`` and of every message.
"""

from __future__ import annotations

import base64
import math
import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Optional, Tuple

from otel_carbon.config import MAX_CODE_CHARS, MAX_SECRET_CHARS, is_code, is_token
from otel_carbon.intensity._http import ProviderError, build_opener, get_json

# 1 lb = 453.59237 g (exact, by definition) and 1 MWh = 1000 kWh.
G_PER_KWH_PER_LB_PER_MWH = 453.59237 / 1000.0
MAX_PLAUSIBLE_G_PER_KWH = 3000.0  # far above any grid; a larger value is a unit error


@dataclass(frozen=True)
class LiveReading:
    """One value from a live provider, already in g CO2e/kWh."""

    g_per_kwh: float
    zone: str
    source: str
    as_of: Optional[str] = None  # the provider's timestamp of the datum (ISO 8601)

    @property
    def year(self) -> Optional[int]:
        parsed = parse_time(self.as_of)
        return parsed.year if parsed else None


def parse_time(text: Any) -> Optional[datetime]:
    """ISO 8601 (``2024-05-01T10:00:00.000Z``, ``2018-01-20T12:00Z``) to aware UTC, or None."""
    if not isinstance(text, str) or not text:
        return None
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)


def _intensity(value: Any, what: str) -> float:
    """A plausible g/kWh number from a JSON value, else ``malformed``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProviderError("malformed", f"{what} is not a number")
    number = float(value)
    if not (math.isfinite(number) and 0.0 <= number < MAX_PLAUSIBLE_G_PER_KWH):
        raise ProviderError("malformed", f"{what} {number!r} is outside [0, {MAX_PLAUSIBLE_G_PER_KWH:g}) g/kWh")
    return number


def _text(value: Any, fallback: Optional[str]) -> Optional[str]:
    """A provider-supplied code (zone, region, basis) when it is a short plain code, else
    ``fallback``: it lands on every span, so a 900 KB or binary ``zone`` must not."""
    return value if isinstance(value, str) and is_code(value) else fallback


def _as_of(value: Any) -> Optional[str]:
    """A provider timestamp that parses as ISO 8601 (and so is short and plain), else None."""
    return value if isinstance(value, str) and len(value) <= MAX_CODE_CHARS and parse_time(value) else None


def _check_token(name: str, value: Any) -> None:
    """Credentials given in code: ValueError naming the argument, never showing its value."""
    if not (isinstance(value, str) and is_token(value, MAX_SECRET_CHARS)):
        raise ValueError(
            f"{name} must be printable ASCII without spaces or line breaks, 1 to {MAX_SECRET_CHARS} characters"
        )


def _check_code(name: str, value: Any) -> None:
    if not (isinstance(value, str) and is_code(value)):
        raise ValueError(f"{name} must be a code of letters, digits and . _ : + - (1 to {MAX_CODE_CHARS}), got {repr(value)[:80]}")


def _object(value: Any, what: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ProviderError("malformed", f"{what} is not an object")
    return value


class _Provider:
    name = ""
    default_base_url = ""
    default_refresh_s = 600.0

    def __init__(self, base_url: Optional[str], timeout_s: float) -> None:
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        parts = urllib.parse.urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError(f"base_url must be an http:// or https:// URL without a query, got {self.base_url!r}")
        self.timeout_s = float(timeout_s)
        self._opener = build_opener()

    def _get(self, path: str, params: Optional[Dict[str, str]], headers: Dict[str, str]) -> Any:
        url = self.base_url + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        return get_json(self._opener, url, headers, self.timeout_s)

    @property
    def sends_credentials_in_clear(self) -> bool:
        """True for plain http to a host other than loopback (a proxy or a mistake)."""
        parts = urllib.parse.urlsplit(self.base_url)
        return parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1")

    def __repr__(self) -> str:  # never show credentials
        return f"{type(self).__name__}(base_url={self.base_url!r})"


class ElectricityMaps(_Provider):
    """Electricity Maps v3 ``/carbon-intensity/latest?zone=..`` with the ``auth-token`` header.

    Response: ``{"zone", "carbonIntensity", "datetime", "updatedAt", "emissionFactorType",
    "isEstimated", ...}``; ``carbonIntensity`` is g CO2eq/kWh (lifecycle by default, the
    same basis as the bundled country data).
    """

    name = "electricitymaps"
    default_base_url = "https://api.electricitymap.org/v3"
    default_refresh_s = 600.0  # the data is hourly

    def __init__(self, token: str, zone: str, *, base_url: Optional[str] = None, timeout_s: float = 5.0) -> None:
        super().__init__(base_url, timeout_s)
        _check_token("token", token)
        _check_code("zone", zone)
        self._token = token
        self.zone = zone

    def fetch(self) -> LiveReading:
        answer = self._get("/carbon-intensity/latest", {"zone": self.zone}, {"auth-token": self._token})
        doc = _object(answer, "response")
        value = _intensity(doc.get("carbonIntensity"), "carbonIntensity")
        zone = _text(doc.get("zone"), self.zone)
        basis = _text(doc.get("emissionFactorType"), "lifecycle")
        estimated = ", estimated" if doc.get("isEstimated") is True else ""
        source = f"Electricity Maps v3 carbon-intensity/latest ({basis}{estimated})"
        return LiveReading(value, zone, source, _as_of(doc.get("datetime")))


class WattTime(_Provider):
    """WattTime v3: ``/login`` (HTTP basic auth) for a token, then ``/v3/forecast``.

    We use the ``co2_moer`` forecast (``{"data": [{"point_time", "value"}], "meta":
    {"units": "lbs_co2_per_mwh", ...}}``) and take the point covering now, converted from
    lb/MWh to g/kWh. The ``signal-index`` endpoint is a 0-100 percentile, not an
    intensity, so it is never used. MOER is a *marginal* rate (the emissions of the plant
    that answers a change in load), not an average: it is the right signal for shifting
    load, and is labelled as such in ``source``.

    The token lives 30 minutes; we log in again after 25 minutes, or once after a 401.
    """

    name = "watttime"
    default_base_url = "https://api.watttime.org"
    default_refresh_s = 300.0  # the forecast has 5-minute points
    token_ttl_s = 25 * 60.0

    def __init__(
        self,
        username: str,
        password: str,
        region: str,
        *,
        base_url: Optional[str] = None,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        super().__init__(base_url, timeout_s)
        _check_token("username", username)
        _check_token("password", password)
        _check_code("region", region)
        self._basic = "Basic " + base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")
        self.region = region
        self._clock = clock
        self._now = now
        self._token: Optional[str] = None
        self._token_at = 0.0

    def _login(self) -> str:
        try:
            doc = self._get("/login", None, {"Authorization": self._basic})
        except ProviderError as exc:
            raise ProviderError(exc.kind, "login: " + exc.detail, exc.retry_after_s) from None
        token = doc.get("token") if isinstance(doc, dict) else None
        if not (isinstance(token, str) and is_token(token, MAX_SECRET_CHARS * 16)):
            raise ProviderError("malformed", "login: no token in the response")
        self._token, self._token_at = token, self._clock()
        return token

    def _forecast(self) -> Any:
        if self._token is None or self._clock() - self._token_at > self.token_ttl_s:
            self._login()
        params = {"region": self.region, "signal_type": "co2_moer"}
        try:
            return self._get("/v3/forecast", params, {"Authorization": f"Bearer {self._token}"})
        except ProviderError as exc:
            if exc.kind != "http_401":
                raise
        self._token = None  # expired or revoked early: one new login, one retry
        self._login()
        return self._get("/v3/forecast", params, {"Authorization": f"Bearer {self._token}"})

    def fetch(self) -> LiveReading:
        doc = _object(self._forecast(), "response")
        meta = _object(doc.get("meta", {}), "meta")
        units = meta.get("units", "lbs_co2_per_mwh")
        if units != "lbs_co2_per_mwh":
            raise ProviderError("malformed", f"unexpected units {units!r} (expected lbs_co2_per_mwh)")
        point_time, value = self._current_point(doc.get("data"))
        g_per_kwh = _intensity(value * G_PER_KWH_PER_LB_PER_MWH, "forecast value")
        region = _text(meta.get("region"), self.region)
        source = "WattTime v3 forecast co2_moer (marginal; lb/MWh converted to g/kWh)"
        return LiveReading(g_per_kwh, region, source, _as_of(point_time))

    def _current_point(self, data: Any) -> Tuple[str, float]:
        """The last point at or before now (the forecast starts at the current interval)."""
        if not isinstance(data, list) or not data:
            raise ProviderError("malformed", "forecast data is empty or not a list")
        points: List[Tuple[datetime, str, float]] = []
        for item in data:
            item = _object(item, "forecast point")
            when = parse_time(item.get("point_time"))
            value = item.get("value")
            if when is None or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ProviderError("malformed", "forecast point without point_time or numeric value")
            points.append((when, item["point_time"], float(value)))
        points.sort(key=lambda p: p[0])
        now = self._now()
        past = [p for p in points if p[0] <= now]
        chosen = past[-1] if past else points[0]
        return chosen[1], chosen[2]


class UKCarbonIntensity(_Provider):
    """NESO's Carbon Intensity API for Great Britain: ``GET /intensity`` (no key).

    Response: ``{"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}``.
    ``actual`` is used when published, else ``forecast``; ``index`` is a band word, not a
    number. Values are g CO2/kWh of generation (operational, not lifecycle); the API
    data is CC BY 4.0.
    """

    name = "uk"
    default_base_url = "https://api.carbonintensity.org.uk"
    default_refresh_s = 900.0  # half-hourly data

    def __init__(self, *, base_url: Optional[str] = None, timeout_s: float = 5.0) -> None:
        super().__init__(base_url, timeout_s)

    def fetch(self) -> LiveReading:
        doc = _object(self._get("/intensity", None, {}), "response")
        data = doc.get("data")
        if not isinstance(data, list) or not data:
            raise ProviderError("malformed", "data is empty or not a list")
        period = _object(data[0], "data[0]")
        values = _object(period.get("intensity"), "intensity")
        actual = values.get("actual")
        if actual is not None:
            value, kind = _intensity(actual, "intensity.actual"), "actual"
        else:
            value, kind = _intensity(values.get("forecast"), "intensity.forecast"), "forecast"
        source = f"UK Carbon Intensity API /intensity ({kind}; NESO, CC BY 4.0)"
        return LiveReading(value, "GB", source, _as_of(period.get("from")))


PROVIDERS = {cls.name: cls for cls in (ElectricityMaps, WattTime, UKCarbonIntensity)}
