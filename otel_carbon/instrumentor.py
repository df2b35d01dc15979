"""The ``carbon`` instrumentor: energy and CO2e with ``opentelemetry-instrument``, no code.

With otel_carbon installed, ``opentelemetry-instrument python app.py`` finds this class
through the ``opentelemetry_instrumentor`` entry point named ``carbon``. Auto-instrumentation
loads the distro, runs the configurator (which sets the SDK tracer and meter providers from
the ``OTEL_*`` variables) and only then the instrumentors, so :meth:`instrument` finds the
providers set and adds to them:

* :class:`~otel_carbon.processor.CarbonSpanProcessor` to the global SDK ``TracerProvider``;
* the meter instruments (``otel_carbon.metrics.CarbonMetrics``) to the global SDK
  ``MeterProvider``, unless ``OTEL_CARBON_METRICS=off``; with them, the tracer provider's
  sampler (``OTEL_TRACES_SAMPLER``) is wrapped so that dropped local roots still reach the
  metrics, never the exporters (:mod:`otel_carbon.record_unsampled`,
  ``OTEL_CARBON_RECORD_UNSAMPLED=off`` to not).

``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=carbon`` turns it off (OpenTelemetry's own switch).
With no SDK provider (the API's proxy: no distro or configurator ran, or the application
sets its providers later) it logs one warning and does nothing: call
``otel_carbon.configure()`` in the application instead, or add the processor yourself.

The processor and instruments are shared, per provider, with :func:`otel_carbon.configure`,
so an application that calls ``configure()`` under ``opentelemetry-instrument`` gets them once.

:meth:`uninstrument` turns our processor off (a provider cannot drop a processor; ours then
returns at once), shuts the instruments down (their callbacks are unregistered), and stops
the sampler thread when this instrumentor started it and nothing else uses it. The asyncio
step hook of :mod:`otel_carbon.task_timing` stays installed: it is shared with any other
``CarbonSpanProcessor`` and does no work for tasks without an open span.

Keyword arguments of :meth:`instrument` (all optional): ``tracer_provider``,
``meter_provider`` (default: the global ones), ``metrics`` (bool, default
``OTEL_CARBON_METRICS``), ``span_attribute_allowlist`` (names of span attributes the
per-route metrics may carry).
"""

from __future__ import annotations

import logging
from typing import Any, Collection, Optional

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_carbon import config
from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")


class CarbonInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Adds energy and CO2e to the SDK providers that auto-configuration set up."""

    _tracer_provider: Any = None
    _meter_provider: Any = None
    _started_sampler: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()  # no library is patched: only the SDK providers are added to

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")
        want_metrics = kwargs.get("metrics")
        allowlist = kwargs.get("span_attribute_allowlist", ())
        if tracer_provider is not None and not isinstance(tracer_provider, trace_api.TracerProvider):
            raise ValueError(f"tracer_provider must be a TracerProvider, got {type(tracer_provider).__name__}")
        if meter_provider is not None and not isinstance(meter_provider, metrics_api.MeterProvider):
            raise ValueError(f"meter_provider must be a MeterProvider, got {type(meter_provider).__name__}")
        if want_metrics is not None and not isinstance(want_metrics, bool):
            raise ValueError(f"metrics must be True, False or None, got {want_metrics!r}")
        from otel_carbon.provider_registry import check_allowlist

        check_allowlist(allowlist)
        try:
            self._attach(tracer_provider, meter_provider, want_metrics, tuple(allowlist))
        except Exception as exc:  # noqa: BLE001 - never break the application's start
            warn_once(_logger, "instrument", "otel_carbon: the carbon instrumentor failed (%r); no carbon figures", exc)
            self._uninstrument()

    def _attach(self, tracer_provider: Any, meter_provider: Any, want_metrics: Optional[bool], allowlist: Any) -> None:
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

        from otel_carbon import provider_registry as registry
        from otel_carbon import process_sampler as sampler_module

        if want_metrics is None:
            want_metrics = config.metrics_enabled()
        tp = tracer_provider if tracer_provider is not None else trace_api.get_tracer_provider()
        mp = meter_provider if meter_provider is not None else metrics_api.get_meter_provider()
        sdk_tp = tp if isinstance(tp, SdkTracerProvider) else None
        sdk_mp = mp if want_metrics and isinstance(mp, SdkMeterProvider) else None
        if sdk_tp is None and sdk_mp is None:
            warn_once(
                _logger,
                "instrumentor-no-sdk",
                "otel_carbon: no OpenTelemetry SDK provider is set (tracer provider: %s); the carbon "
                "instrumentor does nothing. Install opentelemetry-distro (or set a configurator) for "
                "opentelemetry-instrument, or call otel_carbon.configure() in the application.",
                type(tp).__name__,
            )
            return
        if sdk_tp is None:
            warn_once(_logger, "instrumentor-no-sdk-tracer", "otel_carbon: the tracer provider is a %s, not an SDK "
                      "TracerProvider: metrics only, no carbon span attributes", type(tp).__name__)
        sampler, created = sampler_module.get_or_create_sampler()
        self._started_sampler = sampler if created else None
        processor = None
        if sdk_tp is not None:
            processor = registry.acquire_processor(sdk_tp, sampler)
            self._tracer_provider = sdk_tp
        if sdk_mp is not None:
            try:
                instruments = registry.acquire_metrics(sdk_mp, processor, sampler, allowlist)
            except Exception as exc:  # noqa: BLE001 - the span attributes keep working
                warn_once(_logger, "instrument-metrics", "otel_carbon: meter instruments could not be added: %r", exc)
                instruments = None
            if instruments is not None:
                self._meter_provider = sdk_mp
                if sdk_tp is not None:
                    registry.record_unsampled_roots(sdk_tp, instruments)
        _logger.debug("otel_carbon: carbon instrumentor added to %s / %s", type(tp).__name__, type(mp).__name__)

    def _uninstrument(self, **kwargs: Any) -> None:
        try:
            self._detach()
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "uninstrument", "otel_carbon: uninstrument failed: %r", exc)

    def _detach(self) -> None:
        from otel_carbon import provider_registry as registry
        from otel_carbon import process_sampler as sampler_module

        mp, self._meter_provider = self._meter_provider, None
        tp, self._tracer_provider = self._tracer_provider, None
        started, self._started_sampler = self._started_sampler, None
        if mp is not None:
            registry.release_metrics(mp)
        if tp is not None:
            registry.release_processor(tp)
        # Stop the sampler thread if we started it and nothing uses it any more (no
        # configure() is attaching meanwhile: the registry's lock is held).
        if started is not None and sampler_module.current_sampler() is started and not started.in_use:
            registry.run_if_unused(sampler_module.shutdown_sampler)
