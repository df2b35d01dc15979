"""examples/track_three_ways.py runs and writes one CodeCarbon row per tracked run."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from otel_carbon.exporters.emissions_csv import CODECARBON_COLUMNS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "track_three_ways.py"


def test_three_ways_example(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_CARBON_CPU_MODEL"] = "ccf"
    out = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    labels = [line.split("  ")[0].strip() for line in out.stdout.splitlines()[:-1]]
    assert labels == ["object", "decorator", "async decorator", "context (flush)", "context"]
    assert "unavailable" not in out.stdout
    with open(tmp_path / "emissions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(CODECARBON_COLUMNS)
    assert len(rows) == 1 + 6  # object, decorator, two async calls, flush, context
    assert {r[1] for r in rows[1:]} == {"three-ways"}
