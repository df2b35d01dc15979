"""Rate-limited warnings (otel_carbon._log): the first occurrence of a matter, then one per
window, with the number of repeats it stands for."""

from __future__ import annotations

import logging

import pytest

from otel_carbon import _log
from otel_carbon._log import MAX_KEYS, RepeatLimiter


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def test_a_matter_is_logged_again_once_its_window_has_passed():
    clock = Clock()
    limiter = RepeatLimiter(window_s=60.0, clock=clock)
    assert limiter.allow("sensor:rapl") == 0
    assert limiter.allow("sensor:rapl") is None
    clock.now_s += 59.0
    assert limiter.allow("sensor:rapl") is None
    assert limiter.allow("sensor:nvml") == 0  # another matter has its own window
    clock.now_s += 1.0
    assert limiter.allow("sensor:rapl") == 2  # the two it did not log
    assert limiter.allow("sensor:rapl") is None
    clock.now_s += 86400.0  # recovered, and fails again a day later
    assert limiter.allow("sensor:rapl") == 1


def test_a_marked_matter_starts_its_window_now():
    clock = Clock()
    limiter = RepeatLimiter(window_s=10.0, clock=clock)
    limiter.mark("gap")
    assert limiter.allow("gap") is None
    clock.now_s += 10.0
    assert limiter.allow("gap") == 1


def test_the_limiter_remembers_a_bounded_number_of_matters():
    clock = Clock()
    limiter = RepeatLimiter(window_s=10.0, clock=clock)
    for i in range(MAX_KEYS):
        assert limiter.allow(f"k{i}") == 0
    clock.now_s += 1.0
    assert limiter.allow("one more") == 0  # none expired: the oldest is forgotten
    assert limiter.allow("k0") == 0
    assert limiter.allow(f"k{MAX_KEYS - 1}") is None
    clock.now_s += 10.0
    assert limiter.allow("after the window") == 0
    assert len(limiter._seen) <= MAX_KEYS  # noqa: SLF001


@pytest.mark.parametrize("window_s", [-1, "60", None])
def test_a_bad_window_is_refused(window_s):
    with pytest.raises(ValueError, match="window_s"):
        RepeatLimiter(window_s=window_s)


def test_warn_once_logs_the_repeats_it_stood_for(monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(_log, "_limiter", RepeatLimiter(window_s=3600.0, clock=clock))
    logger = logging.getLogger("otel_carbon")
    with caplog.at_level(logging.WARNING, logger="otel_carbon"):
        assert _log.warn_once(logger, "sensor:x", "sensor %s failed (%r)", "x", OSError(5, "EIO"))
        for _ in range(3):
            assert not _log.warn_once(logger, "sensor:x", "sensor %s failed (%r)", "x", OSError(5, "EIO"))
        clock.now_s += 3600.0
        assert _log.warn_once(logger, "sensor:x", "sensor %s failed (%r)", "x", OSError(5, "EIO"))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "sensor x failed (OSError(5, 'EIO'))"
    assert messages[1] == "sensor x failed (OSError(5, 'EIO')) (3 more times since this was last logged)"
    assert len(messages) == 2
