"""Live providers against a loopback server speaking each API's documented shape."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

import pytest

from otel_carbon.intensity._http import ProviderError
from otel_carbon.intensity.providers import ElectricityMaps, UKCarbonIntensity, WattTime

if __package__:
    from . import intensity_fake_api as fake
    from .intensity_helpers import clean_intensity_env  # noqa: F401
else:
    import intensity_fake_api as fake
    from intensity_helpers import clean_intensity_env  # noqa: F401

EM_TOKEN = "em-secret-token-0001"
WT_USER, WT_PASSWORD, WT_TOKEN = "wt-user", "wt-secret-password-0002", "wt-secret-jwt-0003"
SECRETS = (EM_TOKEN, WT_PASSWORD, WT_TOKEN, fake.basic_auth(WT_USER, WT_PASSWORD).split()[1])
NOW = datetime(2026, 3, 1, 12, 2, tzinfo=timezone.utc)
LB_PER_MWH_TO_G_PER_KWH = 453.59237 / 1000.0  # definition of the pound; 1 MWh = 1000 kWh


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S+00:00")


@pytest.fixture
def api():
    with fake.FakeApi() as server:
        yield server


def electricitymaps(api, value=231.5, **kwargs):
    body = fake.electricitymaps_body("DE", value, "2026-03-01T12:00:00.000Z")
    api.route("/v3/carbon-intensity/latest", fake.require_header("auth-token", EM_TOKEN, fake.Reply(body=body)))
    return ElectricityMaps(EM_TOKEN, "DE", base_url=api.url + "/v3", **kwargs)


def watttime(api, points=None, units="lbs_co2_per_mwh", clock=time.monotonic, **kwargs):
    if points is None:
        points = [(_iso(NOW - timedelta(minutes=2)), 812.0), (_iso(NOW + timedelta(minutes=3)), 905.0)]
    api.route(
        "/login",
        fake.require_header("authorization", fake.basic_auth(WT_USER, WT_PASSWORD), fake.Reply(body=fake.watttime_login_body(WT_TOKEN))),
    )
    body = fake.watttime_forecast_body("CAISO_NORTH", points, units)
    api.route("/v3/forecast", fake.require_header("authorization", f"Bearer {WT_TOKEN}", fake.Reply(body=body)))
    return WattTime(WT_USER, WT_PASSWORD, "CAISO_NORTH", base_url=api.url, now=lambda: NOW, clock=clock, **kwargs)


def uk(api, forecast=190, actual=184, **kwargs):
    body = fake.uk_body("2026-03-01T12:00Z", "2026-03-01T12:30Z", forecast, actual)
    api.route("/intensity", fake.Reply(body=body))
    return UKCarbonIntensity(base_url=api.url, **kwargs)


# -- success -------------------------------------------------------------------------------


def test_electricitymaps_latest(api):
    reading = electricitymaps(api, value=231.5).fetch()
    assert (reading.g_per_kwh, reading.zone, reading.as_of, reading.year) == (231.5, "DE", "2026-03-01T12:00:00.000Z", 2026)
    assert "Electricity Maps" in reading.source and "lifecycle" in reading.source
    seen = api.requests[-1]
    assert seen.path == "/v3/carbon-intensity/latest" and seen.query == {"zone": "DE"}
    assert seen.headers["auth-token"] == EM_TOKEN


def test_watttime_logs_in_and_converts_the_current_forecast_point(api):
    reading = watttime(api).fetch()
    assert reading.g_per_kwh == pytest.approx(812.0 * LB_PER_MWH_TO_G_PER_KWH)
    assert reading.zone == "CAISO_NORTH" and reading.as_of == _iso(NOW - timedelta(minutes=2))
    assert "marginal" in reading.source
    assert api.paths() == ["/login", "/v3/forecast"]
    assert api.requests[-1].query == {"region": "CAISO_NORTH", "signal_type": "co2_moer"}


def test_watttime_reuses_its_token_until_it_expires(api):
    now_s = [1000.0]
    provider = watttime(api, clock=lambda: now_s[0])
    provider.fetch()
    provider.fetch()
    assert api.paths().count("/login") == 1
    now_s[0] += WattTime.token_ttl_s + 1
    provider.fetch()
    assert api.paths().count("/login") == 2


def test_watttime_logs_in_again_once_after_a_401(api):
    provider = watttime(api)
    provider.fetch()
    provider._token = "revoked"  # the server no longer accepts the cached token
    assert provider.fetch().zone == "CAISO_NORTH"
    assert api.paths() == ["/login", "/v3/forecast", "/v3/forecast", "/login", "/v3/forecast"]


def test_watttime_uses_the_first_point_when_all_are_in_the_future(api):
    points = [(_iso(NOW + timedelta(minutes=5)), 700.0), (_iso(NOW + timedelta(minutes=10)), 650.0)]
    assert watttime(api, points=points).fetch().g_per_kwh == pytest.approx(700.0 * LB_PER_MWH_TO_G_PER_KWH)


def test_watttime_rejects_other_units(api):
    with pytest.raises(ProviderError) as info:
        watttime(api, units="percentile").fetch()
    assert info.value.kind == "malformed"


def test_uk_prefers_actual_then_forecast(api):
    reading = uk(api, forecast=190, actual=184).fetch()
    assert (reading.g_per_kwh, reading.zone, reading.as_of) == (184.0, "GB", "2026-03-01T12:00Z")
    assert "actual" in reading.source
    reading = uk(api, forecast=190, actual=None).fetch()
    assert reading.g_per_kwh == 190.0 and "forecast" in reading.source


# -- failures --------------------------------------------------------------------------------

MAKERS = {
    "electricitymaps": (electricitymaps, "/v3/carbon-intensity/latest"),
    "watttime": (watttime, "/v3/forecast"),
    "uk": (uk, "/intensity"),
}


@pytest.mark.parametrize("provider_name", sorted(MAKERS))
@pytest.mark.parametrize(
    "reply, kind",
    [
        (fake.Reply(401, {"message": "invalid token"}), "http_401"),
        (fake.Reply(429, {"message": "slow down"}, headers={"Retry-After": "120"}), "http_429"),
        (fake.Reply(500, {"error": "boom"}), "http_5xx"),
        (fake.Reply(503, raw=b"<html>maintenance</html>"), "http_5xx"),
        (fake.Reply(200, raw=b'{"zone": "DE", "carbonIntensity": '), "malformed"),
        (fake.Reply(200, raw=b"\xff\xfe not json"), "malformed"),
        (fake.Reply(200, body={"unexpected": "shape"}), "malformed"),
        (fake.Reply(200, body=["a", "list"]), "malformed"),
        (fake.Reply(302, body={}, headers={"Location": "http://127.0.0.1:9/steal"}), "http_3xx"),
    ],
)
def test_failures_are_classified(api, provider_name, reply, kind, caplog):
    caplog.set_level(logging.DEBUG)
    make, path = MAKERS[provider_name]
    provider = make(api)
    api.route(path, reply)
    with pytest.raises(ProviderError) as info:
        provider.fetch()
    assert info.value.kind == kind
    if kind == "http_429":
        assert info.value.retry_after_s == 120.0
    _assert_no_secret(str(info.value), repr(provider), caplog.text)
    if kind == "http_3xx":
        assert "/steal" not in api.paths(), "redirects are not followed"


@pytest.mark.parametrize("provider_name", sorted(MAKERS))
def test_timeout(api, provider_name):
    make, path = MAKERS[provider_name]
    provider = make(api, timeout_s=0.2)
    api.route(path, fake.Reply(body={}, delay_s=5.0))
    started = time.monotonic()
    with pytest.raises(ProviderError) as info:
        provider.fetch()
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("value", [-5, 1e9, "231", None, True])
def test_implausible_values_are_malformed(api, value):
    provider = electricitymaps(api)
    api.route("/v3/carbon-intensity/latest", fake.Reply(body=fake.electricitymaps_body("DE", value, "2026-03-01T12:00:00Z")))
    with pytest.raises(ProviderError) as info:
        provider.fetch()
    assert info.value.kind == "malformed"


def test_watttime_login_rejected(api):
    provider = WattTime(WT_USER, "wrong-password", "CAISO_NORTH", base_url=api.url)
    watttime(api)  # installs the routes
    with pytest.raises(ProviderError) as info:
        provider.fetch()
    assert info.value.kind == "http_401" and "login" in str(info.value)
    assert "wrong-password" not in str(info.value)


def test_connection_refused_is_a_network_error():
    provider = UKCarbonIntensity(base_url="http://127.0.0.1:9", timeout_s=0.5)
    with pytest.raises(ProviderError) as info:
        provider.fetch()
    assert info.value.kind in ("network", "timeout")


def test_constructor_arguments_are_validated():
    with pytest.raises(ValueError, match="token"):
        ElectricityMaps("", "DE")
    with pytest.raises(ValueError, match="zone"):
        ElectricityMaps("t", "")
    with pytest.raises(ValueError, match="region"):
        WattTime("u", "p", "")
    with pytest.raises(ValueError, match="timeout_s"):
        UKCarbonIntensity(timeout_s=0)


def _assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
