"""Where the platform lacks what Linux has: ``pthread_getcpuclockid`` (macOS). The pure-Python
path falls back, and the C file builds without it (its spans then take the Python path).
Windows' missing ``os.pread`` is in test_append.py; no /proc and no RAPL in test_sampler.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_without_pthread_getcpuclockid_spans_still_get_their_own_cpu_time():
    """As on macOS: ``time.pthread_getcpuclockid`` missing. A span that burns 50 ms of CPU
    on its thread, beside one that sleeps, still gets its own CPU time from the thread clock."""
    code = textwrap.dedent(
        """
        import time
        del time.pthread_getcpuclockid
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from otel_carbon import CarbonSpanProcessor, attributes as A
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(CarbonSpanProcessor())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("burn"):
            t = time.thread_time()
            while time.thread_time() - t < 0.05:
                pass
        with tracer.start_as_current_span("sleep"):
            time.sleep(0.05)
        spans = {s.name: s.attributes for s in exporter.get_finished_spans()}
        print(spans["burn"][A.CPU_TIME], spans["burn"][A.CPU_CLOCK], spans["sleep"][A.CPU_TIME], spans["burn"][A.ENERGY_TOTAL] > 0)
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_CARBON_SPEEDUPS="off", OTEL_CARBON_CPU_MODEL="ccf", OTEL_CARBON_COUNTRY="FR")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    burn_s, clock, sleep_s, priced = out.stdout.split()
    assert 0.045 <= float(burn_s) <= 0.08 and clock == "thread" and priced == "True"
    assert float(sleep_s) < 0.01


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler here (CI's main pass has one)")
@pytest.mark.parametrize("missing", [False, True], ids=["linux", "no-pthread_getcpuclockid"])
def test_the_c_file_compiles_without_warnings_and_calls_pthread_getcpuclockid_only_where_it_exists(missing):
    include = sysconfig.get_paths()["include"]
    source = str(ROOT / "otel_carbon" / "_speedups.c")
    defines = ["-DOTEL_CARBON_NO_THREAD_CPUCLOCKID"] if missing else []
    flags = ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", *defines, f"-I{include}"]
    out = subprocess.run(["cc", "-fsyntax-only", *flags, source], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    # what the compiler sees of the file itself (its own lines, after the preprocessor)
    pre = subprocess.run(["cc", "-E", "-P", *flags, source], capture_output=True, text=True, timeout=120)
    assert pre.returncode == 0, pre.stderr[-3000:]
    assert ("pthread_getcpuclockid(pthread_self()" in pre.stdout) is not missing
