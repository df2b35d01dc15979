"""Shared helpers for the intensity tests: a clean environment and the reference data.

Expected values are always read from ``tests/data`` (the curated source tables the package
is built from, see tools/build_data.py), never typed into the tests, so a wrong bundled value or a wrong lookup fails a test.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List

import pytest

from otel_carbon import _log

REPO = Path(__file__).resolve().parents[1]
REFERENCE_DATA = Path(__file__).resolve().parent / "data"

_ENV_PREFIXES = ("OTEL_CARBON_",)
_ENV_NAMES = (
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
    "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


@pytest.fixture(autouse=True)
def clean_intensity_env(monkeypatch: pytest.MonkeyPatch):
    """No OTEL_CARBON_*/resource/proxy variables, and a fresh log-once memory."""
    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES) or key in _ENV_NAMES:
            monkeypatch.delenv(key, raising=False)
    _log.reset_for_tests()
    yield
    _log.reset_for_tests()


def reference_rows(filename: str) -> List[Dict[str, str]]:
    with (REFERENCE_DATA / filename).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def reference_country(iso3: str) -> Dict[str, str]:
    return next(r for r in reference_rows("grid_intensity_countries.csv") if r["iso3"] == iso3)


def reference_region(code: str) -> Dict[str, str]:
    return next(r for r in reference_rows("grid_intensity_subnational.csv") if r["region_code"] == code)


def reference_cloud(provider: str, region: str) -> Dict[str, str]:
    return next(
        r for r in reference_rows("cloud_regions.csv") if r["provider"] == provider and r["region"].lower() == region.lower()
    )


def year_of(cell: str):
    return int(cell) if cell else None
