"""Inside a Python program started by ``otel-carbon run``: zero-code setup.

``otel-carbon run`` puts a folder holding a ``sitecustomize.py`` first on ``PYTHONPATH``;
Python imports it at start-up, and it calls :func:`boot`, which

1. instruments the installed libraries as ``opentelemetry-instrument`` does
   (``opentelemetry.instrumentation.auto_instrumentation.initialize``, when installed);
2. sets up tracing with our processor through :func:`otel_carbon.setup.configure` (or, if
   that is unavailable, a ``TracerProvider`` with :class:`CarbonSpanProcessor`), exporting
   to the run's OTLP JSON lines file (and to the exporters named in
   ``OTEL_TRACES_EXPORTER`` when the user set it);
3. opens a root span over the whole program (a process-scope tracked run, child of the
   ``otel-carbon run`` span; it is not made the current span, so request spans keep their
   own traces) and ends it at exit, then flushes.

Any failure here is reported in one line on stderr and the program runs unmeasured inside
(the parent still measures it as a process).
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Any, List

ENV_SPANS_FILE = "OTEL_CARBON_RUN_SPANS_FILE"
ENV_NAME = "OTEL_CARBON_RUN_NAME"
ENV_TRACEPARENT = "OTEL_CARBON_RUN_TRACEPARENT"
ENV_USER_TRACES_EXPORTER = "OTEL_CARBON_RUN_USER_TRACES_EXPORTER"
ENV_USER_METRICS_EXPORTER = "OTEL_CARBON_RUN_USER_METRICS_EXPORTER"
ENV_AUTO_INSTRUMENT = "OTEL_CARBON_RUN_AUTO_INSTRUMENT"

SITECUSTOMIZE = '''\
# Written by `otel-carbon run`: instrument this Python program with zero code.
def _otel_carbon_run_boot():
    import importlib.machinery, importlib.util, os, sys
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    ours = sys.modules.pop("sitecustomize", None)
    try:  # the sitecustomize we shadow, if any, runs first
        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
    except Exception as exc:
        sys.stderr.write("otel-carbon run: the program's own sitecustomize failed: %r\\n" % (exc,))
    finally:
        if ours is not None:
            sys.modules["sitecustomize"] = ours
    try:
        from otel_carbon.run_child import boot
    except Exception as exc:
        sys.stderr.write("otel-carbon run: this Python cannot import otel_carbon (%r); "
                         "measuring the program as a process only\\n" % (exc,))
        return
    boot()
_otel_carbon_run_boot()
del _otel_carbon_run_boot
'''


def _names(value: str) -> List[str]:
    return [n.strip() for n in value.split(",") if n.strip() and n.strip().lower() != "none"]


def _auto_instrument() -> None:
    if os.environ.get(ENV_AUTO_INSTRUMENT, "1") == "0":
        return
    try:
        from opentelemetry.instrumentation.auto_instrumentation import initialize
    except ImportError:
        return
    initialize()


def _setup(exporter: Any) -> Any:
    """Tracing with our processor and ``exporter``; returns something with force_flush()."""
    user_traces = _names(os.environ.get(ENV_USER_TRACES_EXPORTER, ""))
    user_metrics = _names(os.environ.get(ENV_USER_METRICS_EXPORTER, ""))
    try:
        from otel_carbon.setup import configure
    except ImportError:
        configure = None
    if configure is not None:
        return configure(traces_exporter=[exporter, *user_traces], metrics=bool(user_metrics))
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from otel_carbon.processor import CarbonSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    provider.add_span_processor(CarbonSpanProcessor())  # type: ignore[union-attr]
    provider.add_span_processor(BatchSpanProcessor(exporter))  # type: ignore[union-attr]
    return provider


def boot() -> None:
    path = os.environ.get(ENV_SPANS_FILE)
    if not path:
        return
    try:
        from opentelemetry import context as otel_context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from otel_carbon import attributes as R
        from otel_carbon.exporters.otlp_json import OtlpJsonFileSpanExporter
        from otel_carbon.track._config import _Config
        from otel_carbon.track._runs import _finish, _start

        _auto_instrument()
        setup = _setup(OtlpJsonFileSpanExporter(path))
        name = os.environ.get(ENV_NAME) or " ".join(sys.argv) or "python"
        cfg = _Config(name, name, {"scope": R.SCOPE_PROCESS, "save_to_file": False}, attach=False)
        parent = TraceContextTextMapPropagator().extract({"traceparent": os.environ.get(ENV_TRACEPARENT, "")})
        token = otel_context.attach(parent)
        try:
            run = _start(cfg)
        finally:
            otel_context.detach(token)
    except Exception as exc:  # noqa: BLE001 - never stop the program
        sys.stderr.write(f"otel-carbon run: could not instrument this program ({exc!r}); measuring it as a process only\n")
        return

    def finish() -> None:
        try:
            if run is not None:
                _finish(cfg, run, True)
            setup.force_flush()
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"otel-carbon run: could not export the program's spans ({exc!r})\n")

    atexit.register(finish)
