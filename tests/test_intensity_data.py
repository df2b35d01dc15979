"""Bundled data: built from tests/data (the curated reference tables), every row reachable with its year and source."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from importlib import resources

import pytest

from otel_carbon.data import load_table, table_names
from otel_carbon.intensity import bundled

if __package__:
    from .intensity_helpers import REPO, REFERENCE_DATA, clean_intensity_env, reference_rows, year_of  # noqa: F401
else:
    from intensity_helpers import REPO, REFERENCE_DATA, clean_intensity_env, reference_rows, year_of  # noqa: F401


def _build_module():
    spec = importlib.util.spec_from_file_location("build_data", REPO / "tools" / "build_data.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["build_data"] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def build_data():
    return _build_module()


def test_packaged_files_are_what_the_build_script_makes(build_data):
    outputs = build_data.build(REFERENCE_DATA)
    root = resources.files("otel_carbon.data")
    for filename, text in outputs.items():
        assert root.joinpath(filename).read_text(encoding="utf-8") == text, f"{filename} is stale: run tools/build_data.py"


@pytest.mark.parametrize(
    "table", ["grid_intensity_countries", "grid_intensity_subnational", "cloud_regions", "cpu_tdp", "cpu_power_model"]
)
def test_tables_match_the_reference_data(table):
    expected = reference_rows(f"{table}.csv")
    rows = load_table(table)
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected):
        assert {k: got[k] for k in want if k in got} == {k: want[k] for k in want if k in got}
    assert set(expected[0]) >= set(rows[0]), "the package table has a column the source lacks"


def test_cpu_tables_keep_the_columns_the_power_model_reads():
    assert list(load_table("cpu_tdp")[0]) == ["model", "tdp_watts"]
    assert list(load_table("cpu_power_model")[0]) == [
        "provider",
        "microarchitecture",
        "min_watts_per_vcpu",
        "max_watts_per_vcpu",
        "source",
    ]


def test_every_intensity_row_keeps_year_and_source_columns():
    for table in ("grid_intensity_countries", "grid_intensity_subnational", "cloud_regions"):
        for row in load_table(table):
            assert "year" in row and row["source"], (table, row)


def test_every_country_resolves_to_its_reference_row():
    for row in reference_rows("grid_intensity_countries.csv"):
        codes = [row["iso3"], row["iso3"].lower()] + ([row["iso2"], row["iso2"].lower()] if row["iso2"] else [])
        for code in codes:
            zone = bundled.country(code)
            assert zone.intensity.g_per_kwh == float(row["g_co2e_per_kwh"]), code
            assert zone.intensity.year == year_of(row["year"]), code
            assert zone.intensity.source == row["source"], code
            assert zone.intensity.pue == 1.0


def test_every_region_resolves_to_its_reference_row():
    for row in reference_rows("grid_intensity_subnational.csv"):
        for code in (row["region_code"], row["region_code"].lower()):
            found = bundled.region(code).intensity
            assert (found.g_per_kwh, found.year, found.source, found.zone) == (
                float(row["g_co2e_per_kwh"]),
                year_of(row["year"]),
                row["source"],
                row["region_code"],
            )


def test_every_cloud_region_resolves_with_its_pue():
    for row in reference_rows("cloud_regions.csv"):
        for provider, region in ((row["provider"], row["region"]), (row["provider"].upper(), row["region"].upper())):
            found = bundled.cloud(provider, region).intensity
            assert found.g_per_kwh == float(row["g_co2e_per_kwh"])
            assert found.year == year_of(row["year"])
            assert found.source == row["source"]
            assert found.pue == float(row["pue"])
            assert found.zone == f"{row['provider']}:{row['region'].lower()}"


def test_world_is_the_wld_row():
    row = next(r for r in reference_rows("grid_intensity_countries.csv") if r["iso3"] == "WLD")
    world = bundled.world()
    assert (world.g_per_kwh, world.year, world.source, world.zone) == (
        float(row["g_co2e_per_kwh"]),
        year_of(row["year"]),
        row["source"],
        "world",
    )


def test_credits_carry_every_input_and_licence_of_sources_md():
    text = (REFERENCE_DATA / "SOURCES.md").read_text(encoding="utf-8").replace("`", "")
    credits = load_table("data_sources")
    assert {row["id"] for row in credits} >= {"CC", "OWID", "CCF", "GRCI"}
    for row in credits:
        assert row["license"] and row["license"] in text
        assert row["origin"] in text


def test_load_table_is_cached_and_rejects_unknown_names():
    assert load_table("cpu_tdp.csv") == load_table("cpu_tdp")
    assert load_table("cpu_tdp") is load_table("cpu_tdp")
    assert "grid_intensity_countries" in table_names()
    with pytest.raises(ValueError, match="unknown data table 'nope'"):
        load_table("nope")
    with pytest.raises(ValueError):
        load_table("../config")


def test_importing_the_package_parses_no_data_file():
    code = (
        "import otel_carbon, otel_carbon.intensity, otel_carbon.data\n"
        "from otel_carbon.data import load_table\n"
        "assert load_table.cache_info().currsize == 0, load_table.cache_info()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- the build script rejects bad input ---------------------------------------------------


@pytest.fixture
def source_copy(tmp_path):
    target = tmp_path / "data"
    shutil.copytree(REFERENCE_DATA, target)
    for path in target.iterdir():
        path.chmod(0o644)
    return target


def _corrupt(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _first_data_line(path):
    return path.read_text(encoding="utf-8").splitlines()[1]


@pytest.mark.parametrize(
    "mutation, message",
    [
        ("negative", "outside"),
        ("not_a_number", "is not a number"),
        ("duplicate", "duplicate key"),
        ("missing_column", "missing column"),
        ("bad_pue", "pue"),
    ],
)
def test_build_rejects_bad_source_rows(build_data, source_copy, tmp_path, capsys, mutation, message):
    countries = source_copy / "grid_intensity_countries.csv"
    first = _first_data_line(countries)
    cells = first.split(",")
    if mutation == "negative":
        _corrupt(countries, first, ",".join(cells[:4] + ["-" + cells[4]] + cells[5:]))
    elif mutation == "not_a_number":
        _corrupt(countries, first, ",".join(cells[:4] + ["n/a"] + cells[5:]))
    elif mutation == "duplicate":
        _corrupt(countries, first, first + "\n" + first)
    elif mutation == "missing_column":
        header = countries.read_text(encoding="utf-8").splitlines()[0]
        _corrupt(countries, header, header.replace("source", "origin"))
    elif mutation == "bad_pue":
        cloud = source_copy / "cloud_regions.csv"
        line = _first_data_line(cloud)
        row = line.split(",")
        pue_index = 7  # provider,region,location,country_iso3,g,year,source,pue,...
        assert cloud.read_text().splitlines()[0].split(",")[pue_index] == "pue"
        assert '"' not in line, "pick a row without quoted cells"
        _corrupt(cloud, line, ",".join(row[:pue_index] + ["0.5"] + row[pue_index + 1 :]))
    out = tmp_path / "out"
    assert build_data.main([str(source_copy), "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "nothing is written when validation fails"


def test_build_check_mode_detects_stale_files(build_data, source_copy, tmp_path, capsys):
    out = tmp_path / "out"
    assert build_data.main([str(source_copy), "--out", str(out)]) == 0
    assert build_data.main([str(source_copy), "--out", str(out), "--check"]) == 0
    countries = source_copy / "grid_intensity_countries.csv"
    first = _first_data_line(countries)
    cells = first.split(",")
    _corrupt(countries, first, ",".join(cells[:4] + [str(float(cells[4]) + 1)] + cells[5:]))
    assert build_data.main([str(source_copy), "--out", str(out), "--check"]) == 1
    assert "grid_intensity_countries.csv" in capsys.readouterr().err
