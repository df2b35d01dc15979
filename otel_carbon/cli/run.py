"""``otel-carbon run -- COMMAND ...``: run a command, print its energy and CO2e at exit.

* **Python programs** (``python``, ``python3.12``, this interpreter, or a script whose
  ``#!`` line names Python) are instrumented with zero code: a ``sitecustomize.py`` put
  first on ``PYTHONPATH`` instruments the installed libraries (as ``opentelemetry-instrument``
  does), sets up tracing with our processor and writes the spans as OTLP JSON lines to a
  file the parent reads at the end (see :mod:`otel_carbon.cli.run_child`).
* **Every command** (Python or not) is also measured from outside as one span over its
  process tree: the CPU time of the child and the descendants it waited for
  (``getrusage(RUSAGE_CHILDREN)``) x the price of a CPU-second over the run's window, from
  this process's sampler (the price is host-wide, so it applies to any process).

No configuration and no collector are needed: unless ``OTEL_TRACES_EXPORTER`` /
``OTEL_METRICS_EXPORTER`` are set, the child exports nothing but the file. The summary
(stderr, so the program's stdout stays clean) says plainly when the figures are
ESTIMATED from models. The exit code is the child's, as a shell reports it (128 + N when
signal N ended it: 143 for SIGTERM, 130 for SIGINT; 127 when the command is not found,
126 when it cannot be run); nothing in the summary can change it. ``--output`` and
``--summary-json`` are checked before the command starts (exit 2).

Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to us are passed to the child, and we wait
for it to finish, then print the summary. A Python child flushes its spans before it dies
of the signal (see :mod:`otel_carbon.cli.run_child`). Ctrl-C in a terminal already reaches the
child (it is in our process group, the terminal's foreground), so we do not send it a
second time then.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

from otel_carbon import attributes as A
from otel_carbon.cli._common import HelpFormatter, epilog, error, output_problem
from otel_carbon.cli.report_data import dumps
from otel_carbon.cli.run_summary import exit_status, format_summary, summarise

_PYTHON_NAME = re.compile(r"^python(\d+(\.\d+)?)?[a-z]?$")


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = sub.add_parser(
        "run",
        help="run a command and print its energy and CO2e (Python programs: per span, zero code)",
        description="Run COMMAND, measure it, and print duration, energy, CO2e and the top spans at exit "
        "(on stderr; the command's own output is untouched).\n"
        "A Python program is instrumented with zero code (per-span figures); any other command is "
        "measured as one span over its process tree.",
        epilog=epilog(
            "  N      the command's own exit code (0 when it succeeded)\n"
            "  128+N  signal N ended the command, as a shell reports it: 143 SIGTERM, 130 SIGINT\n"
            "  127    command not found; 126 not executable\n"
            "  2      bad usage, or --output / --summary-json cannot be written (checked before the command runs)",
            "  otel-carbon run -- python app.py\n"
            "  otel-carbon run --output spans.jsonl --summary-json summary.json -- pytest -q",
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-o", "--output", metavar="FILE", help="keep the spans as OTLP JSON lines in FILE (appended)")
    parser.add_argument("--top", type=int, default=5, metavar="N", help="how many span names / routes to list (default 5)")
    parser.add_argument("--no-instrument", action="store_true", help="measure a Python program as a plain process")
    parser.add_argument("--no-auto-instrument", action="store_true",
                        help="Python: do not instrument installed libraries (Flask, requests...); spans come only "
                        "from the program's own tracing and the root span (saves their start-up time)")
    parser.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON to FILE")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command (after --)")
    parser.set_defaults(func=run)


def is_python(command: List[str]) -> bool:
    """Whether ``command`` starts a Python interpreter (by name, path, or ``#!`` line)."""
    exe = command[0]
    if _PYTHON_NAME.match(os.path.basename(exe)):
        return True
    found = shutil.which(exe)
    if found is None:
        return False
    try:
        if os.path.realpath(found) == os.path.realpath(sys.executable):
            return True
        with open(found, "rb") as fh:
            first = fh.readline(256)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode("utf-8", "replace").split()
    names = [os.path.basename(w) for w in words[:2]]
    return any(_PYTHON_NAME.match(n) for n in names)


def _child_env(spans_path: str, boot_dir: str, name: str, traceparent: str, command: List[str],
               auto_instrument: bool) -> Dict[str, str]:
    from otel_carbon.cli.run_child import (
        ENV_AUTO_INSTRUMENT,
        ENV_NAME,
        ENV_SPANS_FILE,
        ENV_TRACEPARENT,
        ENV_USER_METRICS_EXPORTER,
        ENV_USER_TRACES_EXPORTER,
    )

    env = dict(os.environ)
    env[ENV_SPANS_FILE] = spans_path
    env[ENV_NAME] = name
    env[ENV_TRACEPARENT] = traceparent
    env[ENV_AUTO_INSTRUMENT] = "1" if auto_instrument else "0"
    script = next((a for a in command[1:] if not a.startswith("-")), "") if _PYTHON_NAME.match(os.path.basename(command[0])) else command[0]
    env.setdefault("OTEL_SERVICE_NAME", os.path.basename(script) or "python")
    env[ENV_USER_TRACES_EXPORTER] = os.environ.get("OTEL_TRACES_EXPORTER", "")
    env[ENV_USER_METRICS_EXPORTER] = os.environ.get("OTEL_METRICS_EXPORTER", "")
    for var in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        env.setdefault(var, "none")  # no collector needed: nothing is sent unless asked
    env["PYTHONPATH"] = os.pathsep.join(p for p in (boot_dir, os.environ.get("PYTHONPATH", "")) if p)
    return env


def _cpu_children_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


_FORWARDED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, n))


def _terminal_sent_it_to_the_group() -> bool:
    """Whether we run in the foreground of a terminal: a Ctrl-C there went to the child too."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:
            continue
    return False


class _Signals:
    """Pass SIGINT, SIGTERM, SIGHUP and SIGQUIT to the child; we wait for it either way."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None  # type: ignore[type-arg]
        self.saved: Dict[int, Any] = {}

    def _forward(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and _terminal_sent_it_to_the_group():
            return
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signum)
            except OSError:
                pass

    def __enter__(self) -> "_Signals":
        for sig in _FORWARDED:
            try:
                self.saved[sig] = signal.signal(sig, self._forward)
            except (ValueError, OSError):  # not the main thread
                pass
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.saved.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, OSError):
                pass


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return error("run", "no command given (usage: otel-carbon run -- COMMAND [ARGS...])")
    for option, path in (("--output", args.output), ("--summary-json", args.summary_json)):
        problem = output_problem(path)
        if problem:
            return error("run", f"cannot write {option}: {problem}")
    return run_command(command, output=args.output, top=args.top, instrument=not args.no_instrument,
                       summary_json=args.summary_json, auto_instrument=not args.no_auto_instrument)


def run_command(command: List[str], *, output: Optional[str] = None, top: int = 5, instrument: bool = True,
                summary_json: Optional[str] = None, auto_instrument: bool = True) -> int:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import format_span_id, format_trace_id

    from otel_carbon.exporters.otlp_json import OtlpJsonFileSpanExporter
    from otel_carbon._log import mark_seen
    from otel_carbon.process_sampler import get_sampler

    name = " ".join(command)
    python = instrument and is_python(command)
    work = tempfile.mkdtemp(prefix="otel-carbon-run-")
    spans_path = os.path.abspath(output) if output else os.path.join(work, "spans.jsonl")
    # The summary says when no location is set; the program itself warns once, not twice.
    mark_seen("intensity:world")
    sampler = get_sampler()
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-carbon run"}))
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileSpanExporter(spans_path)))
    span = provider.get_tracer("otel_carbon.cli.run").start_span(
        f"otel-carbon run: {name}"[:200], attributes={A.RUN_SCOPE: A.SCOPE_PROCESS_TREE, "process.command_line": name}
    )
    ctx = span.get_span_context()
    traceparent = f"00-{format_trace_id(ctx.trace_id)}-{format_span_id(ctx.span_id)}-01"
    start_offset = os.path.getsize(spans_path) if os.path.exists(spans_path) else 0  # --output appends
    env = None
    if python:
        from otel_carbon.cli.run_child import SITECUSTOMIZE

        boot_dir = os.path.join(work, "boot")
        os.mkdir(boot_dir)
        with open(os.path.join(boot_dir, "sitecustomize.py"), "w", encoding="utf-8") as fh:
            fh.write(SITECUSTOMIZE)
        env = _child_env(spans_path, boot_dir, name, traceparent, command, auto_instrument)
    try:
        with _Signals() as signals:
            cpu0 = _cpu_children_s()
            start_tick = sampler.ledger.latest  # kept: a long command outlives the ledger's ring
            t0_ns = time.monotonic_ns()
            try:
                proc = subprocess.Popen(command, env=env)
            except FileNotFoundError:
                print(f"otel-carbon run: command not found: {command[0]}", file=sys.stderr)
                span.end()
                return 127
            except OSError as exc:  # not executable, no #! line (ENOEXEC), ...: as a shell says
                print(f"otel-carbon run: cannot run {command[0]}: {exc.strerror or exc}", file=sys.stderr)
                span.end()
                return 126
            signals.proc = proc
            while True:
                try:
                    returncode = proc.wait()
                    break
                except KeyboardInterrupt:  # pragma: no cover - handler installed, belt and braces
                    continue
            t1_ns = time.monotonic_ns()
            cpu_s = max(_cpu_children_s() - cpu0, 0.0)
            status = exit_status(returncode)
            # Still under our handlers: a late signal (a second Ctrl-C) cannot cut the summary short.
            try:  # nothing here may change the exit status or show a traceback
                sampler.tick()  # a reading at the end of the run
                summary = summarise(sampler, name, command, python, returncode, t0_ns, t1_ns, cpu_s, spans_path,
                                     start_offset, format_span_id(ctx.span_id), span, top, start_tick=start_tick)
                provider.shutdown()
                if output is None:
                    summary["spans_file"] = None
                print(format_summary(summary, top), file=sys.stderr)
                if summary_json:
                    with open(summary_json, "w", encoding="utf-8") as fh:
                        fh.write(dumps(summary))
            except Exception as exc:  # noqa: BLE001
                print(f"otel-carbon run: no summary ({type(exc).__name__}: {exc}); the command's exit status is kept",
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return status
