import os
import time

import pytest

if __package__:  # tests/ is a package (tests/__init__.py exists)
    from .otlp_receiver import OtlpReceiver
else:  # rootdir-relative import mode: tests/ itself is on sys.path
    from otlp_receiver import OtlpReceiver


# -- under CI=true a skipped test is a failure ----------------------------------------------
#
# CI installs everything the suite needs (.ci/run): a test that skips there did not test what CI
# claims, so it fails. Outside CI a skip is reported, with its reason, by ``-ra``. The only skips
# CI accepts are the ones that are the point of the run they happen in: the nested pure-Python
# pass (OTEL_CARBON_SPEEDUPS=off) has no compiled path to compare.

CI = os.environ.get("CI", "").strip().lower() == "true"
SKIPS_CI_ACCEPTS = ("OTEL_CARBON_SPEEDUPS=off",)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def _fail_skip_under_ci(report) -> None:
    if not (CI and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if any(accepted in reason for accepted in SKIPS_CI_ACCEPTS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI=true, where everything the test needs is installed: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip_under_ci(outcome.get_result())


@pytest.fixture
def otlp_receiver(monkeypatch):
    """A running in-process OTLP receiver (gRPC + HTTP on 127.0.0.1, OS-assigned ports).

    OTEL_EXPORTER_OTLP_* variables are removed for the test (they would
    override endpoints, timeouts, compression, headers, certificates of
    exporters created without explicit arguments), and 127.0.0.1/localhost are
    added to NO_PROXY so a proxy configured in the environment is not used.
    Both servers are shut down, and their threads joined, after the test.
    """
    for key in list(os.environ):
        if key.upper().startswith("OTEL_EXPORTER_OTLP_"):
            monkeypatch.delenv(key, raising=False)
    for key in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(key, "")
        monkeypatch.setenv(key, ",".join(p for p in (current, "127.0.0.1", "localhost") if p))
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def clean_carbon_env(monkeypatch):
    """No OTEL_CARBON_* variable nor OTEL_RESOURCE_ATTRIBUTES, and fresh log-once state."""
    from otel_carbon import _log

    for key in list(os.environ):
        if key.startswith("OTEL_CARBON_") or key == "OTEL_RESOURCE_ATTRIBUTES":
            monkeypatch.delenv(key, raising=False)
    _log.reset_for_tests()
    yield
    _log.reset_for_tests()


# -- carbon pipeline helpers ------------------------------------------------------------

from otel_carbon.intensity import Intensity, StaticIntensitySource  # noqa: E402
from otel_carbon.sampler import Sampler  # noqa: E402
from otel_carbon.sensors.probe import Probe  # noqa: E402


def wait_for(predicate, timeout_s: float = 10.0, step_s: float = 0.005) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passed; its last answer."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step_s)
    return bool(predicate())


def wait_for_a_price(sampler) -> None:
    """Until the sampler knows what a CPU-second costs: a measured counter's first tick
    has no price yet, nor has a quiet host's, and spans priced then say
    carbon.method=unavailable."""

    def priced() -> bool:
        burn_cpu_s(0.002)  # busy host time, which a price needs
        tick = sampler.ledger.latest
        return tick is not None and sum(tick.price_j_per_cpu_s) > 0

    assert wait_for(priced, 10)


def burn_cpu_s(seconds: float) -> float:
    """Spin on this thread for ``seconds`` of its own CPU time; return what was used."""
    import time

    start = time.thread_time()
    x = 0
    while time.thread_time() - start < seconds:
        for i in range(100):
            x += i * i
    return time.thread_time() - start


def fork_and_report(child_body, timeout_s: float = 15.0) -> dict:
    """Run ``child_body()`` (returns a JSON-able dict) in a forked child; return what it
    reported. A child that raises, or hangs past ``timeout_s`` (killed), fails the test."""
    import json
    import select

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, then leave without running pytest's teardown
        status = 0
        try:
            os.close(read_fd)
            os.write(write_fd, json.dumps(child_body()).encode())
        except BaseException as exc:  # noqa: BLE001
            try:
                os.write(write_fd, json.dumps({"error": repr(exc)}).encode())
            finally:
                status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    chunks = []
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            ready, _, _ = select.select([read_fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                os.kill(pid, 9)
                pytest.fail(f"the forked child did not report within {timeout_s} s (hung)")
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    report = json.loads(b"".join(chunks) or b"{}")
    assert "error" not in report, report.get("error")
    return report


def make_sampler(sensors, interval_s=0.05, g_per_kwh=100.0, zone="TEST", pue=1.0, start=True, idle_interval_s=1.0):
    """A private sampler over the given sensor objects, with a fixed intensity."""
    intensity = StaticIntensitySource(Intensity(g_per_kwh=g_per_kwh, zone=zone, pue=pue, source="test"))
    sampler = Sampler(
        Probe(sensors=list(sensors)), interval_s=interval_s, intensity=intensity, idle_interval_s=idle_interval_s
    )
    return sampler.start() if start else sampler


@pytest.fixture
def ccf_sampler():
    """A sampler over the CCF CPU line (a constant, known price per busy CPU-second)."""
    from otel_carbon.sensors.cpu_model import CpuModelSensor

    sensor = CpuModelSensor("ccf", min_w_per_vcpu=1.0, max_w_per_vcpu=5.0, n_vcpus=os.cpu_count() or 1)
    sampler = make_sampler([sensor])
    yield sampler
    sampler.shutdown()


@pytest.fixture
def traced(ccf_sampler):
    """(tracer, in-memory exporter) of a provider with our processor on ``ccf_sampler``."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_carbon import CarbonSpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(CarbonSpanProcessor(sampler=ccf_sampler))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


# -- the e2e tests run last ------------------------------------------------------------------
#
# They need Jaeger and the collector built from Go (collector/e2e/build.sh), which .ci/run
# starts in the background before anything else: running them last lets the rest of the suite
# overlap that build, and their build call waits for it (build.sh takes a lock).


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
