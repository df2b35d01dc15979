"""The command line as a newcomer meets it: --version, python -m, --help, pipes, units, exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_carbon import __version__
from otel_carbon import attributes as A
from otel_carbon.cli import main
from otel_carbon.exporters.otlp_json import OtlpJsonFileSpanExporter
from otel_carbon.units_text import format_energy, format_grams, format_number, format_seconds, format_si

SUBCOMMANDS = ("sensors", "intensity", "run", "report", "compare")
T0 = 1_700_000_000_000_000_000


def cli(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "otel_carbon", *argv], capture_output=True, text=True, timeout=120,
                          **kwargs)


def test_version_and_python_dash_m():
    out = cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"otel-carbon {__version__}"
    same = subprocess.run([sys.executable, "-m", "otel_carbon.cli", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert same.stdout == out.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_has_a_description_exit_codes_and_an_example(command):
    out = cli(command, "--help")
    assert out.returncode == 0
    text = out.stdout
    usage, _, rest = text.partition("\n\n")
    assert usage.startswith("usage: otel-carbon " + command)
    description = rest.split("\n\n")[0]
    assert len(description.split()) >= 8 and not description.startswith(("positional", "options"))
    assert "exit codes:" in text and re.search(r"^\s+(\d|N)", text.split("exit codes:")[1], re.M)
    example = text.split("example:")[1]
    assert f"otel-carbon {command}" in example


def test_compare_help_says_what_a_route_key_is():
    assert "'GET /work'" in cli("compare", "--help").stdout


def test_top_level_help_lists_the_commands_and_exit_codes():
    out = cli("--help")
    assert out.returncode == 0 and "exit codes:" in out.stdout
    for command in SUBCOMMANDS:
        assert command in out.stdout


def write(path, spans, service="shop", provider=None):
    """spans: [(name, energy J, extra attributes, parent index or None)]"""
    provider = provider or TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
    tracer = provider.get_tracer("t")
    from opentelemetry import trace

    made = []
    for name, energy, attrs, parent in spans:
        ctx = trace.set_span_in_context(made[parent]) if parent is not None else None
        span = tracer.start_span(name, context=ctx, start_time=T0,
                                 attributes={A.ENERGY_TOTAL: energy, A.EMISSIONS: energy * 0.1, A.CPU_TIME: energy / 4,
                                             A.METHOD: A.ESTIMATED, **attrs})
        made.append(span)
    for span in reversed(made):
        span.end(end_time=T0 + 1_270_000_000)  # 1.27 s: was printed "1.27e+03 ms"
    provider.shutdown()
    return str(path)


def test_report_pipes_into_head_without_a_traceback(tmp_path):
    path = write(tmp_path / "s.jsonl", [(f"route-{i}", 1.0 + i, {}, None) for i in range(3000)])
    shell = f"{sys.executable} -m otel_carbon report {path} | head -1; exit ${{PIPESTATUS[0]}}"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("span / route")
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr
    assert out.returncode in (0, 141)  # 141: ended by the closed pipe, as `yes | head` is


def test_report_of_a_file_without_spans_exits_2(tmp_path, capsys):
    empty = tmp_path / "metrics-only.jsonl"
    empty.write_text(json.dumps({"resourceMetrics": []}) + "\n")
    assert main(["report", str(empty)]) == 2
    assert "no span" in capsys.readouterr().err


def test_report_total_counts_each_request_once(tmp_path, capsys):
    """A parent's figures include its children's work: the total sums top-level spans only."""
    path = write(tmp_path / "s.jsonl", [
        ("GET /a", 2.0, {}, None), ("db", 0.5, {}, 0), ("cache", 0.11, {}, 1),  # one request: 2.0 J in all
        ("GET /b", 0.61, {}, None),
    ])
    assert main(["report", path, "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["energy_total_j"] == pytest.approx(2.61) and totals["counted_spans"] == 2
    assert main(["report", path]) == 0
    out = capsys.readouterr().out
    assert "total: 2.61 J" in out and "3.22" not in out


def test_report_total_counts_a_remote_child_as_its_own_request(tmp_path, capsys):
    """Two services of one trace in one file (a Collector's file exporter): the back end's
    server span has a remote parent, so its figures are not inside the front end's."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext

    path = tmp_path / "two-services.jsonl"
    front = TracerProvider(resource=Resource.create({"service.name": "front"}))
    front.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
    figures = {A.ENERGY_TOTAL: 2.0, A.EMISSIONS: 0.2, A.CPU_TIME: 0.5, A.METHOD: A.ESTIMATED}
    with front.get_tracer("t").start_as_current_span("GET /checkout", attributes=figures) as span:
        sent = span.get_span_context()
    front.shutdown()
    back = TracerProvider(resource=Resource.create({"service.name": "back"}))
    back.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(path)))
    remote = SpanContext(sent.trace_id, sent.span_id, is_remote=True, trace_flags=sent.trace_flags)
    with back.get_tracer("t").start_as_current_span("GET /stock", context=trace.set_span_in_context(NonRecordingSpan(remote)),
                                                    attributes={**figures, A.ENERGY_TOTAL: 1.0}):
        with back.get_tracer("t").start_as_current_span("db", attributes={**figures, A.ENERGY_TOTAL: 0.25}):
            pass
    back.shutdown()
    assert main(["report", str(path), "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["energy_total_j"] == pytest.approx(3.0) and totals["counted_spans"] == 2


def test_report_totals_a_run_wrapper_apart(tmp_path, capsys):
    path = write(tmp_path / "s.jsonl", [
        ("otel-carbon run: python app.py", 10.0, {A.RUN_SCOPE: A.SCOPE_PROCESS_TREE}, None),
        ("python app.py", 9.0, {A.RUN_SCOPE: A.SCOPE_PROCESS}, 0),
        ("GET /a", 2.0, {}, None),
    ])
    assert main(["report", path, "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"]
    assert totals["energy_total_j"] == 2.0 and totals["whole_program_energy_j"] == 10.0


def two_runs(tmp_path, new_wrapper_j):
    files = []
    for label, per_call, wrapper_j in (("base", 1.0, 10.0), ("new", 1.0, new_wrapper_j)):
        files.append(write(tmp_path / f"{label}.jsonl", [
            ("otel-carbon run: pytest", wrapper_j, {A.RUN_SCOPE: A.SCOPE_PROCESS_TREE}, None),
            ("pytest", wrapper_j * 0.9, {A.RUN_SCOPE: A.SCOPE_PROCESS}, 0),
            *[("GET", per_call, {"http.route": "/work", "http.request.method": "GET"}, None) for _ in range(5)],
        ]))
    return files


def test_compare_does_not_treat_the_run_wrapper_as_a_route(tmp_path, capsys):
    base, new = two_runs(tmp_path, new_wrapper_j=20.0)  # the whole run doubled (slower start-up), routes did not
    assert main(["compare", base, new, "--budget", "5%", "--json"]) == 0
    keys = [r["key"] for r in json.loads(capsys.readouterr().out)["rows"]]
    assert keys == ["GET /work"]


def test_route_budget_naming_a_missing_route_is_an_error(tmp_path, capsys):
    base, new = two_runs(tmp_path, new_wrapper_j=10.0)
    assert main(["compare", base, new, "--route-budget", "GET /wrok=5%"]) == 2
    err = capsys.readouterr().err
    assert "'GET /wrok'" in err and "'GET /work'" in err
    assert main(["compare", base, new, "--route-budget", "GET /work=5%"]) == 0


@pytest.mark.parametrize("value, unit, text", [
    (0.0127, "J", "12.7 mJ"), (1270.0, "J", "1.27 kJ"), (3.18, "J", "3.18 J"), (0.7200000000000001, "g", "720 mg"),
    (4.5e-7, "g", "450 ng"), (2.5e-5, "g", "25 µg"), (999.96e-3, "J", "1 J"), (0.0, "g", "0 g"), (2.5e6, "g", "2.5 Mg"),
])
def test_one_unit_convention(value, unit, text):
    assert format_si(value, unit) == text


def test_durations_and_plain_numbers_have_no_exponent_and_no_float_noise():
    assert format_seconds(1.27) == "1.27 s" and format_seconds(0.0127) == "12.7 ms"
    assert format_seconds(1270.0) == "1270 s"
    assert format_number(0.7200000000000001) == "0.72" and format_number(1.2) == "1.2"
    assert format_energy(-0.5) == "-500 mJ" and format_grams(5.0) == "5 g"


NOISE = re.compile(r"\d[eE][+-]?\d|\d\.\d{7,}")  # exponent notation or a float's binary tail


def test_no_view_prints_exponents_or_float_noise(tmp_path):
    path = write(tmp_path / "s.jsonl", [("GET /tiny", 7.2e-7, {}, None), ("GET /big", 1270.0, {}, None),
                                        ("GET /odd", 0.1 + 0.2, {}, None)])
    new = write(tmp_path / "n.jsonl", [("GET /tiny", 7.3e-7, {}, None), ("GET /big", 1271.0, {}, None),
                                       ("GET /odd", 0.3, {}, None)])
    views = [cli("report", path).stdout, cli("compare", path, new, "--budget", "0.72").stdout,
             (tmp_path / "r.html").read_text() if cli("report", path, "--html", str(tmp_path / "r.html")).returncode == 0
             else ""]
    views[2] = re.sub(r'="[^"]*"|<style>[^<]*</style>', "", views[2])  # the text shown, not geometry or colours
    for text in views:
        assert text and not NOISE.search(text), NOISE.search(text)
    assert "1.27 s" in views[0] and "ms" not in views[0].split("GET /big")[1].splitlines()[0].split("J")[-1]


def test_the_pytest_plugin_tables_use_the_same_units(tmp_path):
    """The plugin's terminal and Markdown tables: SI prefixes chosen per value, never an
    exponent (``1.27e+03 ms``) or float noise."""
    from otel_carbon.cli.span_lines import read_spans
    from otel_carbon.pytest_plugin.reports import markdown, terminal_lines

    records = read_spans(str(write(tmp_path / "s.jsonl", [("t.py::tiny", 7.2e-7, {}, None),
                                                           ("t.py::big", 1270.0, {}, None),
                                                           ("t.py::odd", 0.1 + 0.2, {}, None)])))
    for text in ("\n".join(terminal_lines(records, None, 10)), markdown(records, None)):
        assert "t.py::big" in text and not NOISE.search(text), NOISE.search(text)
        assert not re.search(r"\d\.\d+e[+-]\d", text)


def test_sensors_text_has_no_float_noise(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "OTEL_CARBON_CPU_MODEL": "ccf", "OTEL_CARBON_NVML": "off",
           "OTEL_CARBON_POWERCAP_ROOT": str(tmp_path)}  # the ccf table's parameters: 0.72 W read as 0.72000...01
    out = cli("sensors", env=env)
    assert out.returncode == 0, out.stderr
    assert "min_w_per_vcpu:" in out.stdout and not NOISE.search(out.stdout), NOISE.search(out.stdout)
    as_json = json.loads(cli("sensors", "--json", env=env).stdout)  # the JSON keeps the full values
    assert as_json["sample_interval_s"] > 0


def test_intensity_text_uses_the_summary_s_digits():
    env = {"PATH": "/usr/bin:/bin", "OTEL_CARBON_INTENSITY": str(0.1 + 278.5), "OTEL_CARBON_PUE": "1.1"}
    out = cli("intensity", env=env)
    assert out.returncode == 0, out.stderr
    assert f"intensity  {format_number(0.1 + 278.5)} g CO2e/kWh" in out.stdout
    assert not NOISE.search(out.stdout) and "278.600" not in out.stdout


def test_run_summary_uses_the_same_units(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(
        """
        from opentelemetry import trace
        with trace.get_tracer("a").start_as_current_span("work"):
            sum(range(1000))
        """
    ))
    env = {"PATH": "/usr/bin:/bin", "OTEL_CARBON_CPU_MODEL": "ccf", "OTEL_CARBON_COUNTRY": "FR",
           "OTEL_CARBON_NVML": "off"}
    out = cli("run", "--no-auto-instrument", "--", sys.executable, str(app), env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = out.stderr[out.stderr.index("otel-carbon run:"):]
    assert not NOISE.search(summary), NOISE.search(summary)
    assert re.search(r"energy      [\d.]+ [mµnk]?J = [\d.]+ [mµnk]?Wh", summary)
    assert re.search(r"CO2e        [\d.]+ [mµnk]?g", summary)
