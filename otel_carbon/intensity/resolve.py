"""The resolution chain: which bundled intensity applies to this process.

Order (the first that is set wins):

1. code arguments: ``intensity_g_per_kwh``, then ``region``, ``country``, ``cloud``;
2. environment: ``OTEL_CARBON_INTENSITY``, then ``OTEL_CARBON_REGION``,
   ``OTEL_CARBON_COUNTRY``;
3. the OTel Resource: ``cloud.provider`` + ``cloud.region`` (from
   ``OTEL_RESOURCE_ATTRIBUTES`` or any resource detector);
4. the world average, with one warning saying how to set the location.

Code arguments beat the environment (as in the OTel SDK, an argument is the more specific
setting). A fixed intensity beats a location because it is the most specific statement
of all. PUE: ``pue=`` argument, else ``OTEL_CARBON_PUE``, else the cloud provider's
average for cloud zones, else 1.0.

Errors: a bad code argument raises ``ValueError`` naming the argument and what was
expected (unknown codes list the closest known ones). A bad environment or Resource value
is logged once, with the same message, and the chain goes on to the next setting, because
a hook must never raise into the host application. ``strict=True`` (the CLI) raises for
those too.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Tuple, Union

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon.intensity import bundled
from otel_carbon.intensity.model import CUSTOM_ZONE, Intensity

_logger = logging.getLogger("otel_carbon")

CloudArg = Union[str, Tuple[str, str]]

CLOUD_PROVIDER_ATTRIBUTE = "cloud.provider"
CLOUD_REGION_ATTRIBUTE = "cloud.region"

WORLD_HINT = (
    "Set OTEL_CARBON_COUNTRY to an ISO 3166 code (e.g. FR), OTEL_CARBON_REGION to a "
    "sub-national code (e.g. US-CA), or cloud.provider and cloud.region in "
    "OTEL_RESOURCE_ATTRIBUTES (e.g. cloud.provider=aws,cloud.region=eu-west-1)."
)


@dataclass(frozen=True)
class Resolution:
    """The resolved intensity, its country (alpha-2, for live providers) and how it was set."""

    intensity: Intensity
    country_iso2: Optional[str]
    origin: str  # "argument country", "OTEL_CARBON_REGION", "resource", "world", ...


def resolve_intensity(
    resource_attributes: Optional[Mapping[str, Any]] = None,
    *,
    country: Optional[str] = None,
    region: Optional[str] = None,
    cloud: Optional[CloudArg] = None,
    intensity_g_per_kwh: Optional[float] = None,
    pue: Optional[float] = None,
    strict: bool = False,
) -> Intensity:
    """Resolve the bundled grid intensity for this process (see the module docstring).

    ``resource_attributes``: the tracer provider's ``resource.attributes``; ``None`` reads
    the default Resource (``OTEL_RESOURCE_ATTRIBUTES`` and configured detectors), ``{}``
    means no Resource. ``cloud``: ``"aws:eu-west-1"`` or ``("aws", "eu-west-1")``.
    """
    return resolve(
        resource_attributes,
        country=country,
        region=region,
        cloud=cloud,
        intensity_g_per_kwh=intensity_g_per_kwh,
        pue=pue,
        strict=strict,
    ).intensity


def resolve(
    resource_attributes: Optional[Mapping[str, Any]] = None,
    *,
    country: Optional[str] = None,
    region: Optional[str] = None,
    cloud: Optional[CloudArg] = None,
    intensity_g_per_kwh: Optional[float] = None,
    pue: Optional[float] = None,
    strict: bool = False,
) -> Resolution:
    """Like :func:`resolve_intensity`, also returning the country and the origin."""
    fixed_g_per_kwh = _check_number("intensity_g_per_kwh", intensity_g_per_kwh, config.OTEL_CARBON_INTENSITY)
    pue_override = _check_number("pue", pue, config.OTEL_CARBON_PUE)
    cloud_pair = _check_cloud(cloud)
    _check_code("country", country)
    _check_code("region", region)
    if pue_override is None:
        pue_override = config.env_number(config.OTEL_CARBON_PUE, None, strict)

    found = _from_arguments(fixed_g_per_kwh, region, country, cloud_pair)
    if found is None:
        found = _from_env(strict)
    if found is None:
        attributes = _default_resource_attributes() if resource_attributes is None else resource_attributes
        found = _from_resource(attributes, strict)
    if found is None:
        world = bundled.world()
        warn_once(
            _logger,
            "intensity:world",
            "otel_carbon: no location configured; using the world average grid intensity "
            "%.1f g CO2e/kWh (%s, %s). %s",
            world.g_per_kwh,
            world.source,
            world.year,
            WORLD_HINT,
        )
        found = Resolution(world, None, "world")
    if pue_override is not None:
        found = dataclasses.replace(found, intensity=dataclasses.replace(found.intensity, pue=pue_override))
    return found


# -- the three levels --------------------------------------------------------------------


def _fixed(g_per_kwh: float, origin: str) -> Resolution:
    return Resolution(Intensity(g_per_kwh=g_per_kwh, zone=CUSTOM_ZONE, source=f"fixed value ({origin})"), None, origin)


def _zone(found: bundled.Zone, origin: str) -> Resolution:
    return Resolution(found.intensity, found.country_iso2, origin)


def _from_arguments(
    fixed_g_per_kwh: Optional[float],
    region: Optional[str],
    country: Optional[str],
    cloud_pair: Optional[Tuple[str, str]],
) -> Optional[Resolution]:
    """Code arguments: unknown codes raise (UnknownZoneError is a ValueError)."""
    if fixed_g_per_kwh is not None:
        return _fixed(fixed_g_per_kwh, "argument intensity_g_per_kwh")
    try:
        if region:
            return _zone(bundled.region(region), "argument region")
        if country:
            return _zone(bundled.country(country), "argument country")
        if cloud_pair:
            return _zone(bundled.cloud(*cloud_pair), "argument cloud")
    except bundled.UnknownZoneError as exc:
        argument = "region" if region else "country" if country else "cloud"
        raise ValueError(exc.describe(f"argument {argument}")) from None
    return None


def _from_env(strict: bool) -> Optional[Resolution]:
    fixed = config.env_number(config.OTEL_CARBON_INTENSITY, None, strict)
    if fixed is not None:
        return _fixed(fixed, config.OTEL_CARBON_INTENSITY)
    lookups: Tuple[Tuple[str, Callable[[str], bundled.Zone]], ...] = (
        (config.OTEL_CARBON_REGION, bundled.region),
        (config.OTEL_CARBON_COUNTRY, bundled.country),
    )
    for name, lookup in lookups:
        value = config.env_str(name, "")
        if not value:
            continue
        try:
            return _zone(lookup(value), name)
        except bundled.UnknownZoneError as exc:
            _report(exc.describe(name), f"env:{name}:{value}", strict)
    return None


def _from_resource(attributes: Mapping[str, Any], strict: bool) -> Optional[Resolution]:
    provider = attributes.get(CLOUD_PROVIDER_ATTRIBUTE)
    region = attributes.get(CLOUD_REGION_ATTRIBUTE)
    if not (isinstance(provider, str) and isinstance(region, str) and provider.strip() and region.strip()):
        return None
    try:
        return _zone(bundled.cloud(provider, region), "resource")
    except bundled.UnknownZoneError as exc:
        where = f"the OTel Resource ({CLOUD_PROVIDER_ATTRIBUTE}={provider}, {CLOUD_REGION_ATTRIBUTE}={region})"
        _report(exc.describe(where), f"resource:{provider}:{region}", strict)
    return None


def _default_resource_attributes() -> Mapping[str, Any]:
    """Attributes of the SDK's default Resource (env + configured detectors), or {}. With
    neither ``OTEL_RESOURCE_ATTRIBUTES`` nor ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`` set it
    holds no ``cloud.*`` (the SDK's own, a service name and instance id only): then {},
    without importing the SDK for it."""
    if not any(os.environ.get(name, "").strip() for name in ("OTEL_RESOURCE_ATTRIBUTES", "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS")):
        return {}
    try:
        from opentelemetry.sdk.resources import Resource

        return dict(Resource.create().attributes)
    except Exception as exc:  # a broken detector must not break configuration
        warn_once(_logger, "intensity:resource", "otel_carbon: could not read the OTel Resource: %r", exc)
        return {}


# -- validation helpers -----------------------------------------------------------------


def _report(message: str, key: str, strict: bool) -> None:
    if strict:
        raise ValueError(message)
    warn_once(_logger, f"intensity:{key}", "otel_carbon: %s; ignoring it", message, level=logging.ERROR)


def _check_number(name: str, value: Optional[float], variable: str) -> Optional[float]:
    """A code argument within the range documented for its variable, else ``ValueError``."""
    if value is None:
        return None
    bounds = config.RANGES[variable]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be {bounds.describe()}, got {value!r}")
    try:
        return float(bounds.parse(repr(float(value))))
    except ValueError:
        raise ValueError(f"{name} must be {bounds.describe()}, got {value!r}") from None


def _check_code(name: str, value: Optional[str]) -> None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string code, got {value!r}")


def _check_cloud(value: Optional[CloudArg]) -> Optional[Tuple[str, str]]:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return bundled.parse_cloud(value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, str) and v.strip() for v in value):
        return value[0].strip().lower(), value[1].strip()
    raise ValueError(
        f"cloud must be 'PROVIDER:REGION' (e.g. 'aws:eu-west-1') or a (provider, region) tuple, got {value!r}"
    )
