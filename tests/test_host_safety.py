"""The host application never waits for us, never traces our threads, and exits on time.

* The first span with a ``cloud.*`` Resource hands the intensity resolution to the sampler
  thread: the resolution's own log line says which thread did the work.
* The sampler thread runs with instrumentation suppressed.
* ``configure()`` with the default OTLP exporter and nothing listening: a real child
  process exits within the bounded flush (its run is guarded far above what the SDK's own
  retries would take), with one warning naming the endpoint and how to choose
  ``console``/``none``; with a receiver listening, the same exit still delivers the span.
* ``OTEL_CARBON_OUTPUT_DIR`` that is not a directory never raises from the trackers.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_carbon import attributes as A
from otel_carbon import config
from otel_carbon.intensity import bundled
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.sampler import Sampler
from otel_carbon.sensors.constant import ConstantPowerSensor
from otel_carbon.sensors.probe import Probe

if __package__:
    from .conftest import wait_for
else:
    from conftest import wait_for

pytestmark = pytest.mark.usefixtures("clean_carbon_env")


def _pipeline(resource: Resource):
    sampler = Sampler(Probe(sensors=[ConstantPowerSensor(power_w=50.0)]), interval_s=0.05).start()
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(CarbonSpanProcessor(sampler=sampler))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return sampler, provider, exporter


def test_the_first_span_hands_the_resource_to_the_sampler_thread(caplog):
    # an unknown region: its resolution logs a line, from whichever thread resolves it
    sampler, provider, _ = _pipeline(Resource({"cloud.provider": "aws", "cloud.region": "moon-central-1"}))
    try:
        with caplog.at_level(logging.WARNING, logger="otel_carbon"):
            with provider.get_tracer("t").start_as_current_span("first"):
                pass
            assert wait_for(lambda: any("moon-central-1" in r.getMessage() for r in caplog.records))
        [record] = [r for r in caplog.records if "moon-central-1" in r.getMessage()]
        assert record.threadName == "otel-carbon-sampler"
    finally:
        provider.shutdown()
        sampler.shutdown()


def test_later_spans_carry_the_resource_zone():
    expected = bundled.cloud("gcp", "europe-west1").intensity
    sampler, provider, exporter = _pipeline(Resource({"cloud.provider": "gcp", "cloud.region": "europe-west1"}))
    tracer = provider.get_tracer("t")
    try:
        with tracer.start_as_current_span("first"):
            pass
        assert wait_for(lambda: sampler.ledger.latest.intensity.zone == expected.zone)
        with tracer.start_as_current_span("later"):
            pass
        later = exporter.get_finished_spans()[-1].attributes
        assert (later[A.ZONE], later[A.INTENSITY]) == (expected.zone, expected.g_per_kwh)
    finally:
        provider.shutdown()
        sampler.shutdown()


def test_the_sampler_thread_runs_with_instrumentation_suppressed():
    seen = []
    sampler = Sampler(Probe(sensors=[ConstantPowerSensor(power_w=5.0)]), interval_s=0.05)
    sampler.add_tick_listener(lambda tick: seen.append(otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY)))
    sampler.register_span_counter(lambda: 1)  # keep it ticking
    sampler.start()
    try:
        assert wait_for(lambda: len(seen) >= 3)
    finally:
        sampler.shutdown()
    # the first tick runs on the caller's thread (start()), every later one on the sampler's:
    # all of them untraced, and the caller's context is as it was
    assert set(seen) == {True}
    assert otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY) is None


# -- exit ------------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import otel_carbon
    from opentelemetry import trace
    setup = otel_carbon.configure(service_name="exit-test")
    with trace.get_tracer("t").start_as_current_span("work"):
        sum(range(10000))
    if SHUTDOWN:
        setup.shutdown()
    import time
    print("main done", time.time(), flush=True)
    """
)
#: Far above the bounded flush (2 s + start-up), far below the SDK's own retries with the
#: OTLP timeout set to 600 s (two exporters, backoff 1+2+4+8+16 s each).
HANG_GUARD_S = 45


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_child(env_updates, shutdown=False):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_CARBON_NVML="off", OTEL_CARBON_COUNTRY="FR", OTEL_EXPORTER_OTLP_TIMEOUT="600", **env_updates)
    code = f"SHUTDOWN = {shutdown}\n" + CHILD
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)
    except subprocess.TimeoutExpired:
        pytest.fail("the process did not exit: the flush at exit is not bounded")


#: From "main done" to the process's end with no collector: the 2 s flush, 0.5 s for the
#: cancelled exporters, the interpreter's teardown, and room for a loaded machine.
EXIT_AFTER_MAIN_S = 6.0


@pytest.mark.parametrize("shutdown", [False, True], ids=["at-exit", "shutdown-then-exit"])
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_collector_exit_is_bounded_with_one_warning_naming_the_endpoint(protocol, shutdown):
    port = _closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    done = _run_child({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}, shutdown)
    ended = time.time()
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[:2] == ["main", "done"]
    # an explicit shutdown() is bounded like the exit (with OTEL_EXPORTER_OTLP_TIMEOUT=600 the
    # SDK alone retries for minutes)
    assert ended - float(words[2]) < EXIT_AFTER_MAIN_S
    # one line, ours: the exporters' retry and "already shutdown" lines are held back
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        line for line in done.stderr.splitlines() if "no OpenTelemetry collector answered" in line
    ], done.stderr
    [ours] = done.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}" in ours and ("at shutdown" if shutdown else "at exit") in ours
    assert "OTEL_TRACES_EXPORTER=console" in ours and "none" in ours


@pytest.mark.parametrize("shutdown", [False, True], ids=["at-exit", "shutdown-then-exit"])
def test_with_a_collector_the_bounded_exit_still_delivers_the_span(otlp_receiver, shutdown):
    done = _run_child({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{otlp_receiver.grpc_endpoint}"}, shutdown)
    assert done.returncode == 0, done.stderr
    assert "no OpenTelemetry collector answered" not in done.stderr
    assert "shutdown can only be called once" not in done.stderr, "an explicit shutdown is not repeated at exit"
    [span] = otlp_receiver.wait_for_spans(1)
    assert span["name"] == "work" and A.ENERGY_TOTAL in span["attributes"]


# -- trackers ------------------------------------------------------------------------------


def test_an_output_dir_that_is_not_a_directory_never_raises(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(config.OTEL_CARBON_OUTPUT_DIR, "/nonexistent/emissions")
    monkeypatch.setenv(config.OTEL_CARBON_NVML, "off")
    from otel_carbon.track import EmissionsTracker, track_emissions

    tracker = EmissionsTracker("p")

    @track_emissions(project_name="decorated")
    def work():
        return sum(range(1000))

    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        tracker.start()
        tracker.stop()
        assert work() == sum(range(1000))
    named = [r.getMessage() for r in caplog.records if config.OTEL_CARBON_OUTPUT_DIR in r.getMessage()]
    assert len(named) == 1 and "'.'" in named[0]
    assert (tmp_path / "emissions.csv").is_file(), "the rows went to the default folder"


def test_a_bounded_shutdown_passes_the_sdk_s_lines_on_when_it_finished_in_time(caplog):
    """Only a shutdown that ran late has its exporters' lines replaced by our warning; one that
    finished passes them on as they were (e.g. a collector that refused a batch)."""
    from otel_carbon import _exit

    sdk_logger = logging.getLogger("opentelemetry.sdk.trace.export")
    release = threading.Event()

    class Provider:
        def __init__(self, hang):
            self.hang = hang

        def shutdown(self):
            sdk_logger.warning("refused: %s", "HTTP 400" if not self.hang else "retrying")
            if self.hang:
                release.wait(10)

    with caplog.at_level(logging.WARNING):
        assert _exit.bounded_shutdown([Provider(hang=False)], [], 2.0, "at shutdown") is True
    assert [r.getMessage() for r in caplog.records] == ["refused: HTTP 400"]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _exit.bounded_shutdown([Provider(hang=True)], [], 0.2, "at shutdown") is False
    release.set()
    [record] = caplog.records
    assert record.name == "otel_carbon" and "within 0.2 s at shutdown" in record.getMessage()
    assert sdk_logger.filters == []
