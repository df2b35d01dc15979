"""``configure()``: one line for an application that has no OpenTelemetry setup yet.

    import otel_carbon
    otel_carbon.configure(service_name="checkout")

sets up a tracer provider and a meter provider the way the SDK's auto-configuration would
(the standard ``OTEL_*`` variables are honoured), adds :class:`CarbonSpanProcessor` and the
meter instruments (:mod:`otel_carbon.metrics`), and makes both providers global.

* **Exporters** come from ``traces_exporter`` / ``metrics_exporter`` when given, else from
  ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (comma lists; ``none``; default
  ``otlp``), by entry-point name (:mod:`otel_carbon.exporter_names`). Spans go through a
  ``BatchSpanProcessor`` (``OTEL_BSP_*``), metrics through a
  ``PeriodicExportingMetricReader`` unless the entry point is a reader itself (Prometheus).
* **Resource**: ``Resource.create`` (``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME``,
  detectors), then ``resource_attributes`` and ``service_name`` on top (an argument beats
  the environment, as in the SDK); ``service.instance.id`` is a new UUID unless one was
  given, so the processes of one service keep apart in a shared backend.
* **Idempotent**: a second call returns the same :class:`CarbonSetup` (its arguments are
  ignored, with one warning if they differ).
* **Never replaces** a provider the application set: if the global tracer (meter) provider
  is already an SDK one, our processor (instruments) is added to it, and the application's
  exporters are left alone; an exporter passed explicitly is added to it too. A meter
  provider takes its readers at creation, so ``metrics_exporter`` cannot be added to an
  existing one (logged once).
* **Every request counts**: with the meter on, the tracer provider's sampler (the one
  ``OTEL_TRACES_SAMPLER`` chose, or the application's) is wrapped so that the local roots it
  drops are recorded for the metrics but never exported (:mod:`otel_carbon.record_unsampled`;
  ``OTEL_CARBON_RECORD_UNSAMPLED=off`` leaves it alone).
* **Exit is bounded**: the providers made here are flushed at interpreter exit (or
  :meth:`CarbonSetup.shutdown`) for at most 2 s (:mod:`otel_carbon._exit`), not until the
  exporters give up; an endpoint that did not answer by then is named in one warning.
* The processor and instruments are attached **once per provider**, shared with the
  ``carbon`` instrumentor (``opentelemetry-instrument``) through
  :mod:`otel_carbon.provider_registry`: using both never counts a span twice.

Bad arguments raise ``ValueError`` naming the argument; a bad environment value is logged
once and skipped. Nothing else here raises into the application.
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from typing import Any, List, Mapping, Optional, Sequence

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_carbon import _exit, config
from otel_carbon._log import warn_once
from otel_carbon.exporter_names import MetricsArg, TracesArg, as_list, metric_readers, span_exporters
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.provider_registry import (
    acquire_metrics,
    acquire_processor,
    check_allowlist,
    record_unsampled_roots,
    release_metrics,
    release_processor,
)
from otel_carbon.process_sampler import get_or_create_sampler, get_sampler
from otel_carbon.sampler import Sampler

_logger = logging.getLogger("otel_carbon")


class CarbonSetup:
    """What :func:`configure` set up.

    Attributes:
        tracer_provider: the SDK tracer provider carrying our processor (ours, or the one
            the application had set), or None when there is none to add to.
        meter_provider: the SDK meter provider carrying our instruments, or None (metrics
            off, no exporter, or a non-SDK provider).
        processor: the :class:`CarbonSpanProcessor`, or None.
        metrics: the ``otel_carbon.metrics.CarbonMetrics``, or None.
        owns_tracer_provider / owns_meter_provider: whether configure() created them
            (only those are shut down by :meth:`shutdown`).
        resource: the Resource configure() built (used for the providers it created).
        sampler: the process-wide sampler the figures come from.
    """

    def __init__(
        self,
        *,
        tracer_provider: Optional[TracerProvider],
        meter_provider: Optional[MeterProvider],
        processor: Optional[CarbonSpanProcessor],
        metrics: Any,
        sampler: Sampler,
        owns_tracer_provider: bool,
        owns_meter_provider: bool,
        resource: Resource,
        key: Any = None,
        exporters: Sequence[Any] = (),
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.processor = processor
        self.metrics = metrics
        self.sampler = sampler
        self.owns_tracer_provider = owns_tracer_provider
        self.owns_meter_provider = owns_meter_provider
        self.resource = resource
        self._key = key
        self._exporters = tuple(exporters)  # made from names: cancelled when a shutdown runs late
        #: called by a later configure() with different arguments (all of them, as keywords);
        #: True when it took care of them (``otel-carbon run`` adopts the program's own
        #: service name this way), else the usual "already called" warning follows.
        self.on_configure_again: Optional[Any] = None
        self._lock = threading.Lock()
        self._shutdown = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Export every span ended so far (all of the tracer provider's processors, ours or
        not) and the current metrics; True when everything was exported in time. Call it at
        the end of each serverless invocation: a frozen function exports nothing later."""
        _check_timeout(timeout_millis)
        return _exit.flush([self.tracer_provider, self.meter_provider], timeout_millis)

    def shutdown(self, timeout_millis: int = int(_exit.EXIT_FLUSH_S * 1000)) -> None:
        """Stop our processor and instruments and shut down the providers configure()
        created (which flushes them), within ``timeout_millis`` (2 s by default, as at exit:
        what a collector has not taken by then is given up, with one warning). Safe to call
        twice. Providers the application owns are left running, without our processor. The
        OpenTelemetry API does not allow the global providers to be replaced, so this is meant
        for the end of the process (or a test)."""
        _check_timeout(timeout_millis)
        global _current
        with self._lock:
            if self._shutdown:
                return
            self._shutdown = True
        with _configure_lock:
            if _current is self:
                _current = None
        try:
            if self.meter_provider is not None and self.metrics is not None:
                release_metrics(self.meter_provider)
            if self.tracer_provider is not None and self.processor is not None:
                release_processor(self.tracer_provider)
            owned = [self.tracer_provider if self.owns_tracer_provider else None,
                     self.meter_provider if self.owns_meter_provider else None]
            _exit.bounded_shutdown(owned, self._exporters, timeout_millis / 1000, "at shutdown")
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "setup-shutdown", "otel_carbon: shutdown failed: %r", exc)

    def __repr__(self) -> str:
        return (
            f"<CarbonSetup tracer_provider={type(self.tracer_provider).__name__}"
            f"{'(own)' if self.owns_tracer_provider else ''} meter_provider={type(self.meter_provider).__name__}"
            f"{'(own)' if self.owns_meter_provider else ''} metrics={self.metrics is not None}>"
        )


def _check_timeout(timeout_millis: object) -> None:
    if not isinstance(timeout_millis, int) or isinstance(timeout_millis, bool) or timeout_millis < 0:
        raise ValueError(f"timeout_millis must be an int >= 0, got {timeout_millis!r}")


_configure_lock = threading.RLock()
_current: Optional[CarbonSetup] = None


def current_setup() -> Optional[CarbonSetup]:
    """The setup the last global :func:`configure` call made, or None."""
    return _current


def configure(
    service_name: Optional[str] = None,
    *,
    traces_exporter: TracesArg = None,
    metrics_exporter: MetricsArg = None,
    metrics: Optional[bool] = None,
    resource_attributes: Optional[Mapping[str, Any]] = None,
    span_attribute_allowlist: Sequence[str] = (),
    set_global: bool = True,
) -> CarbonSetup:
    """Set up tracing and metrics with energy and CO2e, in one call (see the module docstring).

    Args:
        service_name: ``service.name`` of the Resource (beats ``OTEL_SERVICE_NAME``).
        traces_exporter: exporter name(s) as in ``OTEL_TRACES_EXPORTER`` (``"otlp"``,
            ``"console"``, ``"otlp,console"``, ``"none"``), a ``SpanExporter``, or a list of
            those. Default: ``OTEL_TRACES_EXPORTER``, else ``otlp``.
        metrics_exporter: the same for metrics (``OTEL_METRICS_EXPORTER``), or a
            ``MetricExporter`` / ``MetricReader``.
        metrics: add the meter instruments; default ``OTEL_CARBON_METRICS`` (on).
        resource_attributes: added to the Resource (beat ``OTEL_RESOURCE_ATTRIBUTES``);
            ``cloud.provider`` + ``cloud.region`` also select the grid intensity.
        span_attribute_allowlist: span attributes (e.g. ``http.route``) the per-route
            energy metrics may carry as metric attributes.
        set_global: make the providers global (default). False builds private providers
            every call (not idempotent) and never looks at the global ones.

    Returns:
        the :class:`CarbonSetup` (the same object on every global call).
    """
    key = _check_arguments(
        service_name, traces_exporter, metrics_exporter, metrics, resource_attributes, span_attribute_allowlist, set_global
    )
    global _current
    with _configure_lock:
        if set_global and _current is not None:
            again = _current.on_configure_again
            if _current._key != key and not (again is not None and again(
                service_name=service_name, traces_exporter=traces_exporter, metrics_exporter=metrics_exporter,
                metrics=metrics, resource_attributes=resource_attributes,
                span_attribute_allowlist=span_attribute_allowlist, set_global=set_global,
            )):
                warn_once(_logger, "configure-again", "otel_carbon: configure() was already called; its first setup is "
                          "kept and these arguments are ignored")
            return _current
        setup = _build(service_name, traces_exporter, metrics_exporter, metrics, resource_attributes,
                       tuple(span_attribute_allowlist), set_global, key)
        if set_global:
            _current = setup
        return setup


def _check_arguments(
    service_name: Any, traces_exporter: Any, metrics_exporter: Any, metrics: Any, resource_attributes: Any,
    span_attribute_allowlist: Any, set_global: Any,
) -> Any:
    if service_name is not None and not (isinstance(service_name, str) and service_name.strip()):
        raise ValueError(f"service_name must be a non-empty string or None, got {service_name!r}")
    if metrics is not None and not isinstance(metrics, bool):
        raise ValueError(f"metrics must be True, False or None, got {metrics!r}")
    if not isinstance(set_global, bool):
        raise ValueError(f"set_global must be True or False, got {set_global!r}")
    if resource_attributes is not None:
        if not isinstance(resource_attributes, Mapping) or not all(isinstance(k, str) for k in resource_attributes):
            raise ValueError(f"resource_attributes must be a mapping with string keys, got {resource_attributes!r}")
    check_allowlist(span_attribute_allowlist)
    for arg, value, kinds in (
        ("traces_exporter", traces_exporter, (str, SpanExporter)),
        ("metrics_exporter", metrics_exporter, (str, MetricExporter, MetricReader)),
    ):
        if value is not None and not isinstance(value, kinds):
            items = as_list(value, arg)
            if not all(isinstance(x, kinds) for x in items):
                names = " or ".join(k.__name__ for k in kinds)
                raise ValueError(f"{arg} must be a {names} or a list of them, got {value!r}")

    def ident(value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (list, tuple)):
            return tuple(ident(v) for v in value)
        return id(value)

    attrs = tuple(sorted((resource_attributes or {}).items(), key=lambda kv: kv[0]))
    return (service_name, ident(traces_exporter), ident(metrics_exporter), metrics, repr(attrs),
            tuple(span_attribute_allowlist), set_global)


def _build(
    service_name: Optional[str], traces_exporter: TracesArg, metrics_exporter: MetricsArg, metrics: Optional[bool],
    resource_attributes: Optional[Mapping[str, Any]], allowlist: Sequence[str], set_global: bool, key: Any,
) -> CarbonSetup:
    attributes = dict(resource_attributes or {})
    if service_name:
        attributes[SERVICE_NAME] = service_name
    resource = Resource.create(attributes)
    if SERVICE_INSTANCE_ID not in resource.attributes:
        # One per process that calls configure(): without it, the metric series of several
        # workers of one service (gunicorn, uvicorn --workers) are the same series to a
        # collector and overwrite each other. Semantic conventions: a UUID.
        resource = resource.merge(Resource({SERVICE_INSTANCE_ID: str(uuid.uuid4())}))
    want_metrics = config.metrics_enabled() if metrics is None else metrics

    # Resolve everything that can raise ValueError before any global state changes.
    tracer_provider: Optional[TracerProvider] = None
    owns_tracer = False
    existing = trace_api.get_tracer_provider() if set_global else None
    if isinstance(existing, TracerProvider):
        tracer_provider = existing
        exporters = span_exporters(traces_exporter) if traces_exporter is not None else []
    elif existing is None or isinstance(existing, trace_api.ProxyTracerProvider):
        exporters = span_exporters(traces_exporter)
        tracer_provider, owns_tracer = TracerProvider(resource=resource, shutdown_on_exit=False), True
    else:
        exporters = []
        warn_once(_logger, "foreign-tracer-provider", "otel_carbon: the global tracer provider is a %s, not an SDK "
                  "TracerProvider: no carbon attributes can be added to its spans", type(existing).__name__)

    meter_provider: Optional[MeterProvider] = None
    owns_meter = False
    readers: List[MetricReader] = []
    if want_metrics:
        existing_mp = metrics_api.get_meter_provider() if set_global else None
        if isinstance(existing_mp, MeterProvider):
            meter_provider = existing_mp
            if metrics_exporter is not None:
                warn_once(_logger, "metrics-exporter-ignored", "otel_carbon: the application's MeterProvider already "
                          "exists; metrics_exporter cannot be added to it and is ignored")
        elif isinstance(existing_mp, metrics_api.NoOpMeterProvider):
            warn_once(_logger, "noop-meter-provider", "otel_carbon: the global meter provider is a no-op one: no metrics")
        else:
            try:
                readers = metric_readers(metrics_exporter)
            except ValueError:
                given = [traces_exporter] if isinstance(traces_exporter, SpanExporter) else list(traces_exporter or ())
                for exporter in exporters:  # the ones made from names: do not leak their connections
                    if not any(exporter is g for g in given):
                        exporter.shutdown()
                raise
            if readers:
                meter_provider, owns_meter = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False), True

    sampler = _process_sampler(resource if owns_tracer else None)
    processor = None
    if tracer_provider is not None:
        if owns_tracer and set_global:
            trace_api.set_tracer_provider(tracer_provider)
            if trace_api.get_tracer_provider() is not tracer_provider:  # another thread won the race
                tracer_provider.shutdown()
                winner = trace_api.get_tracer_provider()
                tracer_provider, owns_tracer = (winner, False) if isinstance(winner, TracerProvider) else (None, False)
        if tracer_provider is not None:
            processor = acquire_processor(tracer_provider, sampler)
            for exporter in exporters:
                tracer_provider.add_span_processor(BatchSpanProcessor(exporter))

    instruments = None
    if meter_provider is not None:
        if owns_meter and set_global:
            metrics_api.set_meter_provider(meter_provider)
            if metrics_api.get_meter_provider() is not meter_provider:
                meter_provider.shutdown()
                winner_mp = metrics_api.get_meter_provider()
                meter_provider, owns_meter = (winner_mp, False) if isinstance(winner_mp, MeterProvider) else (None, False)
        if meter_provider is not None:
            try:
                instruments = acquire_metrics(meter_provider, processor, sampler, allowlist)
                if processor is not None:
                    record_unsampled_roots(tracer_provider, instruments)
            except Exception as exc:  # noqa: BLE001 - spans keep working without the meter
                warn_once(_logger, "metrics-setup", "otel_carbon: meter instruments could not be added: %r", exc)
    setup = CarbonSetup(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        processor=processor,
        metrics=instruments,
        sampler=sampler,
        owns_tracer_provider=owns_tracer,
        owns_meter_provider=owns_meter,
        resource=resource,
        key=key,
        exporters=[*exporters, *readers],
    )
    # the SDK's exit hooks are off on the providers made here: a bounded flush instead
    ref = weakref.ref(setup)
    _exit.register([tracer_provider if owns_tracer else None, meter_provider if owns_meter else None],
                   setup._exporters, lambda: not getattr(ref(), "_shutdown", False))
    return setup


def _process_sampler(resource: Optional[Resource]) -> Sampler:
    """The process-wide sampler. When configure() built the Resource and no sampler runs
    yet, the sampler's intensity is resolved from that Resource at once (``cloud.provider``
    + ``cloud.region``), so even the first spans carry the right zone."""
    if resource is None:
        return get_sampler()
    attributes = dict(resource.attributes)

    def make() -> Sampler:
        from otel_carbon.intensity import intensity_source
        from otel_carbon.sensors.probe import get_probe

        return Sampler(get_probe(), intensity=intensity_source(attributes))

    try:
        sampler, created = get_or_create_sampler(make)
    except Exception as exc:  # noqa: BLE001 - fall back to the default sampler
        warn_once(_logger, "setup-sampler", "otel_carbon: sampler from the Resource failed: %r", exc)
        return get_sampler()
    if not created:
        sampler.use_resource(attributes)
    return sampler


def _reset_for_tests() -> None:
    """Forget the global setup (tests that also reset the OpenTelemetry globals)."""
    global _current
    with _configure_lock:
        _current = None
