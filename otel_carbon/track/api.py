"""The public tracking API: :class:`EmissionsTracker` and :func:`track_emissions`."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from typing import Any, Callable, Optional

from otel_carbon._log import warn_once
from otel_carbon.track._config import _Config
from otel_carbon.track._runs import _finish, _Run, _start
from otel_carbon.track.result import EmissionsResult

_logger = logging.getLogger("otel_carbon")


# -- the object ----------------------------------------------------------------------------------


class EmissionsTracker:
    """CodeCarbon's tracker object: ``start()``, ``stop()``, ``flush()``, and ``with``.

    Cheap to create (nothing is measured or resolved until ``start()`` unless location
    arguments are given) and reusable: each ``start()``/``stop()`` pair is a new run and a
    new span. One run at a time per tracker object; use one tracker per concurrent task.

    Args:
        project_name: CodeCarbon's project name (the ``project_name`` column); also the
            span name unless ``name`` is given.
        scope: ``"process"`` (default, ``OTEL_CARBON_TRACK_SCOPE``), ``"span"`` or
            ``"machine"``; see the module docstring.
        save_to_file, output_dir, output_file: append a row to ``output_dir/output_file``
            (default ``./emissions.csv``; ``OTEL_CARBON_SAVE_TO_FILE``, ``OTEL_CARBON_OUTPUT_DIR``).
        country_iso_code, region, cloud_provider, cloud_region, pue: the grid intensity of
            this tracker's results and rows (spans keep the process-wide intensity).
        experiment_id: the ``experiment_id`` column.
        tracer_provider: the provider of the run's span (default: the global one).
        sampler: the sampler to read (default: the process-wide one).
        on_result: ``fn(EmissionsResult)`` called after every ``stop()`` and ``flush()``.
        **codecarbon_options: CodeCarbon's other arguments are accepted and ignored
            (``tracking_mode`` maps to ``scope``); unknown ones raise ``ValueError``.
    """

    def __init__(self, project_name: Optional[str] = None, *, name: Optional[str] = None, **options: Any) -> None:
        self._cfg = _Config(name, project_name, options)
        self._run: Optional[_Run] = None
        self._state_lock = threading.Lock()
        self.final_emissions_data: Optional[EmissionsResult] = None

    @property
    def running(self) -> bool:
        return self._run is not None

    @property
    def result(self) -> Optional[EmissionsResult]:
        """The last result (``stop()`` or ``flush()``)."""
        return self.final_emissions_data

    @property
    def final_emissions(self) -> float:
        """The last result's emissions in kg (CodeCarbon's attribute); 0.0 before any."""
        return self.final_emissions_data.emissions_kg if self.final_emissions_data else 0.0

    def start(self) -> None:
        with self._state_lock:
            if self._run is not None:
                warn_once(_logger, "track-started-twice", "otel_carbon: EmissionsTracker.start() called on a running "
                          "tracker; the running run goes on (use one tracker per concurrent task)")
                return
            self._run = _start(self._cfg)

    def stop(self, _error: Optional[BaseException] = None) -> Optional[EmissionsResult]:
        """End the run and its span; return its figures (None if it was not running)."""
        with self._state_lock:
            run, self._run = self._run, None
        if run is None:
            warn_once(_logger, "track-stop-idle", "otel_carbon: EmissionsTracker.stop() without start()")
            return None
        result = _finish(self._cfg, run, final=True, error=_error)
        if result is not None:
            self.final_emissions_data = result
        return result

    def flush(self) -> Optional[EmissionsResult]:
        """The run's figures so far (and a row with them, with ``save_to_file``); the
        run goes on. None if not running."""
        run = self._run
        if run is None:
            return None
        result = _finish(self._cfg, run, final=False)
        if result is not None:
            self.final_emissions_data = result
        return result

    def __enter__(self) -> "EmissionsTracker":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop(_error=exc)

    async def __aenter__(self) -> "EmissionsTracker":
        self.start()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop(_error=exc)


# -- the decorator ------------------------------------------------------------------------------


def track_emissions(fn: Optional[Callable[..., Any]] = None, *, project_name: Optional[str] = None,
                    name: Optional[str] = None, **options: Any) -> Any:
    """Track every call of a function (sync or ``async``) as a run and a span.

    ``@track_emissions`` or ``@track_emissions(project_name=..., scope=..., ...)`` with the
    arguments of :class:`EmissionsTracker`. The span is named after the function's
    qualified name unless ``name`` is given; ``project_name`` defaults to it too. The last
    result is kept as ``wrapper.last_result``; ``on_result=`` sees every one.
    """
    if fn is not None and not callable(fn):
        raise ValueError(f"track_emissions decorates a function, got {fn!r}")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        label = name or getattr(func, "__qualname__", None) or getattr(func, "__name__", "function")
        cfg = _Config(label, project_name if project_name is not None else label, options)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = _start(cfg)
                error = None
                try:
                    return await func(*args, **kwargs)
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    if run is not None:
                        async_wrapper.last_result = _finish(cfg, run, True, error, at_once=False)  # type: ignore[attr-defined]

            async_wrapper.last_result = None  # type: ignore[attr-defined]
            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = _start(cfg)
            error = None
            try:
                return func(*args, **kwargs)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if run is not None:
                    wrapper.last_result = _finish(cfg, run, True, error, at_once=False)  # type: ignore[attr-defined]

        wrapper.last_result = None  # type: ignore[attr-defined]
        return wrapper

    return decorate(fn) if fn is not None else decorate


# -- a run beside the application's spans --------------------------------------------------------


def start_detached_run(name: str, parent: Any = None, **options: Any) -> Callable[[], Optional[EmissionsResult]]:
    """Start a run whose span is a child of ``parent`` (an OpenTelemetry ``Context``;
    default: the current one) and is never made the current span, so the spans opened
    while it runs keep their own traces (``otel-carbon run`` measures a whole program this
    way). ``options`` as for :class:`EmissionsTracker`. Returns ``stop()``, which ends the
    run (the first call only) and returns its result, or None when the run could not start."""
    from opentelemetry import context as otel_context

    cfg = _Config(name, options.pop("project_name", name), options, attach=False)
    token = otel_context.attach(parent) if parent is not None else None
    try:
        run = _start(cfg)
    finally:
        if token is not None:
            otel_context.detach(token)
    lock = threading.Lock()
    pending = [run]

    def stop() -> Optional[EmissionsResult]:
        with lock:
            started, pending[0] = pending[0], None
        return _finish(cfg, started, True) if started is not None else None

    return stop
