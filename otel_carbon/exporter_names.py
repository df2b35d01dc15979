"""Exporters from names, as the SDK's auto-configuration resolves them.

``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER`` (or the ``traces_exporter`` /
``metrics_exporter`` arguments of :func:`otel_carbon.configure`) name entry points of the
public ``opentelemetry_traces_exporter`` / ``opentelemetry_metrics_exporter`` groups, looked
up through the same cached entry-point index the SDK's configurator reads, so any installed
exporter works (``console``, ``prometheus``, ``zipkin_json``...). ``otlp`` follows
``OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL`` then ``OTEL_EXPORTER_OTLP_PROTOCOL``:
``grpc`` (the Python SDK's default) or ``http/protobuf``. The SDK's own resolver is private
and raises on a bad protocol (and its name changed across the versions we support): here a
bad protocol is one warning and ``grpc``, a bad name from the environment is one warning and
skipped, and a bad name passed in code raises ``ValueError``. Push exporters of metrics get a
``PeriodicExportingMetricReader`` (``OTEL_METRIC_EXPORT_INTERVAL``); an entry point that is
a reader itself (Prometheus) is used as it is. The exporters read their own endpoint
variables.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Sequence, Union

from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")

TRACES_GROUP = "opentelemetry_traces_exporter"
METRICS_GROUP = "opentelemetry_metrics_exporter"
_OTLP_BY_PROTOCOL = {"grpc": "otlp_proto_grpc", "http/protobuf": "otlp_proto_http"}
_SIGNAL_PROTOCOL_ENV = {"traces": OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "metrics": OTEL_EXPORTER_OTLP_METRICS_PROTOCOL}
_DEFAULT_EXPORTER = "otlp"  # the specification's default for both signals

TracesArg = Union[None, str, SpanExporter, Sequence[Union[str, SpanExporter]]]
MetricsArg = Union[None, str, MetricExporter, MetricReader, Sequence[Union[str, MetricExporter, MetricReader]]]


def _entry_points(group: str) -> Dict[str, Any]:
    # the SDK's configurator looks its components up through this cached index too
    from opentelemetry.util._importlib_metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


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
    for item in as_list(items, "traces_exporter"):
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
        for item in as_list([metrics_exporter] if single else metrics_exporter, "metrics_exporter"):
            if isinstance(item, (MetricExporter, MetricReader)):
                found.append(item)
            elif isinstance(item, str):
                found.extend(_from_names(_split(item) or ["none"], "metrics", "metrics_exporter", True))
            else:
                raise ValueError(
                    f"metrics_exporter must be a name, a MetricExporter, a MetricReader or a list of them, got {type(item).__name__}"
                )
    return [x if isinstance(x, MetricReader) else PeriodicExportingMetricReader(x) for x in found]


def as_list(items: Any, arg: str) -> List[Any]:
    """``list(items)``, or ValueError naming ``arg`` when it is not iterable."""
    try:
        return list(items)
    except TypeError:
        raise ValueError(f"{arg} must be a name, an exporter or a list of them, got {type(items).__name__}") from None
