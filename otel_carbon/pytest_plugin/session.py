"""What ``--carbon`` does in a pytest run: a span per test, the gate, the outputs.

Each test's setup, call and teardown run inside one span named after its node id (started
before any other plugin's setup hook, ended after every teardown hook; the reporting
between the phases is inside it too: well under a millisecond, more for a failure's traceback). The sampler starts at
the first test, so the xdist controller, which runs no test, measures nothing.

xdist: each worker measures its own tests and hands their spans (one OTLP JSON line) to the
controller in ``workeroutput``; the controller merges them, compares, gates and writes.
The gate works as ``--cov-fail-under`` does: a failed budget counts as a failed test, so
pytest exits with status 1 and prints why in the summary.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import pytest

from otel_carbon.pytest_plugin import Options, measure

_OUTPUT_KEY = "otel_carbon_spans"


class CarbonSession:
    def __init__(self, config: Any, options: Options) -> None:
        self.config = config
        self.options = options
        self.worker = hasattr(config, "workerinput")
        self.lines: List[str] = []  # this run's test spans, OTLP JSON lines
        self.open: Dict[str, Any] = {}
        self.records: List[Any] = []
        self.comparison: Any = None
        self.errors: List[str] = []
        self.base: Optional[List[Any]] = None
        if options.compare and not self.worker:
            self.base = _read_baseline(options.compare)

    # -- measuring ------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_setup(self, item: Any) -> Any:
        measure.keep_test_spans()
        self.open[item.nodeid] = measure.Current(item.nodeid)
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: Any, nextitem: Any) -> Any:
        try:
            return (yield)
        finally:
            current = self.open.pop(item.nodeid, None)
            if current is not None:
                current.end()

    def _collect(self) -> None:
        for current in list(self.open.values()):  # an interrupted test
            current.end()
        self.open.clear()
        spans = measure.take_finished()
        if spans:
            from otel_carbon.exporters.otlp_json import spans_to_json_line

            self.lines.append(spans_to_json_line(spans))

    # -- xdist ----------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        self.lines.extend(getattr(node, "workeroutput", {}).get(_OUTPUT_KEY, ()))

    # -- the end of the run ------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: Any) -> Any:
        result = yield
        self._collect()
        if self.worker:
            self.config.workeroutput[_OUTPUT_KEY] = self.lines
            return result
        from otel_carbon.report_data import iter_spans

        self.records = list(iter_spans(self.lines))
        options = self.options
        if self.base is not None:
            from otel_carbon.pytest_plugin import gate
            from otel_carbon.report_data import group_spans

            self.comparison = gate.compare(group_spans(self.base), group_spans(self.records), options.min_cpu_s)
            if gate.judge(self.comparison, options.fail_over, options.fail_over_test):
                session.testsfailed += 1
        self._write()
        return result

    def _write(self) -> None:
        from otel_carbon.pytest_plugin.reports import write_lines, write_report

        options = self.options
        outputs = [("save", options.save)] if options.save else []
        for kind, path in [*outputs, *options.reports]:
            try:
                if kind == "save":
                    write_lines(path, self.lines, append=options.save_append)
                else:
                    write_report(kind, path, self.lines, self.records, self.comparison)
            except OSError as exc:
                self.errors.append(f"could not write {path}: {exc.strerror or exc}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.worker:
            return
        from otel_carbon.pytest_plugin.reports import terminal_lines

        failed = bool(self.comparison is not None and self.comparison.failures)
        terminalreporter.write_sep("-", "carbon: energy and CO2e per test", red=failed, bold=failed)
        if not self.records:
            terminalreporter.write_line("no test was measured")
        else:
            for line in terminal_lines(self.records, self.comparison, self.options.top):
                terminalreporter.write_line(line, red=line.startswith("FAIL"))
        for path in [self.options.save, *(p for _, p in self.options.reports)]:
            if path:
                terminalreporter.write_line(f"carbon: wrote {path}")
        for error in self.errors:
            terminalreporter.write_line(f"carbon: {error}", red=True)


def _read_baseline(path: str) -> List[Any]:
    from otel_carbon.report_data import read_spans

    try:
        spans = read_spans(path)
    except OSError as exc:
        raise pytest.UsageError(f"--carbon-compare: cannot read {path}: {exc.strerror or exc}") from None
    if not any(s.energy_j is not None for s in spans):
        raise pytest.UsageError(f"--carbon-compare: no test span with carbon figures in {path}")
    return spans
