"""The span exporter of CodeCarbon's ``emissions.csv``: one row per selected span (see
:mod:`otel_carbon.exporters.emissions_csv`, which also names it)."""

from __future__ import annotations

import logging
import os
from typing import Callable, Iterable, Optional

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_carbon._log import warn_once
from otel_carbon.exporters.codecarbon_rows import row_from_span
from otel_carbon.exporters.emissions_csv import EmissionsCsvFile

_logger = logging.getLogger("otel_carbon")


class EmissionsCsvSpanExporter(SpanExporter):
    """A span exporter writing one CodeCarbon row per selected span.

    ``select(span) -> bool`` picks the spans; the default is every *root* span (no parent)
    that carries carbon figures: one row per request or job. Spans of tracked runs are
    written by the trackers themselves (``save_to_file``); do not select them here too.
    """

    def __init__(
        self,
        path: "os.PathLike[str] | str" = "emissions.csv",
        *,
        project_name: Optional[str] = None,
        experiment_id: str = "",
        select: Optional[Callable[[ReadableSpan], bool]] = None,
    ) -> None:
        self.file = EmissionsCsvFile(path)
        self._project = project_name
        self._experiment = experiment_id
        self._select = select or (lambda span: span.parent is None)
        self._shutdown = False

    def export(self, spans: Iterable[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        rows = []
        for span in spans:
            try:
                if not self._select(span):
                    continue
                row = row_from_span(span, self._project, self._experiment)
            except Exception as exc:  # noqa: BLE001
                warn_once(_logger, "csv-span-row", "otel_carbon: could not make a CSV row from a span: %r", exc)
                continue
            if row is not None:
                rows.append(row)
        if not rows:
            return SpanExportResult.SUCCESS
        return SpanExportResult.SUCCESS if self.file.append(*rows) else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._shutdown = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
