"""Live intensity against bad credentials and hostile or broken servers (loopback, real HTTP).

* Credentials with a newline, a space or non-ASCII letters are refused when read, and no
  log record at any level, ours or another library's, ever holds a credential: not when it
  is refused, not when the server quotes it back in its reason phrase or body.
* Requests are counted on the server: a tiny ``OTEL_CARBON_INTENSITY_REFRESH`` makes one
  request, not thousands; a 401 stops the refresher after one; a 429's ``Retry-After`` sets
  the next request; absurd periods and ``Retry-After`` values do not kill the thread.
* A server that drips its answer one byte at a time hits the overall deadline.
* Provider-supplied codes (``zone``) that are huge or binary never reach the intensity.
* The refresher's HTTP call is not traced, even with urllib instrumented.
"""

from __future__ import annotations

import logging
import time

import pytest
from opentelemetry import context as otel_context

from otel_carbon import config
from otel_carbon.intensity import LiveIntensitySource, StaticIntensitySource, intensity_source, resolve_intensity
from otel_carbon.intensity._http import ProviderError
from otel_carbon.intensity.providers import ElectricityMaps, UKCarbonIntensity, WattTime

if __package__:
    from . import intensity_fake_api as fake
    from .conftest import wait_for
    from .intensity_helpers import clean_intensity_env  # noqa: F401
else:
    import intensity_fake_api as fake
    from conftest import wait_for
    from intensity_helpers import clean_intensity_env  # noqa: F401

SECRET = "s3cr3t-TOKEN-7f2a"
UK_BODY = fake.uk_body("2026-03-01T12:00Z", "2026-03-01T12:30Z", 150, 140)


class AllRecords(logging.Handler):
    """Every record of every logger, at DEBUG, formatted with its exception if any."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record) + repr(record.args))


@pytest.fixture
def all_logs():
    handler = AllRecords()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


# -- credentials ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [SECRET + "\nX-Injected: 1", SECRET + " more", "tök" + SECRET, SECRET + "\x00", SECRET * 100])
@pytest.mark.parametrize("variable", [config.OTEL_CARBON_ELECTRICITYMAPS_TOKEN, config.OTEL_CARBON_WATTTIME_PASSWORD])
def test_a_malformed_credential_is_refused_when_read_and_never_logged(monkeypatch, all_logs, variable, token):
    if "\x00" in token:
        token = token.replace("\x00", "\x7f")  # the environment cannot hold NUL; DEL is as unprintable
    with fake.FakeApi() as api:
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "electricitymaps" if "ELECTRICITY" in variable else "watttime")
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER_URL", api.url)
        monkeypatch.setenv("OTEL_CARBON_COUNTRY", "DE")
        monkeypatch.setenv("OTEL_CARBON_WATTTIME_USERNAME", "user")
        monkeypatch.setenv("OTEL_CARBON_WATTTIME_REGION", "CAISO_NORTH")
        monkeypatch.setenv(variable, token)
        source = intensity_source({})
        assert isinstance(source, StaticIntensitySource), "no provider is built with a credential like that"
        assert api.requests == []
        with pytest.raises(ValueError, match=variable) as raised:
            intensity_source({}, strict=True)
        assert SECRET not in str(raised.value)
    mentions = [t for t in all_logs.texts if variable in t]
    assert len(mentions) == 1, all_logs.texts
    assert not [t for t in all_logs.texts if SECRET in t]


@pytest.mark.parametrize("token", ["a\nb", "a b", "ä", "", "x" * 2000])
def test_a_malformed_credential_in_code_raises_without_showing_it(token):
    with pytest.raises(ValueError, match="token") as raised:
        ElectricityMaps(token, "DE", base_url="http://127.0.0.1:9")
    assert token not in str(raised.value) or token == ""
    with pytest.raises(ValueError, match="password"):
        WattTime("user", token, "CAISO_NORTH", base_url="http://127.0.0.1:9")


@pytest.mark.parametrize(
    "reply",
    [
        fake.Reply(401, {"message": f"invalid token {SECRET}"}, reason=f"Bad token {SECRET}"),
        fake.Reply(500, {"message": f"echo {SECRET}"}, reason=f"Oops {SECRET}"),
        fake.Reply(200, raw=f"not json {SECRET}".encode()),
        fake.Reply(302, {"to": SECRET}, headers={"Location": f"http://127.0.0.1:9/?t={SECRET}"}),
    ],
)
def test_what_a_server_quotes_back_never_reaches_a_log_record(all_logs, bundled_de, reply):
    with fake.FakeApi() as api:
        api.route("/carbon-intensity/latest", reply)
        source = LiveIntensitySource(ElectricityMaps(SECRET, "DE", base_url=api.url), bundled_de, refresh_s=60)
        value = source.refresh_now()
        assert value.fallback and api.requests[0].headers["auth-token"] == SECRET
    assert all_logs.texts, "the failure is logged"
    assert not [t for t in all_logs.texts if SECRET in t], all_logs.texts


def test_a_closed_port_is_logged_by_type_and_provider_only(all_logs, bundled_de):
    source = LiveIntensitySource(ElectricityMaps(SECRET, "DE", base_url="http://127.0.0.1:9"), bundled_de, refresh_s=60)
    source.refresh_now()
    [line] = [t for t in all_logs.texts if "electricitymaps" in t]
    assert "network" in line and "ConnectionRefusedError" in line and "Errno" not in line


@pytest.fixture
def bundled_de():
    return resolve_intensity({}, country="DE")


# -- request rate ----------------------------------------------------------------------------


@pytest.mark.parametrize("refresh", ["0.000001", "0", "-1", "nan", "1e308", "inf", "59.9"])
def test_an_out_of_range_refresh_makes_one_request_not_a_storm(monkeypatch, caplog, refresh):
    with fake.FakeApi() as api:
        api.route("/intensity", fake.Reply(body=UK_BODY))
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "uk")
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER_URL", api.url)
        monkeypatch.setenv("OTEL_CARBON_COUNTRY", "GB")
        monkeypatch.setenv(config.OTEL_CARBON_INTENSITY_REFRESH, refresh)
        source = intensity_source({})
        try:
            assert source.refresh_s == UKCarbonIntensity.default_refresh_s
            assert wait_for(lambda: source.current().live)
            time.sleep(1.0)  # room for a storm: the old code made thousands of requests here
            assert len(api.requests) == 1
            assert source._thread.is_alive()
        finally:
            assert source.shutdown(2.0)
    warnings = [r.getMessage() for r in caplog.records if config.OTEL_CARBON_INTENSITY_REFRESH in r.getMessage()]
    assert len(warnings) == 1 and "using the default" in warnings[0]


def test_401_stops_the_refresher_after_one_request_and_says_so_once(monkeypatch, caplog):
    with fake.FakeApi() as api:
        api.route("/carbon-intensity/latest", fake.Reply(401, {"message": "unauthorized"}))
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "electricitymaps")
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER_URL", api.url)
        monkeypatch.setenv("OTEL_CARBON_ELECTRICITYMAPS_TOKEN", "wrong-token")
        monkeypatch.setenv("OTEL_CARBON_COUNTRY", "DE")
        monkeypatch.setenv(config.OTEL_CARBON_INTENSITY_REFRESH, "0.000001")
        source = intensity_source({})
        try:
            assert wait_for(lambda: source._thread is not None and not source._thread.is_alive())
            assert source.refused and source.current().fallback
            assert len(api.requests) == 1
            assert source.refresh_now().fallback and len(api.requests) == 1, "no request after a refusal"
        finally:
            assert source.shutdown(2.0)
    refused = [r.getMessage() for r in caplog.records if "refused the credentials" in r.getMessage()]
    assert len(refused) == 1 and "HTTP 401" in refused[0]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("retry_after, expected_s", [("120", 120.0), ("1e308", 3600.0), ("inf", 3600.0), ("soon", 15.0)])
def test_429_honours_retry_after_up_to_an_hour(bundled_de, retry_after, expected_s):
    clock = Clock()
    with fake.FakeApi() as api:
        api.route("/intensity", fake.Reply(429, {"message": "slow down"}, headers={"Retry-After": retry_after}))
        source = LiveIntensitySource(UKCarbonIntensity(base_url=api.url), bundled_de, refresh_s=600, clock=clock)
        source.refresh_now()
        assert source._next_due - clock.now == pytest.approx(expected_s)


def test_a_retry_after_of_1e308_does_not_kill_the_thread(bundled_de):
    with fake.FakeApi() as api:
        api.route("/intensity", fake.Reply(429, {"message": "slow down"}, headers={"Retry-After": "1e308"}))
        source = LiveIntensitySource(UKCarbonIntensity(base_url=api.url), bundled_de, refresh_s=86_400).start()
        try:
            assert wait_for(lambda: len(api.requests) == 1)
            time.sleep(0.2)
            assert source._thread.is_alive()
        finally:
            assert source.shutdown(2.0)


@pytest.mark.parametrize("refresh_s", [0.05, 59.0, 1e308, float("nan"), float("inf"), -1, "60", True])
def test_an_out_of_range_refresh_in_code_raises(bundled_de, refresh_s):
    with pytest.raises(ValueError, match="refresh_s"):
        LiveIntensitySource(UKCarbonIntensity(base_url="http://127.0.0.1:9"), bundled_de, refresh_s=refresh_s)


# -- slow drip, provider strings ---------------------------------------------------------------


def test_a_server_that_drips_its_answer_hits_the_overall_deadline():
    with fake.FakeApi() as api:
        # each byte comes well within the per-read timeout; the whole answer would take ~90 s
        api.route("/intensity", fake.Reply(body=UK_BODY, drip_s=0.2))
        provider = UKCarbonIntensity(base_url=api.url, timeout_s=1.0)
        with pytest.raises(ProviderError) as raised:
            provider.fetch()
        assert raised.value.kind == "timeout"
        assert wait_for(lambda: api.dripped)
    [(sent, total)] = api.dripped
    assert sent < total / 4, "the client gave up long before the end"


@pytest.mark.parametrize(
    "zone", ["Z" * 300_000, "DE\nX-Injected: 1", "DE\x00", "<script>", "ζώνη", "D E", "", 42, None, ["DE"]]
)
def test_a_hostile_zone_from_the_provider_never_reaches_the_intensity(bundled_de, zone):
    body = fake.electricitymaps_body("DE", 321.0, "2026-03-01T12:00:00.000Z")
    body["zone"] = zone
    body["emissionFactorType"] = zone
    body["datetime"] = zone
    with fake.FakeApi() as api:
        api.route("/carbon-intensity/latest", fake.Reply(body=body))
        source = LiveIntensitySource(ElectricityMaps("token", "DE", base_url=api.url), bundled_de, refresh_s=60)
        value = source.refresh_now()
    assert value.live and value.g_per_kwh == 321.0
    assert value.zone == "DE" and value.as_of is None
    assert value.source == "Electricity Maps v3 carbon-intensity/latest (lifecycle)"


def test_a_plain_zone_from_the_provider_is_kept(bundled_de):
    body = fake.electricitymaps_body("US-CAL-CISO", 250.0, "2026-03-01T12:00:00.000Z")
    with fake.FakeApi() as api:
        api.route("/carbon-intensity/latest", fake.Reply(body=body))
        source = LiveIntensitySource(ElectricityMaps("token", "US-CAL-CISO", base_url=api.url), bundled_de, refresh_s=60)
        value = source.refresh_now()
    assert (value.zone, value.as_of) == ("US-CAL-CISO", "2026-03-01T12:00:00.000Z")


# -- never traced ----------------------------------------------------------------------------


def test_the_refresher_runs_with_instrumentation_suppressed(bundled_de):
    seen = []

    class Probe:
        name = "probe"
        default_refresh_s = 600.0

        def fetch(self):
            seen.append(otel_context.get_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY))
            raise ProviderError("network", "probe")

    source = LiveIntensitySource(Probe(), bundled_de).start()
    try:
        assert wait_for(lambda: seen)
    finally:
        source.shutdown(2.0)
    assert seen == [True]


def test_with_urllib_instrumented_the_refresher_makes_no_span(bundled_de):
    urllib_instrumentation = pytest.importorskip("opentelemetry.instrumentation.urllib")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    import urllib.request

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = urllib_instrumentation.URLLibInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with fake.FakeApi() as api:
            api.route("/intensity", fake.Reply(body=UK_BODY))
            urllib.request.urlopen(api.url + "/intensity", timeout=5).read()
            assert len(exporter.get_finished_spans()) == 1, "urllib is instrumented: the test's own call is a span"
            source = LiveIntensitySource(UKCarbonIntensity(base_url=api.url), bundled_de, refresh_s=600).start()
            try:
                assert wait_for(lambda: source.current().live)
            finally:
                source.shutdown(2.0)
            assert len(api.requests) == 2
        assert len(exporter.get_finished_spans()) == 1, [s.name for s in exporter.get_finished_spans()]
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
