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

The start-up code removes its folder from ``PYTHONPATH`` and the ``OTEL_CARBON_RUN_*``
variables from ``os.environ`` as soon as it has read them: the program's own child
processes neither inherit them nor run this code (the parent measures their CPU time as
part of the process tree when the program waits for them).

Signals: SIGTERM and SIGHUP (``docker stop``, Kubernetes, a closed terminal) would end
the program without running ``atexit``; a handler (installed only where the program kept
the default action) ends the root span and flushes, then restores the default action and
raises the signal again, so the program still dies of it and the exit status is what a
shell reports (143 for SIGTERM). SIGINT keeps Python's ``KeyboardInterrupt``: the program
unwinds, ``atexit`` flushes, and Python ends by SIGINT (130).

When the program calls :func:`otel_carbon.configure` itself (say with its own
``service_name``), that call adopts the program's service name and resource attributes
into the setup made here, quietly; and a library instrumented both by us and by the
program is not reported as "already instrumented".

Any failure here is reported in one line on stderr and the program runs unmeasured inside
(the parent still measures it as a process).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional

ENV_SPANS_FILE = "OTEL_CARBON_RUN_SPANS_FILE"
ENV_NAME = "OTEL_CARBON_RUN_NAME"
ENV_TRACEPARENT = "OTEL_CARBON_RUN_TRACEPARENT"
ENV_USER_TRACES_EXPORTER = "OTEL_CARBON_RUN_USER_TRACES_EXPORTER"
ENV_USER_METRICS_EXPORTER = "OTEL_CARBON_RUN_USER_METRICS_EXPORTER"
ENV_AUTO_INSTRUMENT = "OTEL_CARBON_RUN_AUTO_INSTRUMENT"
ENV_PREFIX = "OTEL_CARBON_RUN_"
FLUSH_ON_SIGNAL_MS = 5000

SITECUSTOMIZE = '''\
# Written by `otel-carbon run`: instrument this Python program with zero code.
def _otel_carbon_run_boot():
    import importlib.machinery, importlib.util, os, sys
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    # Read once, then gone: the program's children must not inherit this folder or these values.
    run_env = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("OTEL_CARBON_RUN_")}
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and os.path.abspath(p) != here]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)
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
        from otel_carbon.cli.run_child import boot
    except Exception as exc:
        sys.stderr.write("otel-carbon run: this Python cannot import otel_carbon (%r); "
                         "measuring the program as a process only\\n" % (exc,))
        return
    boot(run_env)
_otel_carbon_run_boot()
del _otel_carbon_run_boot
'''


def _names(value: str) -> List[str]:
    return [n.strip() for n in value.split(",") if n.strip() and n.strip().lower() != "none"]


class _AlreadyInstrumented(logging.Filter):
    """Drops the instrumentation library's "already instrumented" warning: under ``run``
    the second instrumentation is ours, not the program's mistake."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "already instrumented" not in record.getMessage()


def _auto_instrument(env: Mapping[str, str]) -> None:
    if env.get(ENV_AUTO_INSTRUMENT, "1") == "0":
        return
    try:
        from opentelemetry.instrumentation.auto_instrumentation import initialize
    except ImportError:
        return
    for name in ("instrumentor", "flask", "fastapi"):
        logging.getLogger(f"opentelemetry.instrumentation.{name}").addFilter(_AlreadyInstrumented())
    initialize()


def _setup(exporter: Any, env: Mapping[str, str]) -> Any:
    """Tracing with our processor and ``exporter``; returns something with force_flush()."""
    user_traces = _names(env.get(ENV_USER_TRACES_EXPORTER, ""))
    user_metrics = _names(env.get(ENV_USER_METRICS_EXPORTER, ""))
    try:
        from otel_carbon.setup import configure
    except ImportError:
        configure = None
    if configure is not None:
        setup = configure(traces_exporter=[exporter, *user_traces], metrics=bool(user_metrics))
        setup.on_configure_again = _adopter(setup)
        return setup
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


def _resources(setup: Any) -> List[Any]:
    """The Resource objects every span and metric of the process points at (each once)."""
    found: List[Any] = []
    meter_config = getattr(setup.meter_provider, "_sdk_config", None)
    for resource in (getattr(setup.tracer_provider, "resource", None), getattr(meter_config, "resource", None),
                     setup.resource):
        if resource is not None and not any(resource is r for r in found):
            found.append(resource)
    return found


def _adopter(setup: Any) -> Callable[..., bool]:
    """What the program's own first ``configure(...)`` call does to the setup made here:
    its service name and resource attributes replace ours on the Resources the providers
    share with every span and metric (so spans already made carry them too). Returns False
    (the caller then warns as usual) when the call asks for more than that, or it failed."""

    def adopt(service_name: Optional[str] = None, resource_attributes: Optional[Mapping[str, Any]] = None,
              **others: Any) -> bool:
        setup.on_configure_again = None  # once: a later call is the program's own repeat
        extra: Dict[str, Any] = dict(resource_attributes or {})
        if service_name:
            extra["service.name"] = service_name
        if extra:
            try:
                from opentelemetry.sdk.resources import Resource

                for resource in _resources(setup):  # the providers may have been made by the OTel distro
                    resource._attributes = resource.merge(Resource(extra))._attributes  # noqa: SLF001 - in place
                setup.sampler.use_resource(dict(setup.tracer_provider.resource.attributes))  # cloud.*: intensity
            except Exception:  # noqa: BLE001
                return False
        # exporters, metrics...: more than can be added now; the caller says they are ignored
        return not any(value not in (None, (), [], False) for key, value in others.items() if key != "set_global")

    return adopt


_flushing: List[bool] = []


def _flush_then_die(finish: Callable[[], None]) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        if _flushing:  # the same signal twice (terminal and wrapper): the first one flushes
            return
        _flushing.append(True)
        try:
            finish()
        finally:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    return handler


def _flush_on_signals(finish: Callable[[], None]) -> None:
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_DFL:  # the program's own handler stays
                signal.signal(sig, _flush_then_die(finish))
        except (ValueError, OSError):  # not the main thread
            pass


def boot(env: Optional[Mapping[str, str]] = None) -> None:
    env = os.environ if env is None else env
    path = env.get(ENV_SPANS_FILE)
    if not path:
        return
    try:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from otel_carbon import attributes as R
        from otel_carbon.exporters.otlp_json import OtlpJsonFileSpanExporter
        from otel_carbon.track.api import start_detached_run

        _auto_instrument(env)
        # Imported now, not at the first export: an import during interpreter exit makes a
        # Ctrl-C'd program exit with 1 instead of dying of SIGINT (130).
        import google.protobuf.json_format  # noqa: F401
        import opentelemetry.exporter.otlp.proto.common.trace_encoder  # noqa: F401

        setup = _setup(OtlpJsonFileSpanExporter(path), env)
        name = env.get(ENV_NAME) or " ".join(sys.argv) or "python"
        parent = TraceContextTextMapPropagator().extract({"traceparent": env.get(ENV_TRACEPARENT, "")})
        stop_run = start_detached_run(name, parent, scope=R.SCOPE_PROCESS, save_to_file=False)
    except Exception as exc:  # noqa: BLE001 - never stop the program
        sys.stderr.write(f"otel-carbon run: could not instrument this program ({exc!r}); measuring it as a process only\n")
        return
    done: List[bool] = []

    def finish(timeout_millis: int = 30000) -> None:
        if done:
            return
        done.append(True)
        try:
            stop_run()
            setup.force_flush(timeout_millis)
        except Exception as exc:  # noqa: BLE001
            sys.stderr.write(f"otel-carbon run: could not export the program's spans ({exc!r})\n")

    atexit.register(finish)
    _flush_on_signals(lambda: finish(FLUSH_ON_SIGNAL_MS))
