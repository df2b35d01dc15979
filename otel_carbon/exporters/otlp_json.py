"""Spans as OTLP JSON lines: one ``ExportTraceServiceRequest`` per line.

This is the format the OpenTelemetry Collector's file exporter writes (and the OTLP/HTTP
JSON encoding): lowerCamelCase field names, trace and span ids as hex strings, enums as
integers, 64-bit integers as strings. ``otel-carbon report`` and ``compare`` read it, and
so does anything that reads the Collector's files.

Each export is one line written with one ``os.write`` under ``flock`` on an ``O_APPEND``
descriptor, so several processes (``otel-carbon run`` over a program that starts Python
subprocesses) can share one file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from typing import Any, Dict, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_carbon._log import warn_once
from otel_carbon.exporters._append import locked_append

_logger = logging.getLogger("otel_carbon")
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> None:
    """Protobuf's JSON mapping writes bytes as base64; OTLP JSON wants hex ids."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                node[key] = base64.b64decode(value).hex()
            else:
                _hex_ids(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids(item)


def spans_to_json_line(spans: Sequence[ReadableSpan]) -> str:
    """One OTLP JSON line (no trailing newline) for ``spans``."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    message: Dict[str, Any] = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    _hex_ids(message)
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


class OtlpJsonFileSpanExporter(SpanExporter):
    """Appends each batch of spans to ``path`` as one OTLP JSON line."""

    def __init__(self, path: "os.PathLike[str] | str") -> None:
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a non-empty file path, got {path!r}")
        self.path = path
        self.spans_written = 0
        self._lock = threading.Lock()
        self._shutdown = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            line = (spans_to_json_line(spans) + "\n").encode("utf-8")
            with self._lock:
                locked_append(self.path, lambda head, size, ends_with_newline: line if ends_with_newline else b"\n" + line, head_bytes=0)
                self.spans_written += len(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter must not raise into the SDK
            warn_once(_logger, f"otlp-json:{self.path}", "otel_carbon: could not write spans to %s: %r", self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
