"""Our own background work is never traced.

The sampler and the live-intensity refresher run in threads of their own; an instrumented
library they call (``urllib`` for the live providers) would otherwise make spans of its
own, which the application would export and pay for. :func:`untraced` runs a block under
OpenTelemetry's ``suppress_instrumentation`` context, which every official
instrumentation honours: the two context keys of the API that
``opentelemetry.instrumentation.utils.suppress_instrumentation`` sets, set here without
needing that package.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

from opentelemetry import context

T = TypeVar("T")


@contextmanager
def untraced() -> Iterator[None]:
    ctx = context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True)  # noqa: SLF001 - the API's own key
    ctx = context.set_value(context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, ctx)  # noqa: SLF001
    token = context.attach(ctx)
    try:
        yield
    finally:
        context.detach(token)


def run_untraced(target: Callable[..., T]) -> Callable[..., T]:
    """``target`` wrapped to run under :func:`untraced` (a thread's ``target``)."""

    def run(*args: object, **kwargs: object) -> T:
        with untraced():
            return target(*args, **kwargs)

    return run
