"""Reading OTLP JSON lines into span records.

Shared by ``otel-carbon report``, ``compare`` and ``run``. Input: one
``ExportTraceServiceRequest`` per line (the Collector's file exporter, our
:class:`~otel_carbon.exporters.otlp_json.OtlpJsonFileSpanExporter`); lines that hold no
spans (metrics, logs) are skipped. A line that cannot be used is skipped whole and counted
with its reason (:class:`ReadStats`): not JSON, nested too deeply, malformed OTLP, a
timestamp out of range, or a ``carbon.*`` figure that is NaN, infinite, negative or over
:data:`MAX_FIGURE`, so such a figure never reaches a total or a budget. The file is streamed;
a line over :data:`MAX_LINE_BYTES` is read past, never held, and counted.

Grouping key of a span (:attr:`SpanRecord.key`): ``METHOD ROUTE`` when it has
``http.route`` (method from ``http.request.method`` or the older ``http.method``), else the
route alone, else the span name.
"""

from __future__ import annotations

import json
import math
import os
import stat
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Dict, Iterable, Iterator, List, Optional

from otel_carbon import attributes as A

ROUTE = "http.route"
METHODS = ("http.request.method", "http.method")


@dataclass(frozen=True)
class SpanRecord:
    name: str
    key: str
    start_ns: int
    end_ns: int
    attributes: Dict[str, Any]
    service: str = ""
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    #: the parent is in another process (OTLP span flags: its context is known to be remote)
    parent_remote: bool = False

    @property
    def duration_s(self) -> float:
        return max(self.end_ns - self.start_ns, 0) / 1e9

    def number(self, name: str) -> Optional[float]:
        value = self.attributes.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def energy_j(self) -> Optional[float]:
        return self.number(A.ENERGY_TOTAL)

    @property
    def emissions_g(self) -> float:
        return self.number(A.EMISSIONS) or 0.0

    @property
    def cpu_time_s(self) -> float:
        return self.number(A.CPU_TIME) or 0.0


#: A line longer than this is refused (skipped and counted), so memory stays bounded.
MAX_LINE_BYTES = 64 * 1024 * 1024
#: The largest figure one span may carry (J, g, s): a 10 kW host for three years. Anything
#: larger is not a measurement, and sums of many such figures stay finite.
MAX_FIGURE = 1e12
_SHOWN_LINE_NUMBERS = 3


class BadLine(ValueError):
    """A line that is not a usable OTLP JSON message; ``str()`` says why, briefly."""


@dataclass
class ReadStats:
    lines: int = 0
    bad_lines: int = 0
    spans: int = 0
    skipped: Dict[str, int] = field(default_factory=dict)  # why -> how many lines
    first_lines: Dict[str, List[int]] = field(default_factory=dict)  # why -> the first line numbers

    def skip(self, line_number: int, why: str) -> None:
        self.bad_lines += 1
        self.skipped[why] = self.skipped.get(why, 0) + 1
        numbers = self.first_lines.setdefault(why, [])
        if len(numbers) < _SHOWN_LINE_NUMBERS:
            numbers.append(line_number)

    def describe(self) -> str:
        """``3 lines skipped: 2 not JSON (lines 1, 4), 1 negative carbon.energy.total (line 7)``."""
        if not self.bad_lines:
            return ""
        parts = []
        for why, count in self.skipped.items():
            shown = self.first_lines[why]
            where = ", ".join(str(n) for n in shown) + (", ..." if count > len(shown) else "")
            parts.append(f"{count} {why} (line{'s' if count > 1 else ''} {where})")
        return f"{self.bad_lines} line{'s' if self.bad_lines > 1 else ''} skipped: " + "; ".join(parts)


def _value(any_value: Any) -> Any:
    """An OTLP JSON ``AnyValue`` as a Python value (``BadLine`` when malformed)."""
    if not isinstance(any_value, dict):
        raise BadLine("malformed attribute value")
    if "stringValue" in any_value:
        return str(any_value["stringValue"])
    if "boolValue" in any_value:
        return bool(any_value["boolValue"])
    if "doubleValue" in any_value:
        raw = any_value["doubleValue"]
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise BadLine("malformed doubleValue")
        try:
            return float(raw)  # proto3 JSON writes NaN/Infinity as strings
        except ValueError:
            raise BadLine("malformed doubleValue") from None
    if "intValue" in any_value:
        raw = any_value["intValue"]
        if isinstance(raw, float) and not raw.is_integer():
            raise BadLine("malformed intValue")
        try:
            return int(raw)
        except (TypeError, ValueError, OverflowError):
            raise BadLine("malformed intValue") from None
    if "arrayValue" in any_value:
        return [_value(v) for v in _list((any_value["arrayValue"] or {}), "values")]
    if "kvlistValue" in any_value:
        return _attributes(_list((any_value["kvlistValue"] or {}), "values"))
    return None


def _list(container: Any, key: str) -> List[Any]:
    if not isinstance(container, dict):
        raise BadLine(f"malformed {key}")
    items = container.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        raise BadLine(f"malformed {key}")
    return items


def _attributes(items: Any) -> Dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise BadLine("malformed attributes")
    out: Dict[str, Any] = {}
    for kv in items:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise BadLine("malformed attributes")
        out[kv["key"]] = _value(kv.get("value", {}))
    return out


def _check_figures(attributes: Dict[str, Any]) -> None:
    """Our figures (numbers under ``carbon.``) are finite, >= 0 and plausible, or the line is bad."""
    for key, value in attributes.items():
        if not key.startswith("carbon.") or isinstance(value, (bool, str)) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            raise BadLine(f"non-finite {key}")
        if value < 0:
            raise BadLine(f"negative {key}")
        if value > MAX_FIGURE:
            raise BadLine(f"implausible {key} (over 1e12)")
    energy = attributes.get(A.ENERGY_TOTAL)
    if energy is not None and (isinstance(energy, (bool, str)) or not isinstance(energy, (int, float))):
        raise BadLine(f"{A.ENERGY_TOTAL} is not a number")


def group_key(name: str, attributes: Dict[str, Any]) -> str:
    route = attributes.get(ROUTE)
    if isinstance(route, str) and route:
        for m in METHODS:
            method = attributes.get(m)
            if isinstance(method, str) and method and method != "_OTHER":
                return f"{method} {route}"
        return route
    return name


def _time_ns(value: Any) -> int:
    """A ``*TimeUnixNano`` (integer or decimal string) in [0, 2**64)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise BadLine("malformed timestamp")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else -1
    except (ValueError, OverflowError):
        raise BadLine("malformed timestamp") from None
    if not 0 <= number < 2**64:
        raise BadLine("timestamp out of range")
    return number


def _id(value: Any) -> str:
    return value if isinstance(value, str) else ""


def spans_of_message(message: Any) -> List[SpanRecord]:
    """The spans of one ``ExportTraceServiceRequest`` (``BadLine`` if any part is malformed:
    a line is taken whole or not at all)."""
    if not isinstance(message, dict):
        raise BadLine("not an OTLP JSON object")
    out: List[SpanRecord] = []
    for rs in _list(message, "resourceSpans"):
        if not isinstance(rs, dict):
            raise BadLine("malformed resourceSpans")
        resource = rs.get("resource") or {}
        if not isinstance(resource, dict):
            raise BadLine("malformed resource")
        service = str(_attributes(resource.get("attributes")).get("service.name", ""))
        for ss in _list(rs, "scopeSpans"):
            if not isinstance(ss, dict):
                raise BadLine("malformed scopeSpans")
            for span in _list(ss, "spans"):
                if not isinstance(span, dict):
                    raise BadLine("malformed span")
                attrs = _attributes(span.get("attributes"))
                _check_figures(attrs)
                name = span.get("name", "")
                name = name if isinstance(name, str) else str(name)
                out.append(SpanRecord(
                    name=name,
                    key=group_key(name, attrs),
                    start_ns=_time_ns(span.get("startTimeUnixNano")),
                    end_ns=_time_ns(span.get("endTimeUnixNano")),
                    attributes=attrs,
                    service=service,
                    trace_id=_id(span.get("traceId")),
                    span_id=_id(span.get("spanId")),
                    parent_span_id=_id(span.get("parentSpanId")),
                    parent_remote=_parent_remote(span.get("flags")),
                ))
    return out


#: OTLP ``Span.flags`` bits 8 and 9: whether the parent is known to be remote, and is
REMOTE_PARENT_FLAGS = 0x300


def _parent_remote(flags: Any) -> bool:
    """From a span's OTLP ``flags`` (absent in files from older SDKs: not remote)."""
    return isinstance(flags, int) and not isinstance(flags, bool) and flags & REMOTE_PARENT_FLAGS == REMOTE_PARENT_FLAGS


def _reject_constant(name: str) -> Any:
    raise BadLine(f"{name} in JSON")


# One decoder for every line (building one per call costs as much as a short line's parse).
# A number too big for a float (1e999) becomes inf and fails the checks above.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_line(line: "str | bytes") -> List[SpanRecord]:
    """The spans of one OTLP JSON line (``BadLine`` saying why it cannot be used)."""
    if isinstance(line, bytes):
        line = line.decode("utf-8", "replace")  # a stray byte in a span name costs one character, not the line
    try:
        message = _DECODER.decode(line)
    except BadLine:
        raise
    except RecursionError:
        raise BadLine("nested too deeply") from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise BadLine("not JSON") from None
    try:
        return spans_of_message(message)
    except BadLine:
        raise
    except RecursionError:
        raise BadLine("nested too deeply") from None
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:  # belt and braces
        raise BadLine(f"malformed OTLP ({type(exc).__name__})") from None


class _TooLong(bytes):
    """Stands for a line over the limit (its text is never kept)."""

    limit = MAX_LINE_BYTES


def iter_spans(lines: Iterable["str | bytes"], stats: Optional[ReadStats] = None) -> Iterator[SpanRecord]:
    """Spans from OTLP JSON lines; a bad line is skipped and counted in ``stats``."""
    stats = stats if stats is not None else ReadStats()
    for number, line in enumerate(lines, 1):
        if isinstance(line, _TooLong):
            stats.lines += 1
            stats.skip(number, f"longer than {_size(line.limit)}")
            continue
        if not line.strip():
            continue
        stats.lines += 1
        try:
            spans = parse_line(line)
        except BadLine as exc:
            stats.skip(number, str(exc))
            continue
        stats.spans += len(spans)
        yield from spans


def _size(n: int) -> str:
    return f"{n // 1048576} MiB" if n >= 1048576 and n % 1048576 == 0 else f"{n} bytes"


def bounded_lines(fh: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary file; a line over ``max_line_bytes`` is read past in chunks
    (never held whole) and given as a marker that :func:`iter_spans` counts as skipped."""
    while True:
        line = fh.readline(max_line_bytes + 1)
        if not line:
            return
        if len(line.rstrip(b"\r\n")) > max_line_bytes:
            while line and not line.endswith(b"\n"):
                line = fh.readline(1 << 20)
            marker = _TooLong()
            marker.limit = max_line_bytes
            yield marker
            continue
        yield line


def read_spans(path: str, stats: Optional[ReadStats] = None, max_line_bytes: int = MAX_LINE_BYTES) -> List[SpanRecord]:
    """Every span in the OTLP JSON lines file ``path`` (``OSError`` if unreadable, or if it is
    a device, such as ``/dev/zero``, that would never end)."""
    with open(path, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise OSError(f"{path} is a device, not a file of OTLP JSON lines")
        return list(iter_spans(bounded_lines(fh, max_line_bytes), stats))
