"""Socket-level proof: without a live provider, nothing opens a network connection.

An audit hook (PEP 578) sees every ``socket.connect`` and name lookup made by any code in
the process, including C extensions and urllib, so it cannot be bypassed the way a
monkeypatched function can. Hooks cannot be removed, so one is installed per process and
only records while armed.
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from typing import List, Tuple

import pytest

from otel_carbon.intensity import bundled, intensity_source, resolve_intensity

if __package__:
    from . import intensity_fake_api as fake
    from .intensity_helpers import clean_intensity_env  # noqa: F401
else:
    import intensity_fake_api as fake
    from intensity_helpers import clean_intensity_env  # noqa: F401

_NETWORK_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}
_events: List[Tuple[str, str]] = []
_armed = threading.Event()
_installed = []
_test_thread = [threading.main_thread()]


def _hook(event: str, args: tuple) -> None:
    if _armed.is_set() and event in _NETWORK_EVENTS:
        # Only this test's thread and our refresher threads: background threads left by
        # other tests (exporters, servers) must not make this check flaky.
        thread = threading.current_thread()
        if thread is _test_thread[0] or thread.name.startswith("otel-carbon-intensity"):
            _events.append((event, repr(args[1:])[:200]))


@contextmanager
def network_recorder():
    if not _installed:
        sys.addaudithook(_hook)
        _installed.append(True)
    _events.clear()
    _test_thread[0] = threading.current_thread()
    _armed.set()
    try:
        yield _events
    finally:
        _armed.clear()


def test_default_setup_opens_no_connection(monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=shop,cloud.provider=aws,cloud.region=eu-west-1")
    with network_recorder() as events:
        resolve_intensity()  # default Resource, read from the environment
        resolve_intensity({})  # world average
        resolve_intensity({}, country="FR")
        resolve_intensity({}, region="US-CA")
        resolve_intensity({}, cloud="gcp:europe-west1")
        bundled.country("DEU")
        bundled.cloud("azure", "westeurope")
        source = intensity_source()
        source.start()
        for _ in range(10):
            source.current()
        source.shutdown()
    assert events == []


def test_the_recorder_does_see_a_configured_live_provider(monkeypatch):
    """Control: the same check fails when something does connect."""
    with fake.FakeApi() as api:
        api.route("/intensity", fake.Reply(body=fake.uk_body("2026-03-01T12:00Z", "2026-03-01T12:30Z", 150, 140)))
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", "uk")
        monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER_URL", api.url)
        with network_recorder() as events:
            source = intensity_source({}, start=False)
            source.refresh_now()
            source.shutdown()
    assert any(event == "socket.connect" for event, _ in events)


@pytest.mark.parametrize("provider", ["none", "NONE", ""])
def test_explicit_none_provider_opens_no_connection(monkeypatch, provider):
    monkeypatch.setenv("OTEL_CARBON_INTENSITY_PROVIDER", provider)
    with network_recorder() as events:
        intensity_source({}, country="GB").current()
    assert events == []
