"""Who hears of each span's figures (the meter), and which spans each one wants."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Tuple

from otel_carbon._log import warn_once

_logger = logging.getLogger("otel_carbon")

Listener = Callable[[Any, Dict[str, Any]], None]

#: what the compiled span path is told (:attr:`SpanListeners.mode`)
NONE, EVERY_SPAN, LOCAL_ROOTS = 0, 1, 2


class SpanListeners:
    """``(listener, local roots only)`` pairs, called with ``(span, figures)`` at span end.

    A local root has no parent or a remote one: one span per request. While every listener
    wants local roots only, the span path calls nobody for a child span."""

    __slots__ = ("pairs",)

    def __init__(self) -> None:
        self.pairs: Tuple[Tuple[Listener, bool], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def add(self, listener: Listener, local_roots_only: bool = False) -> None:
        self.pairs = (*self.pairs, (listener, bool(local_roots_only)))

    def remove(self, listener: Listener) -> None:
        self.pairs = tuple(x for x in self.pairs if x[0] is not listener)

    @property
    def mode(self) -> int:
        """:data:`NONE`, :data:`EVERY_SPAN` (some listener wants every span) or :data:`LOCAL_ROOTS`."""
        if not self.pairs:
            return NONE
        return LOCAL_ROOTS if all(roots_only for _, roots_only in self.pairs) else EVERY_SPAN

    def notify(self, span: Any, values: Dict[str, Any]) -> None:
        """Call each listener that wants ``span``; a listener that raises is logged once."""
        root = None
        for listener, roots_only in self.pairs:
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
