"""Resolution order: arguments → env → OTel Resource → world; PUE; clear errors."""

from __future__ import annotations

import logging

import pytest

from otel_carbon.intensity import CUSTOM_ZONE, WORLD_ZONE, resolve, resolve_intensity

if __package__:
    from .intensity_helpers import clean_intensity_env, reference_cloud, reference_country, reference_region, year_of  # noqa: F401
else:
    from intensity_helpers import clean_intensity_env, reference_cloud, reference_country, reference_region, year_of  # noqa: F401

AWS_RESOURCE = {"cloud.provider": "aws", "cloud.region": "eu-west-1"}


def _g(row):
    return float(row["g_co2e_per_kwh"])


def test_world_average_when_nothing_is_configured_warns_once(caplog):
    caplog.set_level(logging.WARNING, logger="otel_carbon")
    first = resolve_intensity({})
    second = resolve_intensity({})
    world = reference_country("WLD")
    assert first == second
    assert (first.g_per_kwh, first.zone, first.year, first.source) == (
        _g(world),
        WORLD_ZONE,
        year_of(world["year"]),
        world["source"],
    )
    messages = [r.getMessage() for r in caplog.records if "world average" in r.getMessage()]
    assert len(messages) == 1
    assert "OTEL_CARBON_COUNTRY" in messages[0] and "cloud.region" in messages[0]


def test_full_chain_in_order(monkeypatch):
    """Each level wins over every level below it; removing it reveals the next."""
    fr, de, us_ca = reference_country("FRA"), reference_country("DEU"), reference_region("US-CA")
    aws = reference_cloud("aws", "eu-west-1")
    monkeypatch.setenv("OTEL_CARBON_INTENSITY", "123.5")
    monkeypatch.setenv("OTEL_CARBON_REGION", "US-CA")
    monkeypatch.setenv("OTEL_CARBON_COUNTRY", "DE")

    # 1a. code arguments beat the environment
    assert resolve_intensity(AWS_RESOURCE, country="FR").g_per_kwh == _g(fr)
    assert resolve_intensity(AWS_RESOURCE, intensity_g_per_kwh=7.0).g_per_kwh == 7.0
    assert resolve_intensity(AWS_RESOURCE, region="US-CA", country="FR").zone == "US-CA"
    # 1b. env: fixed intensity, then region, then country
    fixed = resolve_intensity(AWS_RESOURCE)
    assert (fixed.g_per_kwh, fixed.zone) == (123.5, CUSTOM_ZONE)
    monkeypatch.delenv("OTEL_CARBON_INTENSITY")
    assert resolve_intensity(AWS_RESOURCE).g_per_kwh == _g(us_ca)
    monkeypatch.delenv("OTEL_CARBON_REGION")
    assert resolve_intensity(AWS_RESOURCE).g_per_kwh == _g(de)
    monkeypatch.delenv("OTEL_CARBON_COUNTRY")
    # 2. the resource
    found = resolve_intensity(AWS_RESOURCE)
    assert (found.g_per_kwh, found.zone, found.pue) == (_g(aws), "aws:eu-west-1", float(aws["pue"]))
    # 3. the world
    assert resolve_intensity({}).zone == WORLD_ZONE


def test_resource_from_otel_resource_attributes_env(monkeypatch):
    row = reference_cloud("gcp", "europe-west1")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=x,cloud.provider=gcp,cloud.region=europe-west1")
    found = resolve_intensity()  # None: the SDK's default Resource
    assert (found.g_per_kwh, found.zone, found.year, found.pue) == (
        _g(row),
        "gcp:europe-west1",
        year_of(row["year"]),
        float(row["pue"]),
    )
    assert resolve_intensity({}).zone == WORLD_ZONE, "an explicit empty mapping means no Resource"


def test_zone_year_and_source_are_reported():
    row = reference_region("CA-QC")
    found = resolve(country=None, region="ca-qc")
    assert (found.intensity.zone, found.intensity.year, found.intensity.source) == (
        "CA-QC",
        year_of(row["year"]),
        row["source"],
    )
    assert found.country_iso2 == "CA" and found.origin == "argument region"


@pytest.mark.parametrize("code", ["FR", "fr", "FRA", "fra", " Fr "])
def test_country_codes_are_case_insensitive_alpha2_or_alpha3(code):
    assert resolve_intensity({}, country=code).g_per_kwh == _g(reference_country("FRA"))


def test_cloud_argument_forms():
    row = reference_cloud("azure", "EastUS")
    for cloud in ("azure:eastus", "AZURE:EastUS", ("azure", "East US")):
        found = resolve_intensity({}, cloud=cloud)
        assert (found.g_per_kwh, found.zone, found.pue) == (_g(row), "azure:eastus", float(row["pue"]))


def test_availability_zone_in_cloud_region_maps_to_its_region():
    row = reference_cloud("gcp", "us-central1")
    assert resolve_intensity({"cloud.provider": "gcp", "cloud.region": "us-central1-a"}).g_per_kwh == _g(row)


# -- PUE -------------------------------------------------------------------------------


def test_pue_override_order(monkeypatch):
    aws = reference_cloud("aws", "eu-west-1")
    assert resolve_intensity(AWS_RESOURCE).pue == float(aws["pue"])
    assert resolve_intensity({}, country="FR").pue == 1.0
    monkeypatch.setenv("OTEL_CARBON_PUE", "1.4")
    assert resolve_intensity(AWS_RESOURCE).pue == 1.4
    assert resolve_intensity({}, country="FR").pue == 1.4
    assert resolve_intensity(AWS_RESOURCE, pue=1.25).pue == 1.25


def test_emissions_apply_intensity_and_pue():
    aws = reference_cloud("aws", "eu-west-1")
    found = resolve_intensity(AWS_RESOURCE)
    energy_j = 7.2e6  # 2 kWh
    assert found.emissions_g(energy_j) == pytest.approx(2 * _g(aws) * float(aws["pue"]))
    assert found.g_per_joule * energy_j == pytest.approx(found.emissions_g(energy_j))


@pytest.mark.parametrize("bad", ["0.9", "abc", "-1", "inf"])
def test_bad_pue_env_warns_and_is_ignored(monkeypatch, caplog, bad):
    monkeypatch.setenv("OTEL_CARBON_PUE", bad)
    assert resolve_intensity(AWS_RESOURCE).pue == float(reference_cloud("aws", "eu-west-1")["pue"])
    assert any("OTEL_CARBON_PUE" in r.getMessage() and ">= 1" in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="OTEL_CARBON_PUE"):
        resolve_intensity(AWS_RESOURCE, strict=True)


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, names",
    [
        ({"country": "FRX"}, ["argument country", "'FRX'", "FR (France)"]),
        ({"country": "France"}, ["argument country", "FR (France)"]),
        ({"region": "US-CX"}, ["argument region", "'US-CX'", "US-"]),
        ({"cloud": "aws:eu-west-9"}, ["argument cloud", "'eu-west-9'", "aws:eu-west-1"]),
        ({"cloud": "amazon:eu-west-1"}, ["cloud provider", "aws"]),
        ({"cloud": "aws-eu-west-1"}, ["PROVIDER:REGION"]),
        ({"intensity_g_per_kwh": -1.0}, ["intensity_g_per_kwh", ">= 0"]),
        ({"intensity_g_per_kwh": float("nan")}, ["intensity_g_per_kwh"]),
        ({"intensity_g_per_kwh": True}, ["intensity_g_per_kwh"]),
        ({"pue": 0.8}, ["pue", ">= 1"]),
        ({"country": 250}, ["country"]),
    ],
)
def test_bad_arguments_raise_naming_the_value_and_closest_known(kwargs, names):
    with pytest.raises(ValueError) as info:
        resolve_intensity({}, **kwargs)
    for name in names:
        assert name in str(info.value)


def test_unknown_env_country_is_logged_with_suggestions_and_falls_through(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_CARBON_COUNTRY", "DEU1")
    found = resolve_intensity(AWS_RESOURCE)
    assert found.zone == "aws:eu-west-1", "the next configured level is used"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert "OTEL_CARBON_COUNTRY" in message and "'DEU1'" in message and "DE (Germany)" in message
    with pytest.raises(ValueError, match="OTEL_CARBON_COUNTRY"):
        resolve_intensity(AWS_RESOURCE, strict=True)


def test_unknown_env_region_falls_back_to_env_country(monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_REGION", "US-ZZ")
    monkeypatch.setenv("OTEL_CARBON_COUNTRY", "US")
    assert resolve_intensity({}).g_per_kwh == _g(reference_country("USA"))


def test_unknown_resource_region_is_logged_and_world_is_used(caplog):
    found = resolve_intensity({"cloud.provider": "aws", "cloud.region": "mars-north-1"})
    assert found.zone == WORLD_ZONE
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "mars-north-1" in text and "cloud.region" in text
    with pytest.raises(ValueError, match="mars-north-1"):
        resolve_intensity({"cloud.provider": "aws", "cloud.region": "mars-north-1"}, strict=True)


def test_bad_env_intensity_warns_and_falls_through(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_CARBON_INTENSITY", "lots")
    monkeypatch.setenv("OTEL_CARBON_COUNTRY", "SE")
    assert resolve_intensity({}).g_per_kwh == _g(reference_country("SWE"))
    assert any("OTEL_CARBON_INTENSITY" in r.getMessage() for r in caplog.records)


def test_fixed_zero_is_allowed():
    assert resolve_intensity({}, intensity_g_per_kwh=0).g_per_kwh == 0.0
