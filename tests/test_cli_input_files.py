"""report / compare on hostile input: bad lines are skipped and counted, never data, never a traceback."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from otel_carbon.cli import main
from otel_carbon.cli.span_lines import ReadStats, read_spans

T0 = 1_700_000_000_000_000_000


def span_line(energy=1.0, name="GET", route="/work", **span_fields):
    """One OTLP JSON line with one server span; ``energy`` is put in as given (any JSON)."""
    span = {
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": name, "kind": 2,
        "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1_000_000),
        "attributes": [
            {"key": "http.route", "value": {"stringValue": route}},
            {"key": "http.request.method", "value": {"stringValue": "GET"}},
            {"key": "carbon.energy.total", "value": {"doubleValue": energy}},
            {"key": "carbon.emissions", "value": {"doubleValue": 0.1}},
            {"key": "carbon.cpu.time", "value": {"doubleValue": 0.25}},
        ],
    }
    span.update(span_fields)
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})


GOOD = span_line(2.0)

# (what the line is, the line, the reason counted)
BAD_LINES = [
    ("resourceSpans holds a string", '{"resourceSpans":["x"]}', "malformed resourceSpans"),
    ("attributes is a number", json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": 5}]}]}]}),
     "malformed attributes"),
    ("doubleValue is not a number", span_line("abc"), "malformed doubleValue"),
    ("nested 100k deep", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("a 1e999 timestamp", span_line(1.0).replace(f'"{T0}"', "1e999", 1), "timestamp out of range"),
    ("a timestamp past 2**64", span_line(1.0, startTimeUnixNano=str(2**64)), "timestamp out of range"),
    ("Infinity as a bare JSON constant", span_line(1.0).replace('"doubleValue": 1.0', '"doubleValue": Infinity'),
     "Infinity in JSON"),
    ("NaN as a bare JSON constant", span_line(1.0).replace('"doubleValue": 1.0', '"doubleValue": NaN'), "NaN in JSON"),
    ("+inf as proto3 JSON writes it", span_line("Infinity"), "non-finite carbon.energy.total"),
    ("-inf as proto3 JSON writes it", span_line("-Infinity"), "non-finite carbon.energy.total"),
    ("NaN as proto3 JSON writes it", span_line("NaN"), "non-finite carbon.energy.total"),
    ("1e308 J", span_line(1e308), "implausible carbon.energy.total (over 1e12)"),
    ("a negative energy", span_line(-1.0), "negative carbon.energy.total"),
    ("energy as a string value", span_line(1.0).replace('{"doubleValue": 1.0}', '{"stringValue": "1"}'),
     "carbon.energy.total is not a number"),
    ("not JSON", "not json at all", "not JSON"),
    ("a JSON list", "[1, 2]", "not an OTLP JSON object"),
    ("bytes that are not UTF-8", b'{"resourceSpans": "\xff"}'.decode("latin-1"), "malformed resourceSpans"),
]


@pytest.mark.parametrize("label, line, reason", BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_each_malformed_line_is_skipped_and_counted_with_its_reason(tmp_path, capsys, label, line, reason):
    path = tmp_path / "spans.jsonl"
    path.write_text(GOOD + "\n" + line + "\n" + GOOD + "\n", encoding="latin-1" if "\xff" in line else "utf-8")
    stats = ReadStats()
    spans = read_spans(str(path), stats)
    assert len(spans) == 2 and stats.bad_lines == 1 and stats.lines == 3
    assert [r for r in stats.skipped] == [reason] and stats.first_lines[reason] == [2]
    assert main(["report", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)  # strict JSON: NaN / Infinity would not parse
    assert data["rows"][0]["energy_total_j"] == 4.0 and data["bad_lines"] == 1
    assert f"1 line skipped: 1 {reason} (line 2)" in captured.err


def test_two_huge_energies_cannot_overflow_a_total(tmp_path, capsys):
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join([span_line(1e308), span_line(1e308), GOOD]) + "\n")
    assert main(["report", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["totals"]["energy_total_j"] == 2.0 and data["bad_lines"] == 2


def test_the_skip_message_counts_every_reason_and_names_the_first_lines(tmp_path, capsys):
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(["x", GOOD, "y", span_line(-1.0), "z", "w", GOOD]) + "\n")
    assert main(["report", str(path)]) == 0
    err = capsys.readouterr().err
    assert "5 lines skipped: 4 not JSON (lines 1, 3, 5, ...); 1 negative carbon.energy.total (line 4)" in err


def test_a_line_over_the_cap_is_read_past_not_held(tmp_path):
    path = tmp_path / "spans.jsonl"
    long_line = '{"resourceSpans": [], "pad": "' + "x" * 5000 + '"}'
    path.write_text(GOOD + "\n" + long_line + "\n" + GOOD + "\n")
    stats = ReadStats()
    assert len(read_spans(str(path), stats, max_line_bytes=1024)) == 2
    assert stats.skipped == {"longer than 1024 bytes": 1} and stats.first_lines["longer than 1024 bytes"] == [2]


def test_a_line_exactly_at_the_cap_is_read(tmp_path):
    path = tmp_path / "spans.jsonl"
    path.write_text(GOOD + "\n" + GOOD)  # no final newline
    stats = ReadStats()
    assert len(read_spans(str(path), stats, max_line_bytes=len(GOOD))) == 2 and stats.bad_lines == 0


def run_cli(*argv, stdin=None):
    return subprocess.run([sys.executable, "-m", "otel_carbon", *argv], capture_output=True, text=True, timeout=120,
                          stdin=stdin)


@pytest.mark.parametrize("what", ["missing", "directory", "under a file", "empty", "only garbage", "no figures",
                                  "endless device"])
def test_unusable_input_exits_2_in_one_line(tmp_path, what):
    path = tmp_path / "in.jsonl"
    if what == "directory":
        path.mkdir()
    elif what == "under a file":
        path.write_text(GOOD + "\n")
        path = path / "in.jsonl"  # ENOTDIR
    elif what == "empty":
        path.write_text("")
    elif what == "only garbage":
        path.write_text("garbage\n" + "[" * 100_000 + "\n")
    elif what == "no figures":
        path.write_text(span_line(1.0).replace("carbon.energy.total", "other.figure") + "\n")
    elif what == "endless device":
        path.symlink_to("/dev/zero")  # zeros without a newline, forever
    for argv in (["report", str(path)], ["compare", str(path), str(path)]):
        out = run_cli(*argv)
        assert out.returncode == 2, (argv, out.stderr)
        assert "Traceback" not in out.stderr and "error:" in out.stderr
        assert out.stdout == ""


def test_nan_in_new_is_a_bad_line_not_within_budget(tmp_path, capsys):
    base, new = tmp_path / "base.jsonl", tmp_path / "new.jsonl"
    base.write_text(GOOD + "\n")
    new.write_text(span_line("NaN") + "\n")
    assert main(["compare", str(base), str(new), "--budget", "5%"]) == 2  # NEW has no usable span
    captured = capsys.readouterr()
    assert "OK" not in captured.out and "non-finite carbon.energy.total" in captured.err
    new.write_text(span_line("NaN") + "\n" + span_line(4.0) + "\n")
    assert main(["compare", str(base), str(new), "--budget", "5%"]) == 1  # the real figure doubled
    assert "FAIL GET /work: +100.0% per call" in capsys.readouterr().out


def test_negative_energies_cannot_pass_a_budget(tmp_path, capsys):
    base, new = tmp_path / "base.jsonl", tmp_path / "new.jsonl"
    base.write_text(GOOD + "\n")
    new.write_text(span_line(-2.0) + "\n" + span_line(3.0) + "\n")
    assert main(["compare", str(base), str(new), "--budget", "5%", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    (row,) = data["rows"]
    assert row["new_calls"] == 1 and row["change_pct"] == pytest.approx(50.0)


def test_compare_json_is_strict_even_for_a_route_that_cost_nothing_before(tmp_path, capsys):
    base, new = tmp_path / "base.jsonl", tmp_path / "new.jsonl"
    base.write_text(span_line(0.0) + "\n")
    new.write_text(span_line(1.0) + "\n")
    assert main(["compare", str(base), str(new), "--budget", "5%", "--json"]) == 1
    out = capsys.readouterr().out
    assert "Infinity" not in out and "NaN" not in out
    (row,) = json.loads(out)["rows"]
    assert row["change_pct"] is None and row["over_budget"] is True
    assert main(["compare", str(base), str(new), "--budget", "5%"]) == 1
    assert "new cost (BASE was 0)" in capsys.readouterr().out


def test_html_never_holds_nan_or_infinity(tmp_path):
    path, html = tmp_path / "spans.jsonl", tmp_path / "r.html"
    path.write_text("\n".join([GOOD, span_line("NaN"), span_line("Infinity"), span_line(1e308)]) + "\n")
    assert main(["report", str(path), "--html", str(html)]) == 0
    text = html.read_text()
    assert "NaN" not in text and "Infinity" not in text and "inf" not in text.replace("info", "")
    assert math.isfinite(float(text.split('data-value="')[1].split('"')[0]))
