"""emissions.csv rows of a decorated function called many times a second: the first rows of
each second at once, the rest together a moment later, none lost (exit, fork, stop)."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest

from otel_carbon import EmissionsTracker, track_emissions
from otel_carbon.exporters import row_batches
from otel_carbon.track import flush_rows


@pytest.fixture(autouse=True)
def fresh_delay(monkeypatch):
    """Each test reads OTEL_CARBON_CSV_MAX_DELAY_S afresh."""
    monkeypatch.setattr(row_batches, "_delay_s", [None])


def run_ids(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [row["run_id"] for row in csv.DictReader(f)]


def decorated(ccf_sampler, out_dir, name="burst"):
    @track_emissions(project_name=name, sampler=ccf_sampler, output_dir=str(out_dir))
    def work():
        return 1

    return work


def test_a_burst_writes_its_first_rows_at_once_and_the_rest_in_a_batch(ccf_sampler, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_CSV_MAX_DELAY_S", "30")  # only flush_rows() writes the batch here
    work = decorated(ccf_sampler, tmp_path)
    path = str(tmp_path / "emissions.csv")
    ids = []
    for _ in range(40):
        work()
        ids.append(work.last_result.run_id)
    written = run_ids(path)
    # the first ten of the second are in the file when their call returns; the rest wait
    assert written[: row_batches.BURST_ROWS] == ids[: row_batches.BURST_ROWS]
    assert len(written) < len(ids)
    assert flush_rows() is True
    assert run_ids(path) == ids  # every row once, in call order


def test_waiting_rows_are_written_within_the_delay_without_another_call(ccf_sampler, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_CSV_MAX_DELAY_S", "0.2")
    work = decorated(ccf_sampler, tmp_path)
    path = str(tmp_path / "emissions.csv")
    for _ in range(30):
        work()
    deadline = time.monotonic() + 5.0
    while len(run_ids(path)) < 30 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(run_ids(path)) == 30


def test_zero_delay_writes_every_row_when_its_call_returns(ccf_sampler, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_CSV_MAX_DELAY_S", "0")
    work = decorated(ccf_sampler, tmp_path)
    for i in range(25):
        work()
        assert len(run_ids(str(tmp_path / "emissions.csv"))) == i + 1


def test_a_tracker_stop_writes_its_row_at_once_after_the_files_waiting_rows(ccf_sampler, tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_CSV_MAX_DELAY_S", "30")
    work = decorated(ccf_sampler, tmp_path)
    for _ in range(20):
        work()
    tracker = EmissionsTracker("explicit", sampler=ccf_sampler, output_dir=str(tmp_path))
    tracker.start()
    result = tracker.stop()
    ids = run_ids(str(tmp_path / "emissions.csv"))
    assert len(ids) == 21 and ids[-1] == result.run_id  # the decorator's rows first, none waiting


def test_a_bad_delay_warns_naming_the_variable_and_uses_the_default(monkeypatch, caplog):
    from otel_carbon._log import reset_for_tests

    reset_for_tests()
    monkeypatch.setenv("OTEL_CARBON_CSV_MAX_DELAY_S", "soon")
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        assert row_batches.max_delay_s() == 0.5
    assert "OTEL_CARBON_CSV_MAX_DELAY_S" in caplog.text


CALLS = """
    from otel_carbon import track_emissions
    @track_emissions(project_name="script")
    def f():
        return 1
    ids = []
    for _ in range({calls}):
        f()
        ids.append(f.last_result.run_id)
"""


def run_script(tmp_path, body, calls):
    """Run ``body`` after ``calls`` calls of a decorated function (their run ids in ``ids``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_CARBON_CPU_MODEL="ccf", OTEL_CARBON_COUNTRY="FR", OTEL_CARBON_CSV_MAX_DELAY_S="30")
    code = textwrap.dedent(CALLS).format(calls=calls) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out


def test_rows_still_waiting_at_exit_are_written(tmp_path):
    out = run_script(tmp_path, """
        print(",".join(ids))
    """, 200)
    assert run_ids(str(tmp_path / "emissions.csv")) == out.stdout.strip().split(",")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_does_not_write_its_parents_waiting_rows(tmp_path):
    out = run_script(tmp_path, """
        import os
        from otel_carbon.track import flush_rows
        pid = os.fork()
        if pid == 0:
            f()  # the child's own row: written (its first of the second)
            print("child", f.last_result.run_id, flush=True)
            flush_rows()
            os._exit(0)
        os.waitpid(pid, 0)
        print(",".join(ids))
    """, 50)
    lines = out.stdout.split()
    child_id, parent_ids = lines[1], lines[2].split(",")
    written = run_ids(str(tmp_path / "emissions.csv"))
    assert sorted(written) == sorted(parent_ids + [child_id])  # each row once
