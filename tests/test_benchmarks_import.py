"""Every benchmark script still imports: a rename inside the package must not leave one
broken until someone next runs it (bench_interval.py once imported a function that had moved)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.py"))

LOAD = """
import importlib.util, sys
sys.path.insert(0, sys.argv[1])
spec = importlib.util.spec_from_file_location("benchmark_under_test", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # not __main__: defines, runs nothing
print(sorted(n for n in ("main",) if hasattr(module, n)))
"""


def test_there_are_benchmarks():
    assert "bench_span.py" in SCRIPTS and "bench_interval.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_script_imports(script):
    out = subprocess.run([sys.executable, "-c", LOAD, str(BENCHMARKS), str(BENCHMARKS / script)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    if script.startswith("bench_"):
        assert out.stdout.strip() == "['main']"
