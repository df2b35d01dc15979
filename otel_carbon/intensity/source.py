"""What the sampler reads every tick: an object with ``current() -> Intensity``.

:func:`intensity_source` resolves the bundled intensity (see :mod:`.resolve`) and, only if
``OTEL_CARBON_INTENSITY_PROVIDER`` names a live provider, wraps it in a background
refresher. Without that variable this module opens no connection at all.

Live provider configuration comes from the environment only (credentials included):

* ``electricitymaps``: ``OTEL_CARBON_ELECTRICITYMAPS_TOKEN``; zone from
  ``OTEL_CARBON_ELECTRICITYMAPS_ZONE``, else the resolved country's alpha-2 code.
* ``watttime``: ``OTEL_CARBON_WATTTIME_USERNAME``, ``..._PASSWORD``, ``..._REGION``.
* ``uk``: nothing (Great Britain only).
* all: ``OTEL_CARBON_INTENSITY_PROVIDER_URL``, ``OTEL_CARBON_INTENSITY_REFRESH``,
  ``OTEL_CARBON_INTENSITY_TIMEOUT``.

An incomplete configuration logs one warning naming the missing variable and keeps the
bundled value. A fixed ``OTEL_CARBON_INTENSITY`` / ``intensity_g_per_kwh`` wins over a
live provider (it is the most explicit setting), which is also logged once.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Optional, Union

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon.intensity.live import LiveIntensitySource
from otel_carbon.intensity.model import CUSTOM_ZONE, Intensity
from otel_carbon.intensity.providers import PROVIDERS, ElectricityMaps, UKCarbonIntensity, WattTime
from otel_carbon.intensity.resolve import CloudArg, Resolution, resolve

_logger = logging.getLogger("otel_carbon")

PROVIDER_NAMES = ("none", *PROVIDERS)


class StaticIntensitySource:
    """A bundled or fixed intensity that never changes; start/shutdown do nothing."""

    live = False

    def __init__(self, value: Intensity) -> None:
        self._value = value

    def current(self) -> Intensity:
        return self._value

    def start(self) -> "StaticIntensitySource":
        return self

    def shutdown(self, timeout_s: float = 0.0) -> bool:
        return True


IntensitySource = Union[StaticIntensitySource, LiveIntensitySource]


def intensity_source(
    resource_attributes: Optional[Mapping[str, Any]] = None,
    *,
    country: Optional[str] = None,
    region: Optional[str] = None,
    cloud: Optional[CloudArg] = None,
    intensity_g_per_kwh: Optional[float] = None,
    pue: Optional[float] = None,
    strict: bool = False,
    start: bool = True,
) -> IntensitySource:
    """The intensity source for this process: static (bundled) or live (refreshed).

    Arguments are those of :func:`~otel_carbon.intensity.resolve_intensity`. With
    ``start=True`` (default) a live source's thread is started; call ``shutdown()`` when
    done (the sampler does, on its own shutdown). ``strict=True`` raises ``ValueError``
    for bad environment values instead of logging them.
    """
    resolution = resolve(
        resource_attributes,
        country=country,
        region=region,
        cloud=cloud,
        intensity_g_per_kwh=intensity_g_per_kwh,
        pue=pue,
        strict=strict,
    )
    provider = live_provider_from_env(resolution, strict=strict)
    if provider is None:
        return StaticIntensitySource(resolution.intensity)
    refresh_s = config.env_number(config.OTEL_CARBON_INTENSITY_REFRESH, None, strict)
    source = LiveIntensitySource(provider, resolution.intensity, refresh_s=refresh_s)
    return source.start() if start else source


def live_provider_from_env(resolution: Resolution, *, strict: bool = False) -> Optional[Any]:
    """The live provider configured in the environment, or None (no network)."""
    provider = _provider_from_env(resolution, strict)
    if provider is not None and provider.name != "uk" and provider.sends_credentials_in_clear:
        warn_once(
            _logger,
            "intensity:live:http",
            "otel_carbon: %s is a plain http:// URL; the %s credentials travel unencrypted",
            config.OTEL_CARBON_INTENSITY_PROVIDER_URL,
            provider.name,
        )
    return provider


def _provider_from_env(resolution: Resolution, strict: bool) -> Optional[Any]:
    name = config.env_str(config.OTEL_CARBON_INTENSITY_PROVIDER, "none").lower()
    if name == "none":
        return None
    if name not in PROVIDERS:
        _problem(
            f"{config.OTEL_CARBON_INTENSITY_PROVIDER}={name!r} is invalid: expected one of "
            + ", ".join(PROVIDER_NAMES),
            strict,
        )
        return None
    if resolution.intensity.zone == CUSTOM_ZONE:
        warn_once(
            _logger,
            "intensity:live:fixed",
            "otel_carbon: a fixed intensity is set (%s); the live provider %s is not used",
            resolution.origin,
            name,
        )
        return None
    base_url = config.env_str(config.OTEL_CARBON_INTENSITY_PROVIDER_URL, "") or None
    timeout_s = config.env_number(config.OTEL_CARBON_INTENSITY_TIMEOUT, config.DEFAULT_INTENSITY_TIMEOUT_S, strict)
    assert timeout_s is not None
    if name == "electricitymaps":
        token = config.env_token(config.OTEL_CARBON_ELECTRICITYMAPS_TOKEN, secret=True, strict=strict)
        zone = config.env_token(config.OTEL_CARBON_ELECTRICITYMAPS_ZONE, secret=False, strict=strict)
        if token is None or zone is None:
            return None  # refused, and said so
        zone = zone or resolution.country_iso2 or ""
        if not token:
            return _missing(name, config.OTEL_CARBON_ELECTRICITYMAPS_TOKEN, strict)
        if not zone:
            return _missing(name, config.OTEL_CARBON_ELECTRICITYMAPS_ZONE + " (or a country/region)", strict)
        return _build(ElectricityMaps, strict, token, zone, base_url=base_url, timeout_s=timeout_s)
    if name == "watttime":
        values = {
            var: config.env_token(var, secret=var != config.OTEL_CARBON_WATTTIME_REGION, strict=strict)
            for var in (
                config.OTEL_CARBON_WATTTIME_USERNAME,
                config.OTEL_CARBON_WATTTIME_PASSWORD,
                config.OTEL_CARBON_WATTTIME_REGION,
            )
        }
        if None in values.values():
            return None  # refused, and said so
        for var, value in values.items():
            if not value:
                return _missing(name, var, strict)
        username, password, region = values.values()
        return _build(WattTime, strict, username, password, region, base_url=base_url, timeout_s=timeout_s)
    if resolution.country_iso2 not in (None, "GB"):
        warn_once(
            _logger,
            "intensity:live:uk-zone",
            "otel_carbon: the uk provider covers Great Britain only, but the configured location is %s",
            resolution.intensity.zone,
        )
    return _build(UKCarbonIntensity, strict, base_url=base_url, timeout_s=timeout_s)


def _build(cls: Any, strict: bool, *args: Any, **kwargs: Any) -> Optional[Any]:
    """Construct a provider; a bad setting (a malformed URL) is reported, not raised."""
    try:
        return cls(*args, **kwargs)
    except ValueError as exc:
        url_variable = config.OTEL_CARBON_INTENSITY_PROVIDER_URL
        _problem(f"the {cls.name} intensity provider is not usable: {exc} (see {url_variable})", strict)
        return None


def _missing(provider: str, variable: str, strict: bool) -> None:
    _problem(f"the {provider} intensity provider needs {variable}; using bundled data", strict)
    return None


def _problem(message: str, strict: bool) -> None:
    if strict:
        raise ValueError(message)
    warn_once(_logger, f"intensity:live:{message}", "otel_carbon: %s", message)
