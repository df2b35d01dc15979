"""``emissions.csv`` in CodeCarbon 3.x's format: one row per tracked run.

Columns are exactly the set CodeCarbon 3.x writes (``EmissionsData``), in its order and its
units: energy in kWh, power in W (the average over the run), emissions in kg CO2e,
``emissions_rate`` in kg/s, ``duration`` in seconds, ``ram_total_size`` in GiB. Notebooks and
dashboards built on CodeCarbon files read ours, and a CodeCarbon tracker appends to the same
file (it checks the *set* of header names, then writes its values in the file's order; so do
we). Our other figures (CPU time, method, per-span shares) stay on the spans, never in extra
columns.

Mapping (what we know; unknowns are left as CodeCarbon leaves them, empty or 0):

* ``cpu_energy`` / ``ram_energy`` / ``gpu_energy``: ``carbon.energy.cpu`` / ``.memory`` /
  ``.gpu`` of the run (plus its share of static power, ``carbon.energy.idle``, under
  ``cpu_energy`` when the idle policy puts it on spans); ``energy_consumed`` is their sum.
* ``*_power``: that energy divided by ``duration``.
* ``country_iso_code`` (alpha-3), ``country_name``, ``region``, ``cloud_provider``,
  ``cloud_region``: from the zone of the intensity used; ``pue`` from it too.
* ``codecarbon_version``: ``otel-carbon <version>``, so a row says who wrote it.
* ``tracking_mode``: ``process`` (the span and process scopes), ``machine``.
* ``water_consumed`` and ``wue``: 0 (unknown), as CodeCarbon writes them by default.

Concurrency: each row is one ``os.write`` on an ``O_APPEND`` descriptor under an exclusive
``fcntl.flock``; the header check and the write happen under the same lock, so concurrent
writers (threads, processes) never tear a row and the header is written once. A write cut
short (disk full, a file-size limit) is cut back to where it started, under the same lock,
so the file never keeps half a row.

Cells: a field holding a comma, a quote, ``\n`` or ``\r`` is quoted (a bare ``\r`` too,
which Python's ``csv`` module leaves bare when lines end in ``\n``). Text starting with
``=``, ``+``, ``-`` or ``@`` is written as it is, as CodeCarbon does; a spreadsheet may run
it as a formula. ``OTEL_CARBON_CSV_SAFE=on`` (or ``EmissionsCsvFile(path, safe=True)``)
prefixes such text cells with ``'`` (numbers are never changed). A file whose
header is a different set of columns is never overwritten: the row is not written, and a
warning names the file and the difference (CodeCarbon would back the file up and start a
new one; we leave that decision to you).
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from otel_carbon import config
from otel_carbon._log import warn_once
from otel_carbon.exporters._append import locked_append
from otel_carbon.exporters.codecarbon_rows import _DYNAMIC, CsvRow, codecarbon_row, host_facts, row_from_span, zone_columns

__all__ = [
    "CODECARBON_COLUMNS",
    "CsvRow",
    "EmissionsCsvFile",
    "EmissionsCsvSpanExporter",
    "codecarbon_row",
    "host_facts",
    "row_from_span",
    "zone_columns",
]

_logger = logging.getLogger("otel_carbon")

#: CodeCarbon 3.x ``EmissionsData`` fields, in its order (its CSV header).
CODECARBON_COLUMNS: Tuple[str, ...] = (
    "timestamp",
    "project_name",
    "run_id",
    "experiment_id",
    "duration",
    "emissions",
    "emissions_rate",
    "cpu_power",
    "gpu_power",
    "ram_power",
    "cpu_energy",
    "gpu_energy",
    "ram_energy",
    "energy_consumed",
    "water_consumed",
    "country_name",
    "country_iso_code",
    "region",
    "cloud_provider",
    "cloud_region",
    "os",
    "python_version",
    "codecarbon_version",
    "cpu_count",
    "cpu_model",
    "gpu_count",
    "gpu_model",
    "longitude",
    "latitude",
    "ram_total_size",
    "tracking_mode",
    "cpu_utilization_percent",
    "gpu_utilization_percent",
    "ram_utilization_percent",
    "ram_used_gb",
    "on_cloud",
    "pue",
    "wue",
)

_COLUMN_SET = frozenset(CODECARBON_COLUMNS)


# -- the file ---------------------------------------------------------------------------------


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _field(value: Any, safe: bool = False) -> str:
    """One CSV cell: floats as repr() (as the csv module and pandas write them), None empty,
    quoted when it holds a comma, quote, or line break; formula-like text prefixed with
    ``'`` when ``safe``."""
    if type(value) is float:
        return repr(value)
    text = "" if value is None else str(value)
    if safe and isinstance(value, str) and text.startswith(_FORMULA_START):
        text = "'" + text
    if "," in text or '"' in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _line(values: Iterable[Any], safe: bool = False) -> bytes:
    return (",".join(_field(v, safe) for v in values) + "\n").encode("utf-8")


@functools.lru_cache(maxsize=16)
def _header_columns(first_line: bytes) -> Tuple[Tuple[str, ...], bool]:
    """The columns of a header line, and whether they are CodeCarbon's (in any order)."""
    text = first_line.rstrip(b"\r").decode("utf-8", "replace").lstrip("\ufeff")
    columns = tuple(next(csv.reader([text]), []))
    return columns, set(columns) == _COLUMN_SET and len(columns) == len(CODECARBON_COLUMNS)


_templates: Dict[Tuple[Tuple[str, ...], int, bool], Tuple[Any, List[str], List[Tuple[int, str]]]] = {}


def _template(columns: Tuple[str, ...], static: Mapping[str, Any], safe: bool) -> Tuple[List[str], List[Tuple[int, str]]]:
    """The encoded static fields in ``columns`` order (empty where a row's own value goes),
    and the (position, column) of each of those."""
    key = (columns, id(static), safe)
    found = _templates.get(key)
    if found is None or found[0] is not static:
        pieces = ["" if c in _DYNAMIC else _field(static.get(c), safe) for c in columns]
        dynamic = [(i, c) for i, c in enumerate(columns) if c in _DYNAMIC]
        if len(_templates) > 256:
            _templates.clear()
        found = _templates[key] = (static, pieces, dynamic)
    return found[1], found[2]


def _fast_line(columns: Tuple[str, ...], static: Mapping[str, Any], row: Mapping[str, Any], safe: bool) -> bytes:
    pieces, dynamic = _template(columns, static, safe)
    line = pieces.copy()
    for i, c in dynamic:
        value = row[c]
        line[i] = repr(value) if type(value) is float else _field(value, safe)
    return (",".join(line) + "\n").encode("utf-8")


class HeaderMismatch(Exception):
    def __init__(self, missing: List[str], extra: List[str]) -> None:
        super().__init__(f"missing columns {missing}, unexpected columns {extra}")
        self.missing = missing
        self.extra = extra


class EmissionsCsvFile:
    """Appends rows (mappings of :data:`CODECARBON_COLUMNS`) to a CodeCarbon-format CSV file.

    ``append`` never raises: a failure is logged once per file and reported by the return
    value. Rows written by one call land together, header first when the file is empty.
    """

    def __init__(self, path: "os.PathLike[str] | str", *, safe: Optional[bool] = None) -> None:
        path = os.fspath(path)
        if not isinstance(path, str) or not path:
            raise ValueError(f"path must be a non-empty file path, got {path!r}")
        if safe is not None and not isinstance(safe, bool):
            raise ValueError(f"safe must be True, False or None (OTEL_CARBON_CSV_SAFE), got {safe!r}")
        self.path = path
        self.safe = config.csv_safe() if safe is None else safe
        self.rows_written = 0
        self.rows_refused = 0

    def append(self, *rows: Mapping[str, Any]) -> bool:
        if not rows:
            return True
        for row in rows:
            unknown = () if type(row) is CsvRow else row.keys() - _COLUMN_SET
            if unknown:
                raise ValueError(f"rows must only use CodeCarbon's columns; unknown: {sorted(unknown)}")
        try:
            locked_append(self.path, functools.partial(self._payload, rows, self.safe))
        except HeaderMismatch as exc:
            self.rows_refused += len(rows)
            warn_once(
                _logger,
                f"csv-header:{self.path}",
                "otel_carbon: %s has a different header (%s); not writing to it. Move it away, or "
                "choose another output_dir/output_file.",
                self.path,
                exc,
            )
            return False
        except OSError as exc:
            self.rows_refused += len(rows)
            warn_once(_logger, f"csv-write:{self.path}", "otel_carbon: could not append to %s: %r", self.path, exc)
            return False
        self.rows_written += len(rows)
        return True

    @staticmethod
    def _payload(rows: Sequence[Mapping[str, Any]], safe: bool, head: bytes, size: int, ends_with_newline: bool) -> bytes:
        """What to write, given the start of the file (read under the lock)."""
        if size == 0 or not head.strip():
            columns: Sequence[str] = CODECARBON_COLUMNS
            prefix = _line(columns)
        else:
            columns, valid = _header_columns(head.split(b"\n", 1)[0])
            if not valid:
                missing = [c for c in CODECARBON_COLUMNS if c not in columns]
                extra = [c for c in columns if c not in _COLUMN_SET]
                raise HeaderMismatch(missing, extra)
            prefix = b"" if ends_with_newline else b"\n"
        out = [prefix]
        for row in rows:
            static = getattr(row, "static", None)
            if static is not None:
                out.append(_fast_line(tuple(columns), static, row, safe))
            else:
                out.append(_line((row.get(c) for c in columns), safe))
        return b"".join(out)


def __getattr__(name: str) -> Any:
    # The span exporter needs the OpenTelemetry SDK; the tracking API (the file and its rows)
    # does not, so it is loaded only when asked for.
    if name == "EmissionsCsvSpanExporter":
        from otel_carbon.exporters.emissions_csv_exporter import EmissionsCsvSpanExporter

        return EmissionsCsvSpanExporter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
