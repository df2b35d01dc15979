"""emissions.csv: CodeCarbon 3.x's columns and units, safe concurrent appends, CodeCarbon interop."""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_carbon import EmissionsTracker
from otel_carbon import attributes as A
from otel_carbon.exporters.emissions_csv import (
    CODECARBON_COLUMNS,
    EmissionsCsvFile,
    EmissionsCsvSpanExporter,
    codecarbon_row,
)

# CodeCarbon 3.3.2's EmissionsData fields, in order (codecarbon/output_methods/emissions_data.py).
CODECARBON_3_FIELDS = (
    "timestamp project_name run_id experiment_id duration emissions emissions_rate cpu_power gpu_power "
    "ram_power cpu_energy gpu_energy ram_energy energy_consumed water_consumed country_name country_iso_code "
    "region cloud_provider cloud_region os python_version codecarbon_version cpu_count cpu_model gpu_count "
    "gpu_model longitude latitude ram_total_size tracking_mode cpu_utilization_percent gpu_utilization_percent "
    "ram_utilization_percent ram_used_gb on_cloud pue wue"
).split()

HAS_CODECARBON = importlib.util.find_spec("codecarbon") is not None


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_columns_are_codecarbons():
    assert list(CODECARBON_COLUMNS) == CODECARBON_3_FIELDS
    if HAS_CODECARBON:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # codecarbon warns about pynvml on import
            from codecarbon.output_methods.emissions_data import EmissionsData

        assert [f.name for f in dataclasses.fields(EmissionsData)] == list(CODECARBON_COLUMNS)


def sample_row(i: int, project: str = "p") -> dict:
    return codecarbon_row(end_unix_s=time.time(), project_name=project, run_id=f"run-{i}", experiment_id="e",
                          duration_s=2.0, cpu_j=7200.0, memory_j=3600.0, gpu_j=0.0, emissions_g=5.0, zone="FR",
                          pue=1.1)


def test_row_units_are_codecarbons():
    row = sample_row(0)
    assert set(row) == set(CODECARBON_COLUMNS)
    assert row["cpu_energy"] == pytest.approx(7200.0 / 3.6e6)  # kWh
    assert row["ram_energy"] == pytest.approx(3600.0 / 3.6e6)
    assert row["energy_consumed"] == pytest.approx(10800.0 / 3.6e6)
    assert row["cpu_power"] == pytest.approx(3600.0)  # W = J / s
    assert row["ram_power"] == pytest.approx(1800.0)
    assert row["emissions"] == pytest.approx(0.005)  # kg
    assert row["emissions_rate"] == pytest.approx(0.0025)  # kg/s
    assert (row["country_iso_code"], row["country_name"], row["on_cloud"]) == ("FRA", "France", "N")
    cloud = codecarbon_row(end_unix_s=0, project_name="p", run_id="r", experiment_id="", duration_s=1, cpu_j=1,
                           memory_j=0, gpu_j=0, emissions_g=0, zone="aws:eu-west-1", pue=1.135)
    assert (cloud["cloud_provider"], cloud["cloud_region"], cloud["on_cloud"], cloud["country_iso_code"]) == (
        "aws", "eu-west-1", "Y", "IRL")


def test_tracker_row_matches_its_result(ccf_sampler, tmp_path):
    with EmissionsTracker("proj", sampler=ccf_sampler, tracer_provider=TracerProvider(), output_dir=str(tmp_path),
                          experiment_id="exp-1", country_iso_code="FR") as tracker:
        t = time.thread_time()
        while time.thread_time() - t < 0.03:
            pass
    r = tracker.result
    header, row = read_rows(tmp_path / "emissions.csv")
    values = dict(zip(header, row))
    assert header == list(CODECARBON_COLUMNS)
    assert values["project_name"] == "proj" and values["run_id"] == r.run_id and values["experiment_id"] == "exp-1"
    assert float(values["duration"]) == pytest.approx(r.duration_s)
    assert float(values["energy_consumed"]) == pytest.approx(r.energy_total_j / 3.6e6)
    assert float(values["cpu_energy"]) == pytest.approx(r.energy_j[A.CPU] / 3.6e6)
    assert float(values["cpu_power"]) == pytest.approx(r.energy_j[A.CPU] / r.duration_s)
    assert float(values["emissions"]) == pytest.approx(r.emissions_kg)
    assert values["country_iso_code"] == "FRA" and values["tracking_mode"] == "process"
    assert values["codecarbon_version"].startswith("otel-carbon")


def test_threads_never_tear_a_row_and_write_the_header_once(tmp_path):
    path = tmp_path / "emissions.csv"
    target = EmissionsCsvFile(path)
    big = "x" * 6000  # rows longer than PIPE_BUF

    def writer(t):
        for i in range(40):
            assert target.append(sample_row(t * 1000 + i, project=f"{big}-{t}"))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = read_rows(path)
    assert rows[0] == list(CODECARBON_COLUMNS)
    assert len(rows) == 1 + 6 * 40
    assert all(len(r) == len(CODECARBON_COLUMNS) for r in rows)
    assert sorted(r[2] for r in rows[1:]) == sorted(f"run-{t * 1000 + i}" for t in range(6) for i in range(40))


def _process_writer(path: str, worker: int, n: int) -> None:
    target = EmissionsCsvFile(path)
    for i in range(n):
        target.append(sample_row(worker * 1000 + i, project="y" * 5000))


def test_processes_never_tear_a_row(tmp_path):
    path = str(tmp_path / "emissions.csv")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_process_writer, args=(path, w, 30)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    rows = read_rows(path)
    assert rows[0] == list(CODECARBON_COLUMNS)
    assert len(rows) == 1 + 4 * 30
    assert all(len(r) == len(CODECARBON_COLUMNS) for r in rows)
    assert len({r[2] for r in rows[1:]}) == 4 * 30


def test_a_file_with_another_header_is_left_alone(tmp_path):
    path = tmp_path / "emissions.csv"
    original = "timestamp,project_name,run_id,emissions\n2024-01-01T00:00:00,old,abc,0.1\n"
    path.write_text(original)
    target = EmissionsCsvFile(path)
    assert target.append(sample_row(1)) is False
    assert path.read_text() == original
    assert target.rows_refused == 1


def test_reordered_header_and_missing_newline(tmp_path):
    """CodeCarbon accepts any column order; so do we (values follow the file's order)."""
    path = tmp_path / "emissions.csv"
    reordered = list(reversed(CODECARBON_COLUMNS))
    path.write_text(",".join(reordered))  # header only, no final newline
    assert EmissionsCsvFile(path).append(sample_row(7, project='a "quoted", project'))
    header, row = read_rows(path)
    values = dict(zip(header, row))
    assert header == reordered
    assert values["run_id"] == "run-7" and values["project_name"] == 'a "quoted", project'


def test_plain_and_edited_rows_are_encoded_in_full(tmp_path):
    path = tmp_path / "emissions.csv"
    target = EmissionsCsvFile(path)
    edited = sample_row(1)
    edited["project_name"] = "edited, with comma"
    plain = dict(sample_row(2))
    plain["region"] = 'multi\nline "region"'
    assert target.append(edited, plain)
    rows = [dict(zip(CODECARBON_COLUMNS, r)) for r in read_rows(path)[1:]]
    assert rows[0]["project_name"] == "edited, with comma" and rows[0]["run_id"] == "run-1"
    assert rows[1]["region"] == 'multi\nline "region"' and float(rows[1]["emissions"]) == 0.005
    with pytest.raises(ValueError, match="bogus"):
        target.append({"bogus": 1})


def test_span_exporter_writes_one_row_per_root_span(ccf_sampler, tmp_path):
    from otel_carbon import CarbonSpanProcessor

    path = tmp_path / "emissions.csv"
    provider = TracerProvider()
    provider.add_span_processor(CarbonSpanProcessor(sampler=ccf_sampler))
    provider.add_span_processor(SimpleSpanProcessor(EmissionsCsvSpanExporter(path, project_name="svc")))
    tracer = provider.get_tracer("t")
    for _ in range(3):
        with tracer.start_as_current_span("request"):
            with tracer.start_as_current_span("child"):
                pass
    provider.shutdown()
    rows = read_rows(path)
    assert len(rows) == 4 and all(r[1] == "svc" for r in rows[1:])


CODECARBON_SCRIPT = textwrap.dedent(
    """
    import logging, sys, time
    from codecarbon import OfflineEmissionsTracker
    for folder in sys.argv[1:]:
        tracker = OfflineEmissionsTracker(country_iso_code="FRA", output_dir=folder, log_level="error",
                                          measure_power_secs=1, save_to_file=True)
        tracker.start()
        sum(i * i for i in range(200000))
        tracker.stop()
    print("codecarbon ok")
    """
)


@pytest.mark.skipif(not HAS_CODECARBON, reason="codecarbon is not installed (pip install codecarbon)")
def test_codecarbon_and_we_append_to_each_others_files(ccf_sampler, tmp_path):
    ours_first = tmp_path / "ours_first"
    theirs_first = tmp_path / "theirs_first"
    ours_first.mkdir()
    theirs_first.mkdir()
    # 1. we create a file; 3. CodeCarbon creates one (step 2, below, runs both CodeCarbon trackers)
    with EmissionsTracker("ours", sampler=ccf_sampler, tracer_provider=TracerProvider(), output_dir=str(ours_first)):
        pass
    out = subprocess.run([sys.executable, "-c", CODECARBON_SCRIPT, str(ours_first), str(theirs_first)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    if out.returncode != 0:
        pytest.skip(f"codecarbon could not run here: {out.stderr[-500:]}")
    # 4. we append to CodeCarbon's file
    with EmissionsTracker("ours", sampler=ccf_sampler, tracer_provider=TracerProvider(), output_dir=str(theirs_first)):
        pass
    for folder, writers in ((ours_first, ["otel-carbon", "codecarbon"]), (theirs_first, ["codecarbon", "otel-carbon"])):
        assert sorted(os.listdir(folder)) == ["emissions.csv"], "no backup: the header was accepted"
        rows = read_rows(folder / "emissions.csv")
        header = rows[0]
        assert set(header) == set(CODECARBON_COLUMNS) and len(rows) == 3
        assert all(len(r) == len(header) for r in rows)
        by_name = [dict(zip(header, r)) for r in rows[1:]]
        versions = ["otel-carbon" if v["codecarbon_version"].startswith("otel-carbon") else "codecarbon" for v in by_name]
        assert versions == writers
        for v in by_name:
            assert float(v["energy_consumed"]) >= 0 and float(v["duration"]) >= 0
        cc = by_name[versions.index("codecarbon")]
        assert cc["country_iso_code"] == "FRA" and cc["project_name"] == "codecarbon"
        pd = pytest.importorskip("pandas")
        frame = pd.read_csv(folder / "emissions.csv")
        assert len(frame) == 2 and frame["emissions"].notna().all()


# -- hostile text, torn writes, formula injection ------------------------------------------


def test_a_bare_carriage_return_is_quoted(tmp_path):
    """Readers that split lines on \\r (Excel, pandas' C engine, `csv` with universal newlines)
    would cut the row in two."""
    path = tmp_path / "emissions.csv"
    assert EmissionsCsvFile(path).append(sample_row(1, project="left\rright"), sample_row(2, project="plain"))
    raw = path.read_bytes()
    assert b'"left\rright"' in raw
    header, first, second = read_rows(path)
    assert dict(zip(header, first))["project_name"] == "left\rright"
    assert dict(zip(header, second))["run_id"] == "run-2"
    # split on every line break, the way a naive reader does: still three records
    assert len([line for line in raw.decode().replace('"left\rright"', "").splitlines()]) == 3


TORN_WRITER = textwrap.dedent(
    """
    import resource, sys, time
    from otel_carbon.exporters.emissions_csv import EmissionsCsvFile
    from otel_carbon.exporters.codecarbon_rows import codecarbon_row
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # ulimit -f
    target = EmissionsCsvFile(sys.argv[1])
    ok = 0
    for i in range(200):
        row = codecarbon_row(end_unix_s=time.time(), project_name="p" * 50, run_id=f"run-{i}", experiment_id="e",
                             duration_s=1.0, cpu_j=1.0, memory_j=1.0, gpu_j=0.0, emissions_g=1.0, zone="FR", pue=1.0)
        ok += target.append(row)
    print(ok, target.rows_refused)
    """
)


def test_a_write_cut_short_by_a_file_size_limit_leaves_no_torn_row(tmp_path):
    path = tmp_path / "emissions.csv"
    limit = 4000  # room for the header and a few rows, then a row that only partly fits
    out = subprocess.run([sys.executable, "-c", TORN_WRITER, str(path), str(limit)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    written, refused = map(int, out.stdout.split())
    assert written >= 1 and refused == 200 - written
    raw = path.read_bytes()
    assert len(raw) <= limit and raw.endswith(b"\n")
    header, *rows = read_rows(path)
    assert len(rows) == written and all(len(r) == len(header) for r in rows)
    assert [dict(zip(header, r))["run_id"] for r in rows] == [f"run-{i}" for i in range(written)]
    # the file takes the next row whole once there is room again
    assert EmissionsCsvFile(path).append(sample_row(999))
    assert read_rows(path)[-1][CODECARBON_COLUMNS.index("run_id")] == "run-999"


FORMULAS = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tTAB"]


def test_formula_like_text_is_kept_as_is_by_default_like_codecarbon(tmp_path, monkeypatch):
    monkeypatch.delenv("OTEL_CARBON_CSV_SAFE", raising=False)
    path = tmp_path / "emissions.csv"
    assert EmissionsCsvFile(path).append(*[sample_row(i, project=p) for i, p in enumerate(FORMULAS)])
    assert [dict(zip(CODECARBON_COLUMNS, r))["project_name"] for r in read_rows(path)[1:]] == FORMULAS


@pytest.mark.parametrize("how", ["env", "argument"])
def test_csv_safe_prefixes_formula_like_text_only(tmp_path, monkeypatch, how):
    path = tmp_path / "emissions.csv"
    if how == "env":
        monkeypatch.setenv("OTEL_CARBON_CSV_SAFE", "on")
        target = EmissionsCsvFile(path)
    else:
        monkeypatch.delenv("OTEL_CARBON_CSV_SAFE", raising=False)
        target = EmissionsCsvFile(path, safe=True)
    rows = [sample_row(i, project=p) for i, p in enumerate(FORMULAS)]
    edited = sample_row(9)
    edited["experiment_id"] = "=1+1"  # an edited row is encoded in full: the same rule applies
    assert target.append(*rows, edited)
    got = [dict(zip(CODECARBON_COLUMNS, r)) for r in read_rows(path)[1:]]
    assert [g["project_name"] for g in got[:-1]] == ["'" + p for p in FORMULAS]
    assert got[-1]["experiment_id"] == "'=1+1" and got[-1]["project_name"] == "p"
    assert all(float(g["emissions"]) == 0.005 for g in got)  # numbers are never prefixed


def test_csv_safe_with_a_bad_value_warns_and_stays_off(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OTEL_CARBON_CSV_SAFE", "maybe")
    assert EmissionsCsvFile(tmp_path / "e.csv").safe is False
    assert "OTEL_CARBON_CSV_SAFE" in caplog.text
    with pytest.raises(ValueError, match="safe"):
        EmissionsCsvFile(tmp_path / "e.csv", safe="yes")
