"""Lookups in the bundled intensity tables, with "did you mean" suggestions.

Each lookup returns a :class:`Zone`: the :class:`Intensity` for that place (with the row's
year and source) plus its country, which live providers use to pick their own zone.
Unknown codes raise :class:`UnknownZoneError` (a ``ValueError``) listing the closest known
codes; the resolver decides whether that is raised (code arguments) or logged (env).

Matching rules:

* countries: ISO 3166 alpha-2 or alpha-3, case-insensitive (``fr``, ``FRA``); zone is the
  alpha-2 code. ``WLD`` is the world row (zone ``world``).
* sub-national: the table's ``region_code``, case-insensitive (``US-CA``, ``ca-qc``,
  ``SE3``); ``_`` is accepted for ``-``.
* cloud: provider ``aws`` / ``gcp`` / ``azure`` plus region, case-insensitive. Azure names
  also match without spaces (``East US`` = ``eastus``). A zone or availability-zone name
  (``us-central1-a``, ``us-east-1a``) falls back to its region, because resource detectors
  sometimes put one where the region belongs.

Indexes are built on first use (nothing is parsed at import).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from otel_carbon.data import load_table
from otel_carbon.intensity.model import WORLD_ZONE, Intensity

CLOUD_PROVIDERS = ("aws", "gcp", "azure")
WORLD_ISO3 = "WLD"

# Common non-ISO spellings, used only to suggest the ISO code (never accepted silently).
_COUNTRY_HINTS = {"UK": "GB", "EL": "GR"}
_PROVIDER_HINTS = {"amazon": "aws", "ec2": "aws", "google": "gcp", "google_cloud": "gcp", "microsoft": "azure"}

Row = Dict[str, str]


@dataclass(frozen=True)
class Zone:
    """A bundled location: its intensity and its country (ISO alpha-2, if known)."""

    intensity: Intensity
    country_iso2: Optional[str]


class UnknownZoneError(ValueError):
    """A country, region or cloud region that is not in the bundled tables."""

    def __init__(self, kind: str, value: str, expected: str, suggestions: Sequence[str]) -> None:
        self.kind = kind
        self.value = value
        self.expected = expected
        self.suggestions = list(suggestions)
        super().__init__(self.describe())

    def describe(self, where: Optional[str] = None) -> str:
        """Message naming the value, where it came from, and the closest known codes."""
        origin = f" in {where}" if where else ""
        hint = "; closest known: " + ", ".join(self.suggestions) if self.suggestions else ""
        return f"unknown {self.kind} {self.value!r}{origin}: expected {self.expected}{hint}"


# -- indexes ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _countries() -> Dict[str, Row]:
    index: Dict[str, Row] = {}
    for row in load_table("grid_intensity_countries"):
        index[row["iso3"].upper()] = row
        if row["iso2"]:
            index[row["iso2"].upper()] = row
    return index


@functools.lru_cache(maxsize=None)
def _regions() -> Dict[str, Row]:
    return {row["region_code"].upper(): row for row in load_table("grid_intensity_subnational")}


def _cloud_key(provider: str, region: str) -> Tuple[str, str]:
    region_key = region.strip().lower()
    if provider == "azure":
        region_key = region_key.replace(" ", "")
    return provider, region_key


@functools.lru_cache(maxsize=None)
def _cloud() -> Dict[Tuple[str, str], Row]:
    return {_cloud_key(row["provider"], row["region"]): row for row in load_table("cloud_regions")}


def _year(cell: str) -> Optional[int]:
    return int(cell) if cell else None


def _iso2_of(iso3: str) -> Optional[str]:
    row = _countries().get(iso3.upper()) if iso3 else None
    if row is None:
        return None
    return row["iso2"] or None


def _suggest(
    value: str, candidates: Dict[str, str], aliases: Optional[Dict[str, str]] = None, limit: int = 5
) -> List[str]:
    """Closest ``candidates`` codes to ``value`` (case-insensitive), also by description.

    ``candidates`` maps a code to a description (a country or place name); a value that
    looks like a name ("France") then suggests its code. ``aliases`` maps other codes
    (alpha-3) to a candidate, so each place is suggested once. Returns "CODE (description)".
    """
    needle = value.strip().upper()
    codes = {code.upper(): code for code in candidates}
    codes.update({alias.upper(): code for alias, code in (aliases or {}).items()})
    names = {desc.upper(): code for code, desc in candidates.items() if desc}
    import difflib  # only for a name that is not found

    by_name = [names[n] for n in difflib.get_close_matches(needle, list(names), n=limit, cutoff=0.7)]
    by_code = [codes[c] for c in difflib.get_close_matches(needle, list(codes), n=limit, cutoff=0.6)]
    ordered = list(dict.fromkeys(by_name + by_code))[:limit]
    return [f"{code} ({candidates[code]})" if candidates[code] else code for code in ordered]


# -- lookups ---------------------------------------------------------------------------


def country(code: str) -> Zone:
    """The bundled intensity of a country given by ISO 3166 alpha-2 or alpha-3 code."""
    key = code.strip().upper()
    row = _countries().get(key)
    if row is None:
        rows = load_table("grid_intensity_countries")
        candidates = {r["iso2"] or r["iso3"]: r["country_name"] for r in rows}
        suggestions = _suggest(code, candidates, {r["iso3"]: r["iso2"] or r["iso3"] for r in rows})
        hint = _COUNTRY_HINTS.get(key)
        if hint:
            suggestions.insert(0, f"{hint} ({_countries()[hint]['country_name']})")
        raise UnknownZoneError("country", code, "an ISO 3166 alpha-2 or alpha-3 code (FR, FRA)", suggestions)
    if row["iso3"] == WORLD_ISO3:
        return Zone(world(), None)
    intensity = Intensity(
        g_per_kwh=float(row["g_co2e_per_kwh"]),
        zone=row["iso2"] or row["iso3"],
        year=_year(row["year"]),
        source=row["source"],
    )
    return Zone(intensity, row["iso2"] or None)


def region(code: str) -> Zone:
    """The bundled intensity of a sub-national region (``US-CA``, ``CA-QC``, ``SE3``)."""
    key = code.strip().upper().replace("_", "-")
    row = _regions().get(key)
    if row is None:
        candidates = {c: r["region_name"] for c, r in _regions().items()}
        raise UnknownZoneError("region", code, "a sub-national code such as US-CA or CA-QC", _suggest(code, candidates))
    intensity = Intensity(
        g_per_kwh=float(row["g_co2e_per_kwh"]),
        zone=row["region_code"],
        year=_year(row["year"]),
        source=row["source"],
    )
    return Zone(intensity, _iso2_of(row["country_iso3"]))


def _region_of_zone(provider: str, region_key: str) -> Optional[str]:
    """``us-central1-a`` -> ``us-central1`` (gcp); ``us-east-1a`` -> ``us-east-1`` (aws)."""
    pattern = {"gcp": r"(.+\d)-[a-z]", "aws": r"(.+-\d+)[a-z]"}.get(provider)
    match = re.fullmatch(pattern, region_key) if pattern else None
    return match.group(1) if match else None


def cloud(provider: str, region_name: str) -> Zone:
    """The bundled intensity and PUE of a cloud region (``aws``, ``eu-west-1``)."""
    provider_key = provider.strip().lower()
    if provider_key not in CLOUD_PROVIDERS:
        hint = _PROVIDER_HINTS.get(provider_key.replace(" ", "_"))
        import difflib

        close = [hint] if hint else difflib.get_close_matches(provider_key, CLOUD_PROVIDERS, n=3, cutoff=0.6)
        raise UnknownZoneError("cloud provider", provider, "one of " + ", ".join(CLOUD_PROVIDERS), close)
    key = _cloud_key(provider_key, region_name)
    row = _cloud().get(key)
    if row is None:
        parent = _region_of_zone(provider_key, key[1])
        row = _cloud().get((provider_key, parent)) if parent else None
    if row is None:
        candidates = {r: other["location"] for (p, r), other in _cloud().items() if p == provider_key}
        suggestions = [f"{provider_key}:{s}" for s in _suggest(key[1], candidates)]
        expected = f"one of the bundled {provider_key} regions"
        raise UnknownZoneError(f"{provider_key} region", region_name, expected, suggestions)
    intensity = Intensity(
        g_per_kwh=float(row["g_co2e_per_kwh"]),
        zone=f"{provider_key}:{row['region'].lower()}",
        year=_year(row["year"]),
        source=row["source"],
        pue=float(row["pue"]),
    )
    return Zone(intensity, _iso2_of(row["country_iso3"]))


def parse_cloud(text: str) -> Tuple[str, str]:
    """Split ``"aws:eu-west-1"`` into ``("aws", "eu-west-1")``; ``ValueError`` otherwise."""
    provider, sep, region_name = text.partition(":")
    if not sep or not provider.strip() or not region_name.strip():
        raise ValueError(f"cloud {text!r}: expected PROVIDER:REGION, e.g. aws:eu-west-1")
    return provider.strip().lower(), region_name.strip()


def world() -> Intensity:
    """The world average (the ``WLD`` row of the countries table), zone ``world``."""
    row = _countries()[WORLD_ISO3]
    return Intensity(
        g_per_kwh=float(row["g_co2e_per_kwh"]),
        zone=WORLD_ZONE,
        year=_year(row["year"]),
        source=row["source"],
    )


# -- listings (CLI ``--list``) ------------------------------------------------------------


def list_countries() -> List[Tuple[str, str]]:
    """``(code, name)`` for every country row (alpha-2 where it exists)."""
    return [(row["iso2"] or row["iso3"], row["country_name"]) for row in load_table("grid_intensity_countries")]


def list_regions() -> List[Tuple[str, str]]:
    return [(row["region_code"], row["region_name"]) for row in load_table("grid_intensity_subnational")]


def list_cloud_regions() -> List[Tuple[str, str]]:
    return [(f"{row['provider']}:{row['region'].lower()}", row["location"]) for row in load_table("cloud_regions")]
