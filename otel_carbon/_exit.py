"""A bounded flush at interpreter exit (and in ``CarbonSetup.shutdown``) for the providers
``configure()`` created.

The SDK's own exit hook (``shutdown_on_exit=True``) flushes every exporter without a time
limit: with the default OTLP exporter and no collector listening, each exporter retries
with backoff until ``OTEL_EXPORTER_OTLP_TIMEOUT`` (10 s) per batch, and the process hangs
for tens of seconds after ``main`` returned, printing a retry line each time. So
``configure()`` creates its providers with ``shutdown_on_exit=False`` and registers
:func:`_at_exit` instead; both that and an explicit ``shutdown()`` go through
:func:`bounded_shutdown`: the providers shut down in parallel (daemon threads), for at most
:data:`EXIT_FLUSH_S`. What is not exported by then is given up: the exporters are shut down
(which cancels their retries), and one warning names the endpoint that did not answer and
how to choose ``console`` or ``none``. The OpenTelemetry exporters' own log lines of that
window ("Transient error ... retrying", "Shutdown in progress", "already shutdown") are held
back: passed on unchanged when everything finished in time, replaced by that one warning
when not.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Iterable, List

from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")

#: Longest wait for the last export at interpreter exit (s).
EXIT_FLUSH_S = 2.0
_CANCEL_WAIT_S = 0.5  # after cancelling the exporters, for their threads to return


def register(providers: Iterable[Any], exporters: Iterable[Any], still_open: Callable[[], bool]) -> None:
    """Shut ``providers`` down at exit within :data:`EXIT_FLUSH_S`, unless ``still_open()``
    says the application already shut them down; ``exporters`` (span exporters and metric
    readers made from names) are the ones to cancel and to name."""
    refs = [weakref.ref(p) for p in providers if p is not None]
    exporter_refs = [weakref.ref(e) for e in exporters]
    if refs:
        atexit.register(_at_exit, refs, exporter_refs, still_open)


def _at_exit(refs: List["weakref.ref[Any]"], exporter_refs: List["weakref.ref[Any]"], still_open: Callable[[], bool]) -> None:
    if still_open():
        bounded_shutdown([r() for r in refs], [r() for r in exporter_refs], EXIT_FLUSH_S, "at exit")


def bounded_shutdown(providers: Iterable[Any], exporters: Iterable[Any], timeout_s: float, when: str) -> bool:
    """Shut ``providers`` down in parallel within ``timeout_s``; True when they all finished.
    Else ``exporters`` are shut down (their retries cancelled) and one warning says that no
    collector answered (``when``: "at exit", "at shutdown")."""
    providers = [p for p in providers if p is not None]
    exporters = [e for e in exporters if e is not None]
    if not providers:
        return True
    with _HeldBack() as held:
        threads = [threading.Thread(target=_shutdown, args=(p,), name="otel-carbon-exit", daemon=True) for p in providers]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        finished = not any(t.is_alive() for t in threads)
        if not finished:
            for exporter in exporters:  # cancels the retries still waiting
                target = getattr(exporter, "_exporter", exporter)  # a metric reader holds its exporter
                try:
                    target.shutdown()
                except Exception:  # noqa: BLE001 - giving up anyway
                    pass
            for thread in threads:
                thread.join(_CANCEL_WAIT_S)
    if finished:
        held.replay()
        return True
    _logger.warning(
        "otel_carbon: no OpenTelemetry collector answered at %s within %s s %s: the last spans "
        "and metrics were not exported. Start a collector there or set OTEL_EXPORTER_OTLP_ENDPOINT; "
        "to print telemetry instead choose OTEL_TRACES_EXPORTER=console and OTEL_METRICS_EXPORTER=console "
        "(or none, or configure(traces_exporter=..., metrics_exporter=...))",
        _endpoints(exporters),
        f"{timeout_s:g}",
        when,
    )
    return False


class _HeldBack(logging.Filter):
    """While in use, the records of the OpenTelemetry SDK's and exporters' loggers are kept
    here instead of being emitted; :meth:`replay` emits them afterwards."""

    PREFIXES = ("opentelemetry.exporter.", "opentelemetry.sdk.")

    def __init__(self) -> None:
        super().__init__()
        self.records: List[logging.LogRecord] = []
        self._loggers: List[logging.Logger] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False

    def __enter__(self) -> "_HeldBack":
        found = list(logging.Logger.manager.loggerDict.items())
        self._loggers = [lg for name, lg in found if isinstance(lg, logging.Logger) and name.startswith(self.PREFIXES)]
        for logger in self._loggers:
            logger.addFilter(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)

    def replay(self) -> None:
        for record in self.records:
            logging.getLogger(record.name).handle(record)
        self.records = []


def flush(providers: Iterable[Any], timeout_millis: int) -> bool:
    """``force_flush`` each provider in turn within ``timeout_millis`` in all; True when every
    one exported everything in time. A provider that raises (a failed reader) is logged once."""
    deadline = time.monotonic() + timeout_millis / 1000
    ok = True
    for provider in providers:
        if provider is None:
            continue
        left_ms = max(int((deadline - time.monotonic()) * 1000), 0)
        try:
            ok = bool(provider.force_flush(timeout_millis=left_ms)) and ok
        except Exception as exc:  # noqa: BLE001 - the SDK raises when a reader failed
            warn_once(_logger, f"flush:{type(provider).__name__}", "otel_carbon: force_flush failed: %r", exc)
            ok = False
    return ok


def _shutdown(provider: Any) -> None:
    if getattr(provider, "_shutdown", False) is True:  # a MeterProvider shut down directly
        return
    try:
        provider.shutdown()
    except Exception:  # noqa: BLE001 - the SDK logs its own export errors
        pass


def _endpoints(exporters: List[Any]) -> str:
    found = []
    for exporter in exporters:
        target = getattr(exporter, "_exporter", exporter)
        endpoint = getattr(target, "_endpoint", None)
        if isinstance(endpoint, str) and endpoint and endpoint not in found:
            found.append(endpoint)
    if found:
        return ", ".join(found)
    return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or "the exporters' endpoint"
