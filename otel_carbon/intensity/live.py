"""Background refresh of a live provider, with fallback to bundled data.

:class:`LiveIntensitySource` owns one daemon thread that calls ``provider.fetch()`` every
``refresh_s`` seconds. :meth:`~LiveIntensitySource.current` is a plain attribute read, so
the sampler can call it on every tick; nothing here runs on a span's path.

Failure policy (timeout, 429, 5xx, malformed JSON, anything):

1. keep the last good value while it is younger than ``max_age_s``;
2. then switch to the bundled value, flagged ``fallback=True``;
3. log once per provider and kind of failure, and once when falling back: the provider's
   name, the kind and our own short detail (a status code), never an exception's text
   (http.client puts header values, i.e. credentials, in its messages);
4. retry with a backoff that starts at ``min_retry_s`` and doubles up to ``refresh_s``
   (a 429's ``Retry-After`` is honoured when longer, up to an hour).

A 401 or 403 means the credentials are wrong: asking again cannot help, so the thread
says so once and stops, and the bundled value is used from then on. ``refresh_s`` is
bounded to [60 s, 1 day] (``OTEL_CARBON_INTENSITY_REFRESH`` out of that range warns and
uses the provider's default; a code argument raises ``ValueError``): the providers publish
at most every five minutes, and a shorter period only spends the user's quota.

Until the first answer arrives, :meth:`current` returns the bundled value flagged
``fallback=True``: the first request is made in the background, never awaited.

Lifecycle follows the OTel SDK's batch processor: ``start()`` and ``shutdown()`` are
idempotent; after ``fork()`` the child gets a fresh lock, event and thread (registered
with ``os.register_at_fork`` through a weak reference, so a dropped source is not kept
alive). The child keeps the parent's schedule instead of fetching at once, so a
pre-forking server with many workers does not send a burst of requests.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
import weakref
from typing import Callable, Optional

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon._untraced import run_untraced
from otel_carbon.intensity._http import ProviderError
from otel_carbon.intensity.model import Intensity

_logger = logging.getLogger("otel_carbon")

MAX_RETRY_AFTER_S = 3600.0
REFUSED_KINDS = ("http_401", "http_403")  # wrong credentials: stop asking


class LiveIntensitySource:
    """The intensity of a live provider, refreshed in the background."""

    def __init__(
        self,
        provider: object,
        bundled: Intensity,
        *,
        refresh_s: Optional[float] = None,
        max_age_s: Optional[float] = None,
        min_retry_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        refresh = refresh_s if refresh_s is not None else getattr(provider, "default_refresh_s", 600.0)
        bounds = config.RANGES[config.OTEL_CARBON_INTENSITY_REFRESH]
        if isinstance(refresh, bool) or not isinstance(refresh, (int, float)) or not bounds.low <= refresh <= bounds.high:
            raise ValueError(f"refresh_s must be {bounds.describe()}, got {refresh_s!r}")
        if isinstance(min_retry_s, bool) or not isinstance(min_retry_s, (int, float)) or not 0 < min_retry_s <= refresh:
            raise ValueError(f"min_retry_s must be a number of seconds > 0 and <= refresh_s, got {min_retry_s!r}")
        self.provider = provider
        self.name: str = getattr(provider, "name", type(provider).__name__)
        self.refresh_s = float(refresh)
        # Keep a last good value for three missed refreshes, and at least an hour (the
        # hourly providers publish once an hour; an hour-old value beats a yearly mean).
        self.max_age_s = float(max_age_s) if max_age_s is not None else max(3 * refresh, 3600.0)
        self.min_retry_s = float(min_retry_s)
        #: the provider refused the credentials (401/403): no more requests
        self.refused = False
        self._clock = clock
        self._fallback = dataclasses.replace(bundled, live=False, fallback=True)
        self._current = self._fallback
        self._last_good_at: Optional[float] = None
        self._failures = 0
        self._next_due = 0.0
        self._stopped = False
        self._thread: Optional[threading.Thread] = None
        self._init_sync()
        if hasattr(os, "register_at_fork"):
            reinit = weakref.WeakMethod(self._at_fork_reinit)
            os.register_at_fork(after_in_child=lambda: reinit() and reinit()())  # type: ignore[misc]

    def _init_sync(self) -> None:
        self._lock = threading.Lock()  # start/shutdown
        self._fetch_lock = threading.Lock()  # one fetch at a time (thread or refresh_now)
        self._wake = threading.Event()

    # -- what the sampler reads -------------------------------------------------------------

    def current(self) -> Intensity:
        """The intensity to use now: a plain attribute read, safe from any thread."""
        return self._current

    @property
    def bundled(self) -> Intensity:
        return self._fallback

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "LiveIntensitySource":
        """Start the refresher thread (idempotent; a no-op after :meth:`shutdown`)."""
        with self._lock:
            if self._stopped or (self._thread is not None and self._thread.is_alive()):
                return self
            self._thread = threading.Thread(
                target=run_untraced(self._run), name=f"otel-carbon-intensity-{self.name}", daemon=True
            )
            self._thread.start()
        return self

    def shutdown(self, timeout_s: float = 1.0) -> bool:
        """Stop the thread; True when it ended within ``timeout_s``. Safe to call twice."""
        with self._lock:
            self._stopped = True
            self._wake.set()
            thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def _at_fork_reinit(self) -> None:
        was_running = self._thread is not None and not self._stopped
        self._init_sync()
        self._thread = None
        if was_running:
            self.start()

    # -- refreshing ----------------------------------------------------------------------------

    def refresh_now(self) -> Intensity:
        """Fetch once, synchronously (CLI, tests); returns :meth:`current` afterwards."""
        self._refresh_once()
        return self._current

    def _run(self) -> None:
        while not self._stopped and not self.refused:
            delay = min(self._next_due - self._clock(), threading.TIMEOUT_MAX)
            if delay > 0 and self._wake.wait(delay):
                break  # only shutdown() sets the event
            if self._stopped:
                break
            self._refresh_once()

    def _refresh_once(self) -> None:
        with self._fetch_lock:
            if self.refused:
                return
            try:
                reading = self.provider.fetch()  # type: ignore[attr-defined]
            except ProviderError as exc:
                delay = self._on_failure(exc.kind, str(exc), exc.retry_after_s)
            except Exception as exc:  # a bug must not kill the thread or reach the host app
                # the type only: the text of an exception from the request path may hold a
                # header value (a credential)
                delay = self._on_failure("error", type(exc).__name__, None)
            else:
                try:
                    delay = self._on_success(reading)
                except Exception as exc:  # a reading of the wrong shape
                    delay = self._on_failure("error", type(exc).__name__, None)
            self._next_due = self._clock() + delay

    def _on_success(self, reading: object) -> float:
        self._current = Intensity(
            g_per_kwh=reading.g_per_kwh,  # type: ignore[attr-defined]
            zone=reading.zone,  # type: ignore[attr-defined]
            year=reading.year,  # type: ignore[attr-defined]
            source=reading.source,  # type: ignore[attr-defined]
            pue=self._fallback.pue,
            live=True,
            as_of=reading.as_of,  # type: ignore[attr-defined]
        )
        if self._failures:
            _logger.info("otel_carbon: live intensity provider %s answers again", self.name)
        self._failures = 0
        self._last_good_at = self._clock()
        return self.refresh_s

    def _on_failure(self, kind: str, message: str, retry_after_s: Optional[float]) -> float:
        self._failures += 1
        if kind in REFUSED_KINDS:
            return self._refused(message)
        fresh = self._last_good_at is not None and self._clock() - self._last_good_at <= self.max_age_s
        keeping = "keeping its last value" if fresh else "using bundled data"
        warn_once(
            _logger,
            f"intensity:live:{self.name}:{kind}",
            "otel_carbon: live intensity provider %s failed (%s); %s",
            self.name,
            message,
            keeping,
        )
        if not fresh and self._current is not self._fallback:
            self._current = self._fallback
            warn_once(
                _logger,
                f"intensity:live:{self.name}:fallback",
                "otel_carbon: no live intensity from %s for over %.0f s; falling back to bundled "
                "data %.1f g CO2e/kWh (zone %s, %s), flagged fallback=True",
                self.name,
                self.max_age_s,
                self._fallback.g_per_kwh,
                self._fallback.zone,
                self._fallback.source,
            )
        delay = min(self.refresh_s, self.min_retry_s * 2.0 ** min(self._failures - 1, 30))
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
        return delay

    def _refused(self, message: str) -> float:
        self.refused = True
        self._current = self._fallback
        warn_once(
            _logger,
            f"intensity:live:{self.name}:refused",
            "otel_carbon: live intensity provider %s refused the credentials (%s): no more requests "
            "are made; using bundled data %.1f g CO2e/kWh (zone %s), flagged fallback=True. Check "
            "the provider's credentials and restart",
            self.name,
            message,
            self._fallback.g_per_kwh,
            self._fallback.zone,
        )
        return self.refresh_s
