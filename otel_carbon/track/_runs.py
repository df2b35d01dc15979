"""One tracked run: start a span and the clocks; at the end, the figures, the span
attributes, the CSV row. Nothing here raises into the application."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from typing import Any, Dict, Mapping, Optional, Tuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from otel_carbon import __version__
from otel_carbon import attributes as A
from otel_carbon._log import warn_once
from otel_carbon.attribution import Layout, attribute, emissions_g, method_of, total_j
from otel_carbon.track._config import _Config
from otel_carbon.track.result import EmissionsResult

_logger = logging.getLogger("otel_carbon")
_SPAN_KEYS = {key: component for component, key in A.ENERGY_BY_COMPONENT.items()}
_RUN_KEYS = {A.CPU: A.RUN_ENERGY_CPU, A.MEMORY: A.RUN_ENERGY_MEMORY, A.GPU: A.RUN_ENERGY_GPU, "idle": A.RUN_ENERGY_IDLE}


# -- shared machinery ----------------------------------------------------------------------

_tracers: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def _tracer(provider: Any) -> Any:
    provider = provider if provider is not None else trace.get_tracer_provider()
    try:
        found = _tracers.get(provider)
    except TypeError:  # not weak-referenceable: no cache
        return provider.get_tracer("otel_carbon.track", __version__)
    if found is None:
        found = provider.get_tracer("otel_carbon.track", __version__)
        with _lock:
            _tracers[provider] = found
    return found


def _sampler_and_processor(sampler: Any, own_location: bool = False) -> Tuple[Any, Any]:
    """The sampler and a private pricer over it that computes the span figures of our runs
    (a :class:`~otel_carbon.span_pricing.SpanPricer`: no SDK needed): the sampler's
    companion, so both go away together. ``own_location``: the run prices its carbon at
    its own location, so the process's "no location configured" warning is not its
    concern (its figures do not use the world average)."""
    if sampler is None:
        from otel_carbon.process_sampler import current_sampler, get_sampler

        if own_location and current_sampler() is None:
            from otel_carbon._log import mark_seen

            mark_seen("intensity:world")
        sampler = get_sampler()
    return sampler, sampler.companion("track.processor", lambda: _new_processor(sampler))


def _new_processor(sampler: Any) -> Any:
    from otel_carbon.span_pricing import SpanPricer

    return SpanPricer(sampler=sampler)


_getrandbits = random.getrandbits  # reseeded in forked children by the random module


def _run_id() -> str:
    """A random (version 4) UUID string; ~3x cheaper than ``str(uuid.uuid4())``."""
    h = "%032x" % ((_getrandbits(128) & ~(0xF000 << 64) & ~(0xC << 60)) | (0x4000 << 64) | (0x8 << 60))
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Run:
    """One open tracked run."""

    __slots__ = ("span", "token", "thread", "sampler", "processor", "run_id", "t0_unix", "t0_ns", "proc0_ns", "tick0", "acc")

    def __init__(self) -> None:
        self.acc: Dict[str, float] = {}


def _start(cfg: _Config) -> Optional[_Run]:
    run = _Run()
    run.span = run.token = None
    try:
        run.sampler, run.processor = _sampler_and_processor(cfg.sampler, cfg.intensity is not None)
        run.run_id = _run_id()
        span = _tracer(cfg.provider).start_span(cfg.name, attributes={A.RUN_SCOPE: cfg.scope, A.RUN_ID: run.run_id})
        run.span = span
        run.token = otel_context.attach(trace.set_span_in_context(span)) if cfg.attach else None
        run.thread = threading.get_ident()
        run.t0_unix = time.time()
        run.tick0 = run.sampler.ledger.latest
        run.t0_ns = time.monotonic_ns()
        run.proc0_ns = time.process_time_ns()
        # The run itself is the key in our private processor: no-op spans (no SDK) are all
        # one shared object, so the span cannot be.
        run.processor.on_start(run)
        return run
    except Exception as exc:  # noqa: BLE001 - never break the host application
        warn_once(_logger, "track-start", "otel_carbon: could not start tracking %r: %r", cfg.name, exc)
        try:  # leave no half-started run behind: no attached context, no open span
            if run.token is not None:
                otel_context.detach(run.token)
            if run.span is not None:
                run.span.end()
        except Exception:  # noqa: BLE001
            pass
        return None


def _span_segment(run: _Run, reopen: bool, intensity: Any = None) -> Dict[str, Any]:
    """The span's figures since the last segment (closing it; reopening for flush), its
    carbon at ``intensity`` when the run has its own location."""
    values = run.processor.figures_at_end(run)
    if intensity is not None and A.ENERGY_TOTAL in values:
        values[A.EMISSIONS] = emissions_g(float(values[A.ENERGY_TOTAL]), intensity.g_per_joule)
        values[A.INTENSITY] = intensity.g_per_kwh
        values[A.ZONE] = intensity.zone
    acc = run.acc
    for key in (A.CPU_TIME, A.ENERGY_TOTAL, A.EMISSIONS, *_SPAN_KEYS):
        if key in values:
            acc[key] = acc.get(key, 0.0) + values[key]
    if reopen:
        run.processor.on_start(run)
    merged = dict(values)
    merged.update(acc)
    return merged


def _process_figures(run: _Run, now_ns: int, cpu_s: float, idle: bool) -> Tuple[Dict[str, float], str, Any]:
    """Process-scope energy per component: process CPU-seconds x price, plus GPU."""
    sampler = run.sampler
    ledger = sampler.ledger
    tick, start = ledger.latest, run.tick0
    if tick is None:
        return {}, A.UNAVAILABLE, None
    gpu_j = 0.0
    if sampler.gpus:
        window_now = ledger.window(run.t0_ns, now_ns, start=run.tick0)
        gpu_j = window_now.gpu_proc_j if window_now is not None else 0.0
    # every component, at the price the process paid over the run; the process's GPU energy
    layout = Layout(tuple((name, i) for i, name in enumerate(ledger.components)), bool(sampler.gpus), idle)
    figures = attribute(cpu_s, start, tick, layout, sampler.stale(tick, now_ns), gpu_j)
    energy = {name: 0.0 for name in (A.CPU, A.MEMORY)}
    for (name, _), energy_j in zip(layout.components, figures.energy_j):
        energy[name] = energy.get(name, 0.0) + energy_j
    if figures.gpu_j is not None:
        energy[A.GPU] = figures.gpu_j
    if figures.idle_j is not None:
        energy["idle"] = figures.idle_j
    return energy, figures.method, tick.intensity


def _machine_figures(run: _Run, now_ns: int) -> Tuple[Dict[str, float], float, str, Any]:
    ledger = run.sampler.ledger
    tick = ledger.latest
    window = ledger.window(run.t0_ns, now_ns, start=run.tick0)
    if window is None or tick is None:
        return {}, 0.0, A.UNAVAILABLE, None
    energy = {name: window.energy_j.get(name, 0.0) for name in (A.CPU, A.MEMORY)}
    for name, value in window.energy_j.items():
        energy[name] = value
    if run.sampler.gpus:
        energy[A.GPU] = window.gpu_proc_j
    return energy, window.busy_s, method_of(tick, run.sampler.stale(tick, now_ns)), tick.intensity


def _finish(
    cfg: _Config, run: _Run, final: bool, error: Optional[BaseException] = None, at_once: bool = True
) -> Optional[EmissionsResult]:
    """Compute the run's figures now; end the span when ``final``; its CSV row now, or with
    others in a burst when not ``at_once`` (:mod:`otel_carbon.exporters.row_batches`).
    Never raises."""
    result = None
    try:
        now_ns = time.monotonic_ns()
        proc_cpu_s = (time.process_time_ns() - run.proc0_ns) / 1e9
        values = _span_segment(run, not final, cfg.intensity)
        span_cpu_s = float(values.get(A.CPU_TIME, 0.0))
        if cfg.scope == A.SCOPE_SPAN:
            energy = {_SPAN_KEYS[k]: float(values[k]) for k in _SPAN_KEYS if k in values}
            cpu_s, method = span_cpu_s, str(values.get(A.METHOD, A.UNAVAILABLE))
            tick = run.sampler.ledger.latest
            intensity = tick.intensity if tick is not None else None
        elif cfg.scope == A.SCOPE_PROCESS:
            energy, method, intensity = _process_figures(run, now_ns, proc_cpu_s, cfg.idle)
            cpu_s = proc_cpu_s
        else:
            energy, cpu_s, method, intensity = _machine_figures(run, now_ns)
        if cfg.intensity is not None:
            intensity = cfg.intensity
        energy_total_j = total_j(energy.values())
        if intensity is not None:
            g_per_kwh, pue, zone = intensity.g_per_kwh, intensity.pue, intensity.zone
            run_emissions_g = emissions_g(energy_total_j, intensity.g_per_joule)
        else:
            g_per_kwh, pue, zone, method = 0.0, 1.0, "", A.UNAVAILABLE
            run_emissions_g = 0.0
        result = EmissionsResult(
            name=cfg.name,
            run_id=run.run_id,
            scope=cfg.scope,
            start_unix_s=run.t0_unix,
            duration_s=(now_ns - run.t0_ns) / 1e9,
            cpu_time_s=cpu_s,
            energy_j=energy,
            energy_total_j=energy_total_j,
            emissions_g=run_emissions_g,
            intensity_g_per_kwh=g_per_kwh,
            pue=pue,
            zone=zone,
            method=method,
            span_energy_j=float(values.get(A.ENERGY_TOTAL, 0.0)),
            span_cpu_time_s=span_cpu_s,
            final=final,
            _window=(run.sampler, run.t0_ns, now_ns, run.tick0),
        )
    except Exception as exc:  # noqa: BLE001
        warn_once(_logger, "track-finish", "otel_carbon: could not compute the figures of %r: %r", cfg.name, exc)
        values = {A.METHOD: A.UNAVAILABLE}
    if final:
        _end_span(cfg, run, values, result, error)
    if result is not None:
        _deliver(cfg, result, at_once)
    return result


def _end_span(cfg: _Config, run: _Run, values: Mapping[str, Any], result: Optional[EmissionsResult], error: Optional[BaseException]) -> None:
    span = run.span
    try:
        if span.is_recording():
            attrs = {k: v for k, v in values.items() if k in A.SPAN_ATTRIBUTES}
            if result is not None and cfg.scope != A.SCOPE_SPAN:
                attrs[A.RUN_CPU_TIME] = result.cpu_time_s
                attrs[A.RUN_ENERGY_TOTAL] = result.energy_total_j
                attrs[A.RUN_EMISSIONS] = result.emissions_g
                for name, value in result.energy_j.items():
                    key = _RUN_KEYS.get(name)
                    if key is not None:
                        attrs[key] = value
            span.set_attributes(attrs)
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    except Exception as exc:  # noqa: BLE001
        warn_once(_logger, "track-end", "otel_carbon: could not annotate the span of %r: %r", cfg.name, exc)
    finally:
        try:
            if run.token is not None and threading.get_ident() == run.thread:
                otel_context.detach(run.token)
            span.end()
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "track-end", "otel_carbon: could not end the span of %r: %r", cfg.name, exc)


def _deliver(cfg: _Config, result: EmissionsResult, at_once: bool = True) -> None:
    if cfg.csv is not None:
        try:
            from otel_carbon.exporters.row_batches import submit

            sampler = result._window[0]
            gpus = getattr(sampler, "gpus", ()) or ()
            cpu_util = 0.0
            if cfg.scope == A.SCOPE_MACHINE:
                window = result.ledger_window()
                n_cpus = os.cpu_count() or 1
                if window is not None and window.duration_s > 0:
                    cpu_util = 100.0 * window.busy_s / (window.duration_s * n_cpus)
            energy = result.energy_j
            submit(cfg.csv, {
                "end_unix_s": result.start_unix_s + result.duration_s,
                "project_name": cfg.project_name,
                "run_id": result.run_id,
                "experiment_id": cfg.experiment_id,
                "duration_s": result.duration_s,
                "cpu_j": energy.get(A.CPU, 0.0) + energy.get("idle", 0.0),
                "memory_j": energy.get(A.MEMORY, 0.0),
                "gpu_j": energy.get(A.GPU, 0.0),
                "emissions_g": result.emissions_g,
                "zone": result.zone,
                "pue": result.pue,
                "tracking_mode": "machine" if cfg.scope == A.SCOPE_MACHINE else "process",
                "cpu_utilization_percent": cpu_util,
                "gpu_count": len(gpus),
                "gpu_model": ", ".join(str(getattr(g, "device_name", "")) for g in gpus),
            }, at_once)  # fmt: skip
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, "track-csv", "otel_carbon: could not write the emissions.csv row: %r", exc)
    if cfg.on_result is not None:
        try:
            cfg.on_result(result)
        except Exception as exc:  # noqa: BLE001
            warn_once(_logger, f"track-on-result:{cfg.on_result!r}", "otel_carbon: on_result callback failed: %r", exc)
