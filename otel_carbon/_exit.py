"""A bounded flush at interpreter exit for the providers ``configure()`` created.

The SDK's own exit hook (``shutdown_on_exit=True``) flushes every exporter without a time
limit: with the default OTLP exporter and no collector listening, each exporter retries
with backoff until ``OTEL_EXPORTER_OTLP_TIMEOUT`` (10 s) per batch, and the process hangs
for tens of seconds after ``main`` returned, printing a retry line each time. So
``configure()`` creates its providers with ``shutdown_on_exit=False`` and registers
:func:`_at_exit` instead: both providers shut down in parallel (daemon threads), for at most
:data:`EXIT_FLUSH_S`. What is not exported by then is given up: the exporters are shut down
(which cancels their retries), and one warning names the endpoint that did not answer and
how to choose ``console`` or ``none``.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Callable, Iterable, List

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
    if not still_open():
        return
    providers = [p for p in (r() for r in refs) if p is not None]
    threads = [threading.Thread(target=_shutdown, args=(p,), name="otel-carbon-exit", daemon=True) for p in providers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + EXIT_FLUSH_S
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0.0))
    if not any(t.is_alive() for t in threads):
        return
    exporters = [e for e in (r() for r in exporter_refs) if e is not None]
    _logger.warning(
        "otel_carbon: no OpenTelemetry collector answered at %s within %.0f s at exit: the last spans "
        "and metrics were not exported. Start a collector there or set OTEL_EXPORTER_OTLP_ENDPOINT; "
        "to print telemetry instead choose OTEL_TRACES_EXPORTER=console and OTEL_METRICS_EXPORTER=console "
        "(or none, or configure(traces_exporter=..., metrics_exporter=...))",
        _endpoints(exporters),
        EXIT_FLUSH_S,
    )
    for exporter in exporters:  # cancels the retries still waiting
        target = getattr(exporter, "_exporter", exporter)  # a metric reader holds its exporter
        try:
            target.shutdown()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
    for thread in threads:
        thread.join(_CANCEL_WAIT_S)


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
