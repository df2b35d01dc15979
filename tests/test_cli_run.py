"""otel-carbon run: a Python program with zero code, any other command as a process tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from otel_carbon import attributes as R
from otel_carbon.data import load_table
from otel_carbon.intensity import resolve_intensity
from otel_carbon.report_data import read_spans
from otel_carbon.sensors.cpu_model import ccf_params

APP = textwrap.dedent(
    """
    import sys, time
    from opentelemetry import trace
    tracer = trace.get_tracer("app")

    def burn(seconds):
        t = time.thread_time()
        while time.thread_time() - t < seconds:
            pass

    with tracer.start_as_current_span("work-small"):
        burn(0.05)
    for _ in range(2):
        with tracer.start_as_current_span("work-big"):
            burn(0.1)
    with open(sys.argv[1], "w") as fh:
        fh.write(str(time.process_time()))
    print("app output")
    sys.exit(int(sys.argv[2]))
    """
)


def env_for_tests(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH"))}
    env.update(OTEL_CARBON_CPU_MODEL="ccf", OTEL_CARBON_COUNTRY="FR", OTEL_CARBON_NVML="off")
    env.update(extra)
    return env


def price_j_per_cpu_s():
    min_w, max_w, _ = ccf_params(None, load_table("cpu_power_model"))
    return max_w - min_w


def otel_carbon_run(tmp_path, *argv, env=None, timeout=120):
    summary = tmp_path / "summary.json"
    out = subprocess.run(
        [sys.executable, "-m", "otel_carbon.cli", "run", "--summary-json", str(summary), *argv],
        capture_output=True, text=True, env=env or env_for_tests(), cwd=tmp_path, timeout=timeout,
    )
    data = json.loads(summary.read_text()) if summary.exists() else None
    return out, data


@pytest.fixture
def app(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(APP)
    return path


def test_python_program_is_instrumented_with_zero_code(tmp_path, app):
    spans_file = tmp_path / "spans.jsonl"
    cpu_file = tmp_path / "cpu.txt"
    out, s = otel_carbon_run(tmp_path, "--no-auto-instrument", "--output", str(spans_file), "--",
                             sys.executable, str(app), str(cpu_file), "3")
    assert out.returncode == 3, out.stderr  # the child's exit code
    assert out.stdout.strip() == "app output"  # the summary goes to stderr
    assert s["python_instrumented"] is True
    assert s["cpu_time_s"] >= float(cpu_file.read_text())  # the process tree includes the child's CPU
    assert s["energy_j"]["cpu"] == pytest.approx(s["cpu_time_s"] * price_j_per_cpu_s(), rel=1e-3)
    fr = resolve_intensity({}, country="FR")
    assert s["zone"] == "FR"
    assert s["emissions_g"] == pytest.approx(s["energy_total_j"] * fr.g_per_kwh * fr.pue / 3.6e6)
    assert [r["key"] for r in s["top_spans"]] == ["work-big", "work-small"]
    big, small = s["top_spans"]
    assert big["count"] == 2 and small["count"] == 1
    assert big["energy_total_j"] == pytest.approx(0.2 * price_j_per_cpu_s(), rel=0.2)
    assert "ESTIMATED" in out.stderr and "work-big" in out.stderr and "zone FR" in out.stderr
    spans = read_spans(str(spans_file))
    (tree,) = [x for x in spans if x.attributes.get(R.RUN_SCOPE) == R.SCOPE_PROCESS_TREE]
    roots = [x for x in spans if x.parent_span_id == tree.span_id]
    assert len(roots) == 1 and roots[0].attributes[R.RUN_SCOPE] == R.SCOPE_PROCESS
    assert roots[0].trace_id == tree.trace_id
    assert tree.attributes["process.exit.code"] == 3
    assert tree.energy_j == pytest.approx(s["energy_total_j"])
    # a second run appends to the same file; its summary counts only its own spans
    out, s2 = otel_carbon_run(tmp_path, "--no-auto-instrument", "--output", str(spans_file), "--",
                              sys.executable, str(app), str(cpu_file), "0")
    assert out.returncode == 0 and s2["spans"] == 3 and s2["top_spans"][0]["count"] == 2
    assert len(read_spans(str(spans_file))) == 2 * len(spans)


def test_fresh_machine_no_collector_default_path(tmp_path, app):
    """The README's first command: no configuration, auto-instrumentation on, no collector."""
    out, s = otel_carbon_run(tmp_path, "--", sys.executable, str(app), str(tmp_path / "cpu.txt"), "0")
    assert out.returncode == 0, out.stderr
    assert s["python_instrumented"] is True and s["spans"] == 3
    assert "4317" not in out.stderr and "Failed to export" not in out.stderr
    assert s["spans_file"] is None  # the temporary file is gone


def test_other_commands_are_one_span_over_the_process_tree(tmp_path):
    script = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; exit 7"
    spans_file = tmp_path / "spans.jsonl"
    out, s = otel_carbon_run(tmp_path, "--output", str(spans_file), "--", "sh", "-c", script)
    assert out.returncode == 7
    assert s["python_expected"] is False and s["cpu_time_s"] > 0.05
    assert s["energy_j"]["cpu"] == pytest.approx(s["cpu_time_s"] * price_j_per_cpu_s(), rel=1e-3)
    (span,) = read_spans(str(spans_file))
    assert span.attributes[R.RUN_SCOPE] == R.SCOPE_PROCESS_TREE and span.cpu_time_s == pytest.approx(s["cpu_time_s"])


def test_exit_codes_of_signals_and_missing_commands(tmp_path):
    out, _ = otel_carbon_run(tmp_path, "--", "sh", "-c", "kill -TERM $$")
    assert out.returncode == 128 + 15
    out, _ = otel_carbon_run(tmp_path, "--", "no-such-command-xyz")
    assert out.returncode == 127 and "command not found" in out.stderr
    out, _ = otel_carbon_run(tmp_path)
    assert out.returncode == 2


def test_the_programs_own_sitecustomize_still_runs(tmp_path, app):
    site = tmp_path / "site"
    site.mkdir()
    marker = tmp_path / "marker.txt"
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    env = env_for_tests(PYTHONPATH=str(site))
    out, s = otel_carbon_run(tmp_path, "--no-auto-instrument", "--", sys.executable, str(app),
                             str(tmp_path / "cpu.txt"), "0", env=env)
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "ran"
    assert s["python_instrumented"] is True


def test_a_python_that_cannot_be_instrumented_is_still_measured(tmp_path, app):
    # -I ignores PYTHONPATH, so our sitecustomize never loads
    out, s = otel_carbon_run(tmp_path, "--", sys.executable, "-I", str(app), str(tmp_path / "cpu.txt"), "0")
    assert out.returncode == 0
    assert s["python_instrumented"] is False and s["cpu_time_s"] > 0.2
    assert "measured as a process only" in out.stderr
