"""The pytest plugin: energy and CO2e per test, a baseline gate, the ``carbon`` fixture.

Registered through the ``pytest11`` entry point (``-p no:carbon`` turns it off). This
module is what pytest imports at start-up, so it imports nothing but pytest: with
``--carbon`` off no sampler starts and no OpenTelemetry module is loaded. ``--carbon``
registers :class:`otel_carbon.pytest_plugin.session.CarbonSession`, which does the work.

Defaults come from pytest's ini options (``[tool.pytest.ini_options]`` in
``pyproject.toml``, ``pytest.ini``, ``tox.ini`` or ``setup.cfg``): ``carbon``,
``carbon_top``, ``carbon_compare``, ``carbon_fail_over``, ``carbon_fail_over_test``,
``carbon_min_cpu_ms``, ``carbon_report``. A command-line option beats its ini option.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

_REPORT_KINDS = ("json", "html", "md")


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("carbon", "energy and CO2e per test (otel-carbon)")
    group.addoption("--carbon", action="store_true", default=None,
                    help="measure each test (setup, call, teardown) as a span: energy, CO2e, CPU time")
    group.addoption("--carbon-top", type=int, default=None, metavar="N",
                    help="tests listed in the terminal summary (default 10; 0: none)")
    group.addoption("--carbon-save", default=None, metavar="PATH",
                    help="write this run's test spans to PATH (OTLP JSON lines) as a baseline")
    group.addoption("--carbon-save-append", action="store_true", default=False,
                    help="add this run to --carbon-save's file instead of replacing it (a baseline of "
                    "several runs measures the run-to-run noise)")
    group.addoption("--carbon-compare", default=None, metavar="BASE",
                    help="compare each test and the total with the baseline BASE")
    group.addoption("--carbon-fail-over", default=None, metavar="PCT",
                    help="fail the run when the total or a test above the CPU floor grew more than PCT "
                    "(e.g. 10%%) and more than the noise; needs --carbon-compare")
    group.addoption("--carbon-fail-over-test", default=None, metavar="PCT",
                    help="the budget of each test (default: --carbon-fail-over)")
    group.addoption("--carbon-min-cpu-ms", type=float, default=None, metavar="MS",
                    help="tests with less CPU time in the baseline are not gated one by one (default 10)")
    group.addoption("--carbon-report", action="append", default=[], metavar="KIND:PATH",
                    help="write a report: json:PATH (OTLP JSON lines), html:PATH or md:PATH (repeatable)")
    parser.addini("carbon", "measure every test as with --carbon", type="bool", default=False)
    parser.addini("carbon_top", "tests listed in the terminal summary", default="10")
    parser.addini("carbon_compare", "baseline file for --carbon-compare", default="")
    parser.addini("carbon_fail_over", "budget of the total and each test, e.g. 10%", default="")
    parser.addini("carbon_fail_over_test", "budget of each test, e.g. 20%", default="")
    parser.addini("carbon_min_cpu_ms", "CPU floor (ms) for gating a test on its own", default="10")
    parser.addini("carbon_report", "reports to write, KIND:PATH each", type="linelist", default=[])


class Options:
    """The plugin's settings, validated once (command line over ini)."""

    def __init__(self, config: Any) -> None:
        def pick(option: str, ini: str) -> Any:
            value = config.getoption(option)
            return value if value not in (None, "", []) else config.getini(ini)

        self.enabled = bool(config.getoption("carbon") or config.getini("carbon"))
        self.top = _int(pick("carbon_top", "carbon_top"), "--carbon-top")
        self.save: Optional[str] = config.getoption("carbon_save") or None
        self.save_append = bool(config.getoption("carbon_save_append"))
        self.compare: Optional[str] = pick("carbon_compare", "carbon_compare") or None
        self.fail_over = _percent(pick("carbon_fail_over", "carbon_fail_over"), "--carbon-fail-over")
        self.fail_over_test = _percent(pick("carbon_fail_over_test", "carbon_fail_over_test"), "--carbon-fail-over-test")
        if self.fail_over_test is None:
            self.fail_over_test = self.fail_over
        self.min_cpu_s = _float(pick("carbon_min_cpu_ms", "carbon_min_cpu_ms"), "--carbon-min-cpu-ms") / 1000.0
        self.reports = [_report(spec) for spec in (config.getoption("carbon_report") or config.getini("carbon_report"))]
        # A result asked for on the command line implies --carbon (ini values are defaults only).
        if any(config.getoption(name) not in (None, "", [], False) for name in _IMPLY):
            self.enabled = True
        if self.enabled and self.fail_over_test is not None and not self.compare:
            raise pytest.UsageError("--carbon-fail-over needs a baseline: --carbon-compare=BASE")
        if self.save_append and not self.save:
            raise pytest.UsageError("--carbon-save-append needs --carbon-save=PATH")


_IMPLY = ("carbon_save", "carbon_compare", "carbon_report", "carbon_fail_over", "carbon_fail_over_test")


def _int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise pytest.UsageError(f"{name} expects a whole number >= 0, got {value!r}")
    return number


def _float(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not 0 <= number < float("inf"):
        raise pytest.UsageError(f"{name} expects a number >= 0, got {value!r}")
    return number


def _percent(value: Any, name: str) -> Optional[float]:
    if value in (None, ""):
        return None
    text = str(value).strip()
    return _float(text[:-1] if text.endswith("%") else text, name)


def _report(spec: str) -> "tuple[str, str]":
    kind, sep, path = str(spec).partition(":")
    if not sep or kind not in _REPORT_KINDS or not path:
        kinds = ", ".join(_REPORT_KINDS)
        raise pytest.UsageError(f"--carbon-report expects KIND:PATH with KIND one of {kinds}, got {spec!r}")
    return kind, path


def pytest_configure(config: Any) -> None:
    options = Options(config)
    if not options.enabled:
        return
    from otel_carbon.pytest_plugin.session import CarbonSession

    config.pluginmanager.register(CarbonSession(config, options), "otel-carbon-session")


@pytest.fixture
def carbon() -> Any:
    """Measure a block of a test: ``with carbon.measure() as m: ...`` then ``m.energy_j``,
    ``m.cpu_time_s``, ``m.emissions_g``, ``m.method`` (read them after the block). Works
    with or without ``--carbon``; the sampler starts at the first measurement."""
    from otel_carbon.pytest_plugin.measure import CarbonFixture

    return CarbonFixture()
