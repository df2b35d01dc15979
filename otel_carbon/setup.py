"""``configure()``: one line for an application that has no OpenTelemetry setup yet.

    import otel_carbon
    otel_carbon.configure(service_name="checkout")

sets up a tracer provider and a meter provider the way the SDK's auto-configuration would
(the standard ``OTEL_*`` variables are honoured), adds :class:`CarbonSpanProcessor` and the
meter instruments (:mod:`otel_carbon.metrics`), and makes both providers global.

* **Exporters** come from ``traces_exporter`` / ``metrics_exporter`` when given, else from
  ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (comma lists; ``none``; default
  ``otlp``), resolved through the public ``opentelemetry_traces_exporter`` /
  ``opentelemetry_metrics_exporter`` entry-point groups, so any installed exporter works
  (``console``, ``prometheus``, ``zipkin_json``...). ``otlp`` follows
  ``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL`` then ``OTEL_EXPORTER_OTLP_PROTOCOL``:
  ``grpc`` (the Python SDK's default) or ``http/protobuf``. Spans go through a
  ``BatchSpanProcessor`` (``OTEL_BSP_*``), metrics through a
  ``PeriodicExportingMetricReader`` (``OTEL_METRIC_EXPORT_INTERVAL``) unless the entry point
  is a reader itself (Prometheus). The exporters read their own endpoint variables.
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
* **Exit is bounded**: the providers made here are flushed at interpreter exit for at most
  2 s (:mod:`otel_carbon._exit`), not until the exporters give up; an endpoint that did
  not answer by then is named in one warning.
* The processor and instruments are attached **once per provider**, shared with the
  ``carbon`` instrumentor (``opentelemetry-instrument``): using both never counts a span
  twice.

Bad arguments raise ``ValueError`` naming the argument; a bad environment value is logged
once and skipped. Nothing else here raises into the application.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
import time
import uuid
import weakref
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_carbon import _exit, config, record_unsampled
from otel_carbon._log import warn_once
from otel_carbon.processor import CarbonSpanProcessor
from otel_carbon.sampler import Sampler, get_sampler, set_sampler

_logger = logging.getLogger("otel_carbon")

TRACES_GROUP = "opentelemetry_traces_exporter"
METRICS_GROUP = "opentelemetry_metrics_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_SIGNAL_PROTOCOL_ENV = {"traces": OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "metrics": OTEL_EXPORTER_OTLP_METRICS_PROTOCOL}
_DEFAULT_EXPORTER = "otlp"  # the specification's default for both signals

TracesArg = Union[None, str, SpanExporter, Sequence[Union[str, SpanExporter]]]
MetricsArg = Union[None, str, MetricExporter, MetricReader, Sequence[Union[str, MetricExporter, MetricReader]]]


# -- one processor / one set of instruments per provider --------------------------------


class _Switch(SpanProcessor):
    """Forwards to a :class:`CarbonSpanProcessor` while on, does nothing once off.

    A provider cannot drop a processor, so this is what is added to it: turning it off is
    how the instrumentor's ``uninstrument`` (and :meth:`CarbonSetup.shutdown` on a provider
    we do not own) really stops the work on spans.
    """

    _HOOKS = ("on_start", "_on_ending", "on_end")

    def __init__(self, target: CarbonSpanProcessor) -> None:
        self._target: Optional[CarbonSpanProcessor] = None
        self.target = target

    @property
    def target(self) -> Optional[CarbonSpanProcessor]:
        return self._target

    @target.setter
    def target(self, target: Optional[CarbonSpanProcessor]) -> None:
        """On: the target's own bound hooks become this object's, so the SDK calls them with
        no forwarding frame per span. Off: the class's no-op hooks show through again."""
        self._target = target
        for name in self._HOOKS:
            if target is None:
                self.__dict__.pop(name, None)
            else:
                setattr(self, name, getattr(target, name))

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass  # off (while on, the target's hook shadows this one)

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def shutdown(self) -> None:
        target = self._target
        self.target = None
        if target is not None:
            target.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.target
        return target.force_flush(timeout_millis) if target is not None else True


class _Slot:
    __slots__ = ("value", "users", "switch", "unsampled")

    def __init__(self, value: Any, switch: Optional[_Switch] = None) -> None:
        self.value = value
        self.switch = switch
        self.users = 1
        self.unsampled = False  # whether we wrapped the provider's sampler (record_unsampled)


_registry_lock = threading.RLock()
_processors: "weakref.WeakKeyDictionary[Any, _Slot]" = weakref.WeakKeyDictionary()
_meters: "weakref.WeakKeyDictionary[Any, _Slot]" = weakref.WeakKeyDictionary()
_idle_switches: "weakref.WeakKeyDictionary[Any, _Switch]" = weakref.WeakKeyDictionary()


def acquire_processor(provider: TracerProvider, sampler: Optional[Sampler] = None) -> CarbonSpanProcessor:
    """The :class:`CarbonSpanProcessor` on ``provider``, added now if it has none of ours."""
    with _registry_lock:
        slot = _processors.get(provider)
        if slot is not None:
            slot.users += 1
            return slot.value  # type: ignore[no-any-return]
        processor = CarbonSpanProcessor(sampler=sampler)
        switch = _idle_switches.pop(provider, None)
        if switch is not None:  # ours was turned off earlier: turn the same one back on
            switch.target = processor
        else:
            switch = _Switch(processor)
            provider.add_span_processor(switch)
        _processors[provider] = _Slot(processor, switch)
        return processor


def release_processor(provider: TracerProvider) -> bool:
    """Drop one use; the last one turns our processor on ``provider`` off. True if it did."""
    with _registry_lock:
        slot = _processors.get(provider)
        if slot is None:
            return False
        slot.users -= 1
        if slot.users > 0:
            return False
        del _processors[provider]
        if slot.unsampled:
            record_unsampled.uninstall(provider)
        assert slot.switch is not None
        slot.switch.shutdown()
        _idle_switches[provider] = slot.switch
        return True


def record_unsampled_roots(provider: TracerProvider, instruments: Any) -> None:
    """With the meter on ``provider``'s spans: wrap its sampler so that dropped local roots
    are recorded for the metrics, never exported (:mod:`otel_carbon.record_unsampled`),
    unless ``OTEL_CARBON_RECORD_UNSAMPLED=off``. Undone when our processor is released."""
    if instruments is None or not config.record_unsampled():
        return
    with _registry_lock:
        slot = _processors.get(provider)
        if slot is not None and not slot.unsampled:
            slot.unsampled = record_unsampled.install(provider, children=instruments.spans == "all")


def metrics_class() -> Any:
    """``otel_carbon.metrics.CarbonMetrics``, or None (logged once) when it cannot load."""
    try:
        from otel_carbon.metrics import CarbonMetrics
    except ImportError as exc:
        warn_once(_logger, "metrics-import", "otel_carbon: meter instruments unavailable (%r); spans only", exc)
        return None
    return CarbonMetrics


def acquire_metrics(
    meter_provider: Any,
    processor: Optional[CarbonSpanProcessor],
    sampler: Optional[Sampler] = None,
    span_attribute_allowlist: Sequence[str] = (),
) -> Any:
    """The ``CarbonMetrics`` on ``meter_provider``, made now if it has none (None if the
    metrics module is unavailable)."""
    with _registry_lock:
        slot = _meters.get(meter_provider)
        if slot is not None:
            slot.users += 1
            if processor is not None:
                slot.value.attach(processor)  # idempotent
            return slot.value
        cls = metrics_class()
        if cls is None:
            return None
        instruments = cls(meter_provider, sampler=sampler, span_attribute_allowlist=tuple(span_attribute_allowlist))
        if processor is not None:
            instruments.attach(processor)
        _meters[meter_provider] = _Slot(instruments)
        return instruments


def check_allowlist(span_attribute_allowlist: Any) -> None:
    """ValueError (naming the argument) unless it is a list of attribute names the meter
    accepts: checked before anything is set up."""
    if isinstance(span_attribute_allowlist, (str, bytes)) or not all(
        isinstance(x, str) for x in _as_list(span_attribute_allowlist, "span_attribute_allowlist")
    ):
        raise ValueError(f"span_attribute_allowlist must be a list of attribute names, got {span_attribute_allowlist!r}")
    try:
        from otel_carbon.metrics._spans import build_allowlist
    except ImportError:
        return
    build_allowlist(span_attribute_allowlist, ())  # raises ValueError for URL / id attributes


def release_metrics(meter_provider: Any) -> bool:
    with _registry_lock:
        slot = _meters.get(meter_provider)
        if slot is None:
            return False
        slot.users -= 1
        if slot.users > 0:
            return False
        del _meters[meter_provider]
    slot.value.shutdown()
    return True


# -- exporters from names ---------------------------------------------------------------


def _entry_points(group: str) -> Dict[str, Any]:
    found = importlib.metadata.entry_points()
    items = found.select(group=group) if hasattr(found, "select") else found.get(group, [])  # type: ignore[attr-defined]
    return {ep.name: ep for ep in items}


def _otlp_entry_point(signal: str) -> str:
    name = _SIGNAL_PROTOCOL_ENV[signal]
    raw = os.environ.get(name, "").strip() or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL, "").strip()
    if not raw:
        return _OTLP_BY_PROTOCOL["grpc"]
    protocol = raw.lower()
    if protocol not in _OTLP_BY_PROTOCOL:
        warn_once(_logger, f"protocol:{raw}", "otel_carbon: OTLP protocol %r (from %s or OTEL_EXPORTER_OTLP_PROTOCOL) "
                  "is not supported: expected grpc or http/protobuf; using grpc", raw, name)
        return _OTLP_BY_PROTOCOL["grpc"]
    return _OTLP_BY_PROTOCOL[protocol]


def _split(names: str) -> List[str]:
    return [n.strip().lower() for n in names.split(",") if n.strip()]


def _from_names(names: List[str], signal: str, source: str, strict: bool) -> List[Any]:
    """Load and instantiate the named exporters. ``strict`` (a code argument) raises
    ValueError; otherwise (the environment) a bad name is logged once and skipped."""
    if "none" in names:
        if len(names) > 1:
            warn_once(_logger, f"none:{source}", "otel_carbon: %s lists 'none' with other exporters; using none", source)
        return []
    group = TRACES_GROUP if signal == "traces" else METRICS_GROUP
    available = _entry_points(group)
    out = []
    for name in names:
        ep_name = _otlp_entry_point(signal) if name == "otlp" else name
        try:
            ep = available.get(ep_name)
            if ep is None:
                known = ", ".join(sorted({"otlp", "none", *available}))
                raise LookupError(f"no {group} entry point named {ep_name!r} (installed: {known})")
            out.append(ep.load()())  # exporters read their own OTEL_EXPORTER_* variables
        except Exception as exc:  # noqa: BLE001 - a broken exporter package must not break the app
            message = f"{source}: exporter {name!r} unavailable: {exc}"
            if strict:
                raise ValueError(message) from exc
            warn_once(_logger, f"exporter:{source}:{name}", "otel_carbon: %s; skipped", message)
    return out


def span_exporters(traces_exporter: TracesArg) -> List[SpanExporter]:
    """Exporters from the argument, else ``OTEL_TRACES_EXPORTER`` (default ``otlp``)."""
    if traces_exporter is None:
        names = _split(os.environ.get(OTEL_TRACES_EXPORTER, "")) or [_DEFAULT_EXPORTER]
        return _from_names(names, "traces", OTEL_TRACES_EXPORTER, False)
    items = [traces_exporter] if isinstance(traces_exporter, (str, SpanExporter)) else traces_exporter
    out: List[SpanExporter] = []
    for item in _as_list(items, "traces_exporter"):
        if isinstance(item, SpanExporter):
            out.append(item)
        elif isinstance(item, str):
            out.extend(_from_names(_split(item) or ["none"], "traces", "traces_exporter", True))
        else:
            raise ValueError(f"traces_exporter must be a name, a SpanExporter or a list of them, got {type(item).__name__}")
    return out


def metric_readers(metrics_exporter: MetricsArg) -> List[MetricReader]:
    """Readers from the argument, else ``OTEL_METRICS_EXPORTER`` (default ``otlp``)."""
    if metrics_exporter is None:
        names = _split(os.environ.get(OTEL_METRICS_EXPORTER, "")) or [_DEFAULT_EXPORTER]
        found = _from_names(names, "metrics", OTEL_METRICS_EXPORTER, False)
    else:
        single = isinstance(metrics_exporter, (str, MetricExporter, MetricReader))
        found = []
        for item in _as_list([metrics_exporter] if single else metrics_exporter, "metrics_exporter"):
            if isinstance(item, (MetricExporter, MetricReader)):
                found.append(item)
            elif isinstance(item, str):
                found.extend(_from_names(_split(item) or ["none"], "metrics", "metrics_exporter", True))
            else:
                raise ValueError(
                    f"metrics_exporter must be a name, a MetricExporter, a MetricReader or a list of them, got {type(item).__name__}"
                )
    return [x if isinstance(x, MetricReader) else PeriodicExportingMetricReader(x) for x in found]


def _as_list(items: Any, arg: str) -> List[Any]:
    try:
        return list(items)
    except TypeError:
        raise ValueError(f"{arg} must be a name, an exporter or a list of them, got {type(items).__name__}") from None


# -- configure() ------------------------------------------------------------------------


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
        if not isinstance(timeout_millis, int) or isinstance(timeout_millis, bool) or timeout_millis < 0:
            raise ValueError(f"timeout_millis must be an int >= 0, got {timeout_millis!r}")
        deadline = time.monotonic() + timeout_millis / 1000
        ok = True
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is None:
                continue
            left_ms = max(int((deadline - time.monotonic()) * 1000), 0)
            try:
                ok = bool(provider.force_flush(timeout_millis=left_ms)) and ok
            except Exception as exc:  # noqa: BLE001 - the SDK raises when a reader failed
                warn_once(_logger, f"flush:{type(provider).__name__}", "otel_carbon: force_flush failed: %r", exc)
                ok = False
        return ok

    def shutdown(self) -> None:
        """Stop our processor and instruments and shut down the providers configure()
        created (which flushes them). Safe to call twice. Providers the application owns are
        left running, without our processor. The OpenTelemetry API does not allow the global
        providers to be replaced, so this is meant for the end of the process (or a test)."""
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
            if self.owns_tracer_provider and self.tracer_provider is not None:
                self.tracer_provider.shutdown()
            if self.owns_meter_provider and self.meter_provider is not None:
                self.meter_provider.shutdown()
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "setup-shutdown", "otel_carbon: shutdown failed: %r", exc)

    def __repr__(self) -> str:
        return (
            f"<CarbonSetup tracer_provider={type(self.tracer_provider).__name__}"
            f"{'(own)' if self.owns_tracer_provider else ''} meter_provider={type(self.meter_provider).__name__}"
            f"{'(own)' if self.owns_meter_provider else ''} metrics={self.metrics is not None}>"
        )


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
            items = _as_list(value, arg)
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
    )
    # the SDK's exit hooks are off on the providers made here: a bounded flush instead
    ref = weakref.ref(setup)
    _exit.register([tracer_provider if owns_tracer else None, meter_provider if owns_meter else None],
                   [*exporters, *readers], lambda: not getattr(ref(), "_shutdown", False))
    return setup


def _process_sampler(resource: Optional[Resource]) -> Sampler:
    """The process-wide sampler. When configure() built the Resource and no sampler runs
    yet, the sampler's intensity is resolved from that Resource at once (``cloud.provider``
    + ``cloud.region``), so even the first spans carry the right zone."""
    from otel_carbon import sampler as sampler_module

    if resource is None:
        return get_sampler()
    attributes = dict(resource.attributes)
    if sampler_module._sampler is None:  # noqa: SLF001
        try:
            from otel_carbon.intensity import intensity_source
            from otel_carbon.sensors.probe import get_probe

            made = Sampler(get_probe(), intensity=intensity_source(attributes))
        except Exception as exc:  # noqa: BLE001 - fall back to the default sampler
            warn_once(_logger, "setup-sampler", "otel_carbon: sampler from the Resource failed: %r", exc)
            return get_sampler()
        if sampler_module._sampler is None:  # noqa: SLF001 - still nobody else's
            set_sampler(made.start())
            return made
        made.shutdown()
    found = get_sampler()
    found.use_resource(attributes)
    return found


def _reset_for_tests() -> None:
    """Forget the global setup (tests that also reset the OpenTelemetry globals)."""
    global _current
    with _configure_lock:
        _current = None
