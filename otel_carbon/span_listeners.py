"""Who hears of each span's figures (the meter), and which spans each one wants.

A listener may also hand over its **table of sums** (:class:`Table`): the compiled span path
then adds a local root whose key is already in the table itself, at once, and calls the
listener only for a key it has not seen (the listener makes the cell). See
:class:`otel_carbon.metrics._spans.SpanRecorder`, the one listener that does.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")

Listener = Callable[[Any, Dict[str, Any]], None]

#: what the compiled span path is told (:attr:`SpanListeners.mode`)
NONE, EVERY_SPAN, LOCAL_ROOTS = 0, 1, 2


class Table(NamedTuple):
    """A listener's sums: ``cells[(span name, carbon.method, the span's value of each of
    names, or None)] = [energy J (float), emissions g (float), spans (int), ...]``. Whoever
    adds to a cell does it at once (``otel_carbon._speedups.cell_add``, or under the GIL
    with no Python code in between); only the listener makes cells."""

    cells: Dict[Tuple[Any, ...], List[Any]]
    names: Tuple[str, ...]


class SpanListeners:
    """``(listener, local roots only, table)`` entries; each listener is called with
    ``(span, figures)`` at span end.

    A local root has no parent or a remote one: one span per request. While every listener
    wants local roots only, the span path calls nobody for a child span."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: Tuple[Tuple[Listener, bool, Optional[Table]], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.entries)

    def add(self, listener: Listener, local_roots_only: bool = False, table: Optional[Table] = None) -> None:
        if table is not None and not isinstance(table, Table):
            raise ValueError(f"table must be an otel_carbon.span_listeners.Table, got {type(table).__name__}")
        self.entries = (*self.entries, (listener, bool(local_roots_only), table))

    def remove(self, listener: Listener) -> None:
        self.entries = tuple(x for x in self.entries if x[0] is not listener)

    @property
    def table(self) -> Optional[Table]:
        """The table the compiled span path may add to: the one listener's, when it is the
        only one and wants local roots only."""
        if len(self.entries) == 1 and self.entries[0][1]:
            return self.entries[0][2]
        return None

    @property
    def mode(self) -> int:
        """:data:`NONE`, :data:`EVERY_SPAN` (some listener wants every span) or :data:`LOCAL_ROOTS`."""
        if not self.entries:
            return NONE
        return LOCAL_ROOTS if all(roots_only for _, roots_only, _ in self.entries) else EVERY_SPAN

    def notify(self, span: Any, values: Dict[str, Any]) -> None:
        """Call each listener that wants ``span``; a listener that raises is logged once."""
        root = None
        for listener, roots_only, _ in self.entries:
            if roots_only:
                if root is None:
                    parent = span.parent
                    root = parent is None or parent.is_remote
                if not root:
                    continue
            try:
                listener(span, values)
            except Exception as exc:  # noqa: BLE001
                warn_once(_logger, f"listener:{listener!r}", "otel_carbon: span listener %r failed: %r", listener, exc)
