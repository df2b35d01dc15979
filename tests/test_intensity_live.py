"""The background refresher: last good value, fallback, log once, lifecycle, fork, env."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from otel_carbon.intensity import LiveIntensitySource, StaticIntensitySource, intensity_source, resolve_intensity
from otel_carbon.intensity._http import ProviderError
from otel_carbon.intensity.providers import ElectricityMaps, LiveReading, UKCarbonIntensity, WattTime

if __package__:
    from . import intensity_fake_api as fake
    from .intensity_helpers import clean_intensity_env, reference_country  # noqa: F401
else:
    import intensity_fake_api as fake
    from intensity_helpers import clean_intensity_env, reference_country  # noqa: F401


class ScriptedProvider:
    """Returns or raises the next item of ``script`` on each fetch."""

    name = "scripted"
    default_refresh_s = 60.0

    def __init__(self, *script):
        self.script = list(script)
        self.calls = 0
        self.gate = None  # a threading.Event to block fetch on

    def fetch(self):
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5.0)
        item = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(item, Exception):
            raise item
        return item


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


READING = LiveReading(123.0, "DE", "test provider", "2026-03-01T12:00:00Z")


@pytest.fixture
def bundled():
    return resolve_intensity({}, cloud="aws:eu-central-1")


def test_before_the_first_answer_the_bundled_value_is_flagged(bundled):
    source = LiveIntensitySource(ScriptedProvider(READING), bundled)
    value = source.current()
    assert (value.g_per_kwh, value.zone, value.live, value.fallback) == (bundled.g_per_kwh, bundled.zone, False, True)


def test_success_is_live_with_the_bundled_pue(bundled):
    source = LiveIntensitySource(ScriptedProvider(READING), bundled)
    value = source.refresh_now()
    assert (value.g_per_kwh, value.zone, value.year, value.as_of) == (123.0, "DE", 2026, READING.as_of)
    assert value.live and not value.fallback and value.pue == bundled.pue


def test_failure_keeps_the_last_good_value_then_falls_back_and_logs_once(bundled, caplog):
    caplog.set_level(logging.INFO, logger="otel_carbon")
    clock = Clock()
    failure = ProviderError("timeout", "no answer within 5 s")
    provider = ScriptedProvider(READING, failure)
    source = LiveIntensitySource(provider, bundled, refresh_s=60, max_age_s=300, clock=clock)
    source.refresh_now()
    for _ in range(3):
        clock.now += 60
        assert source.refresh_now().g_per_kwh == 123.0, "last good value kept within max_age_s"
    clock.now += 300
    value = source.refresh_now()
    assert value.fallback and not value.live and value.g_per_kwh == bundled.g_per_kwh
    source.refresh_now()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed (timeout" in m for m in messages) == 1
    assert sum("falling back to bundled" in m for m in messages) == 1
    # recovery
    provider.script = [READING]
    assert source.refresh_now().live


def test_backoff_doubles_up_to_the_refresh_period_and_honours_retry_after(bundled):
    clock = Clock()
    provider = ScriptedProvider(ProviderError("http_5xx", "HTTP 500"))
    source = LiveIntensitySource(provider, bundled, refresh_s=100, min_retry_s=10, clock=clock)
    delays = []
    for _ in range(6):
        source.refresh_now()
        delays.append(source._next_due - clock.now)
    assert delays == [10, 20, 40, 80, 100, 100]
    provider.script = [ProviderError("http_429", "HTTP 429", retry_after_s=500)]
    source.refresh_now()
    assert source._next_due - clock.now == 500


def test_unexpected_exceptions_do_not_escape(bundled):
    source = LiveIntensitySource(ScriptedProvider(RuntimeError("bug")), bundled)
    assert source.refresh_now().fallback


def test_current_never_waits_for_the_network(bundled):
    provider = ScriptedProvider(READING)
    provider.gate = threading.Event()
    source = LiveIntensitySource(provider, bundled).start()
    try:
        deadline = time.monotonic() + 2
        while provider.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert provider.calls == 1, "the first fetch runs in the background"
        started = time.perf_counter()
        for _ in range(1000):
            value = source.current()
        assert time.perf_counter() - started < 0.05
        assert value.fallback
        provider.gate.set()
        deadline = time.monotonic() + 2
        while not source.current().live and time.monotonic() < deadline:
            time.sleep(0.005)
        assert source.current().live
    finally:
        provider.gate.set()
        assert source.shutdown(1.0)


def test_start_and_shutdown_are_idempotent_and_prompt(bundled):
    source = LiveIntensitySource(ScriptedProvider(READING), bundled, refresh_s=3600)
    source.start()
    thread = source._thread
    assert source.start() is source and source._thread is thread
    assert thread is not None and thread.daemon
    started = time.monotonic()
    assert source.shutdown(2.0)
    assert source.shutdown(2.0)
    assert time.monotonic() - started < 1.0, "shutdown wakes the sleeping thread"
    source.start()
    assert source._thread is thread and not thread.is_alive(), "no restart after shutdown"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_a_fresh_thread_and_keeps_the_schedule(bundled):
    provider = ScriptedProvider(READING)
    source = LiveIntensitySource(provider, bundled, refresh_s=3600).start()
    deadline = time.monotonic() + 2
    while not source.current().live and time.monotonic() < deadline:
        time.sleep(0.005)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report, never return into pytest
        try:
            time.sleep(0.05)
            ok = (
                source._thread is not None
                and source._thread.is_alive()
                and source.current().live
                and provider.calls == 1  # the parent's schedule holds: no burst after fork
                and source.shutdown(1.0)
            )
            os.write(write_fd, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        assert os.read(read_fd, 1) == b"1"
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
        source.shutdown(1.0)


# -- configuration from the environment ------------------------------------------------------


def test_no_provider_means_a_static_source():
    source = intensity_source({})
    assert isinstance(source, StaticIntensitySource)
    assert source.current() == resolve_intensity({})
    assert source.start() is source and source.shutdown()


EM_TOKEN = {"ELECTRICITYMAPS_TOKEN": "t"}
WT_LOGIN = {"WATTTIME_USERNAME": "u", "WATTTIME_PASSWORD": "p"}


def _set_env(monkeypatch, provider, settings):
    """Set OTEL_CARBON_INTENSITY_PROVIDER and OTEL_CARBON_<key> for each setting."""
    monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", provider)
    for key, value in settings.items():
        monkeypatch.setenv("OTEL_CARBON_" + key, value)


@pytest.mark.parametrize(
    "provider, settings, provider_type, zone",
    [
        ("electricitymaps", {**EM_TOKEN, "COUNTRY": "FRA"}, ElectricityMaps, "FR"),
        ("ElectricityMaps", {**EM_TOKEN, "REGION": "US-CA"}, ElectricityMaps, "US"),
        ("electricitymaps", {**EM_TOKEN, "ELECTRICITYMAPS_ZONE": "US-CAL-CISO"}, ElectricityMaps, "US-CAL-CISO"),
        ("electricitymaps", EM_TOKEN, ElectricityMaps, "IE"),  # from the resource's cloud region
        ("watttime", {**WT_LOGIN, "WATTTIME_REGION": "CAISO_NORTH"}, WattTime, None),
        ("uk", {"COUNTRY": "GB"}, UKCarbonIntensity, None),
    ],
)
def test_env_selects_the_provider(monkeypatch, provider, settings, provider_type, zone):
    _set_env(monkeypatch, provider, settings)
    source = intensity_source({"cloud.provider": "aws", "cloud.region": "eu-west-1"}, start=False)
    assert isinstance(source, LiveIntensitySource) and isinstance(source.provider, provider_type)
    if zone:
        assert source.provider.zone == zone
    assert source._thread is None, "start=False starts nothing"


@pytest.mark.parametrize(
    "provider, settings, missing",
    [
        ("electricitymaps", {"COUNTRY": "FR"}, "OTEL_CARBON_ELECTRICITYMAPS_TOKEN"),
        ("electricitymaps", EM_TOKEN, "OTEL_CARBON_ELECTRICITYMAPS_ZONE"),  # world: no country
        ("watttime", WT_LOGIN, "OTEL_CARBON_WATTTIME_REGION"),
        ("gridsome", {}, "OTEL_CARBON_INTENSITY_PROVIDER"),
    ],
)
def test_incomplete_provider_config_warns_and_stays_bundled(monkeypatch, caplog, provider, settings, missing):
    _set_env(monkeypatch, provider, settings)
    source = intensity_source({})
    assert isinstance(source, StaticIntensitySource)
    assert missing in caplog.text
    with pytest.raises(ValueError, match=missing):
        intensity_source({}, strict=True)


def test_fixed_intensity_wins_over_a_live_provider(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "uk")
    monkeypatch.setenv("OTEL_CARBON_INTENSITY", "42")
    source = intensity_source({})
    assert isinstance(source, StaticIntensitySource) and source.current().g_per_kwh == 42.0
    assert "not used" in caplog.text


def test_end_to_end_env_configured_live_source_refreshes_in_the_background(monkeypatch):
    with fake.FakeApi() as api:
        api.route("/intensity", fake.Reply(body=fake.uk_body("2026-03-01T12:00Z", "2026-03-01T12:30Z", 150, 140)))
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "uk")
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER_URL", api.url)
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_REFRESH", "60")
        monkeypatch.setenv("OTEL_CARBON_COUNTRY", "GB")
        source = intensity_source({})
        try:
            assert source.refresh_s == 60.0
            deadline = time.monotonic() + 3
            while not source.current().live and time.monotonic() < deadline:
                time.sleep(0.01)
            assert source.current().g_per_kwh == 140.0 and source.current().zone == "GB"
            api.route("/intensity", fake.Reply(500, {"error": "down"}))
            assert source.refresh_now().g_per_kwh == 140.0, "last good value kept"
            api.route("/intensity", fake.Reply(body=fake.uk_body("2026-03-01T12:30Z", "2026-03-01T13:00Z", 120, None)))
            assert source.refresh_now().g_per_kwh == 120.0
            assert api.paths() == ["/intensity"] * 3, "one background request, then the two asked for"
        finally:
            assert source.shutdown(2.0)
    gb = reference_country("GBR")
    assert source.bundled.g_per_kwh == float(gb["g_co2e_per_kwh"]) and source.bundled.fallback


def test_malformed_provider_url_is_reported_not_raised(monkeypatch, caplog):
    _set_env(monkeypatch, "uk", {"INTENSITY_PROVIDER_URL": "ftp://example.org"})
    assert isinstance(intensity_source({}), StaticIntensitySource)
    assert "OTEL_CARBON_INTENSITY_PROVIDER_URL" in caplog.text
    with pytest.raises(ValueError, match="base_url"):
        intensity_source({}, strict=True)


def test_credentials_over_plain_http_are_warned_about(monkeypatch, caplog):
    _set_env(monkeypatch, "electricitymaps", {**EM_TOKEN, "COUNTRY": "DE", "INTENSITY_PROVIDER_URL": "http://proxy.example"})
    source = intensity_source({}, start=False)
    assert isinstance(source, LiveIntensitySource)
    assert "unencrypted" in caplog.text
