"""``otel-carbon intensity``: value, zone, year, source and PUE; errors exit with status 2."""

from __future__ import annotations

import json

import pytest

from otel_carbon.cli import main
from otel_carbon.units_text import format_number

if __package__:
    from . import intensity_fake_api as fake
    from .intensity_helpers import clean_intensity_env, reference_cloud, reference_country, reference_region, reference_rows, year_of  # noqa: F401
else:
    import intensity_fake_api as fake
    from intensity_helpers import clean_intensity_env, reference_cloud, reference_country, reference_region, reference_rows, year_of  # noqa: F401


def _json(capsys, *argv):
    assert main(["intensity", "--json", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_cloud_prints_value_zone_year_source_and_pue(capsys):
    row = reference_cloud("aws", "eu-west-1")
    doc = _json(capsys, "--cloud", "aws:eu-west-1")
    assert (doc["g_per_kwh"], doc["zone"], doc["year"], doc["source"], doc["pue"]) == (
        float(row["g_co2e_per_kwh"]),
        "aws:eu-west-1",
        year_of(row["year"]),
        row["source"],
        float(row["pue"]),
    )
    assert doc["live"] is False and doc["provider"] is None


def test_country_and_region(capsys):
    assert _json(capsys, "--country", "fra")["g_per_kwh"] == float(reference_country("FRA")["g_co2e_per_kwh"])
    assert _json(capsys, "--region", "US-CA")["zone"] == "US-CA"


def test_text_output_names_every_field(capsys):
    row = reference_region("CA-QC")
    assert main(["intensity", "--region", "CA-QC", "--pue", "1.2"]) == 0
    out = capsys.readouterr().out
    for needle in (row["g_co2e_per_kwh"], "CA-QC", row["year"], row["source"], "pue        1.2"):
        assert needle in out


def test_env_is_used_without_arguments(monkeypatch, capsys):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "cloud.provider=gcp,cloud.region=europe-west1")
    assert _json(capsys)["zone"] == "gcp:europe-west1"


@pytest.mark.parametrize(
    "argv, env, needles",
    [
        (["--cloud", "aws:eu-west-9"], {}, ["eu-west-9", "aws:eu-west-1"]),
        (["--country", "Germany"], {}, ["Germany", "DE (Germany)"]),
        (["--pue", "0.5"], {}, ["pue"]),
        ([], {"OTEL_CARBON_COUNTRY": "XQ"}, ["OTEL_CARBON_COUNTRY", "XQ"]),
        ([], {"OTEL_CARBON_INTENSITY_PROVIDER": "electricitymaps"}, ["OTEL_CARBON_ELECTRICITYMAPS_TOKEN"]),
    ],
)
def test_configuration_errors_exit_2_with_a_clear_message(monkeypatch, capsys, argv, env, needles):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["intensity", *argv]) == 2
    err = capsys.readouterr().err
    for needle in needles:
        assert needle in err


def test_live_provider_is_queried_once(monkeypatch, capsys):
    with fake.FakeApi() as api:
        api.route("/intensity", fake.Reply(body=fake.uk_body("2026-03-01T12:00Z", "2026-03-01T12:30Z", 150, 140)))
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "uk")
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER_URL", api.url)
        doc = _json(capsys, "--country", "GB")
        assert api.paths() == ["/intensity"]
    assert (doc["g_per_kwh"], doc["zone"], doc["live"], doc["provider"]) == (140.0, "GB", True, "uk")
    assert doc["bundled"]["g_per_kwh"] == float(reference_country("GBR")["g_co2e_per_kwh"])


def test_live_provider_failure_shows_the_flagged_fallback(monkeypatch, capsys):
    monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "uk")
    monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER_URL", "http://127.0.0.1:9")
    assert main(["intensity", "--country", "GB"]) == 0
    out = capsys.readouterr().out
    gb = format_number(float(reference_country("GBR")["g_co2e_per_kwh"]))
    assert "FALLBACK" in out and f"intensity  {gb} g" in out


def test_list(capsys):
    assert main(["intensity", "--list", "regions"]) == 0
    codes = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert codes == [row["region_code"] for row in reference_rows("grid_intensity_subnational.csv")]
