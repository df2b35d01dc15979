"""Soak: a high span rate for minutes, through the whole pipeline; run on demand.

    python benchmarks/soak.py --minutes 3 --rate 5000
    python benchmarks/soak.py --minutes 3 --rate 5000 --leaked 100000   # plus leaked spans

Pipeline: TracerProvider + CarbonSpanProcessor (drop-in, the process-wide sampler over this
host's sensors) + BatchSpanProcessor over a counting exporter, and CarbonMetrics over an
in-memory reader collected at every report (like a scrape). Load: ``--threads`` threads and
``--tasks`` asyncio tasks (on one event-loop thread) share ``--rate`` spans per second;
every 10th request has a child span and every 50th span is ended by another thread.

``--leaked N`` first starts N spans that are never ended (the application keeps references
to them, as a leaking request registry would), then runs the soak: the processor tracks at
most ``--max-open-spans`` (default ``OTEL_CARBON_MAX_OPEN_SPANS``, 100000) and evicts the
oldest beyond that, counting them in ``dropped_open_spans``; while leaked entries remain, a
live span evicts a leaked one, never another live span. (Spans whose references are dropped
do not accumulate: the drop-in route keys open spans by object id, and a new span reusing a
freed span's id replaces its entry.)

Every ``--report-every`` seconds it prints spans in (ended by the load) and out (received by
the exporter), the achieved rate, RSS, the processor's open spans and the drop counters
(processor ``dropped_open_spans``, metrics ``dropped_spans``, sampler ``dropped_pairs`` /
``skewed_pairs``). At the end, after a flush, the verdict:

* zero spans lost: in == out, and every local root span with figures is in the metrics
  (the per-span metrics take local roots by default);
* no span flagged ``unavailable`` except evicted leaked ones;
* drop counters at zero unless a cap was hit (``dropped_open_spans == leaked`` minus those
  still tracked, when leaking);
* RSS bounded: growth from the first report to the end below ``--max-growth-mb``.

Exit status 0 when the verdict passes. The rate is a target: on a busy machine the achieved
rate is printed, and the verdict does not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

import psutil

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402

from otel_carbon import CarbonSpanProcessor  # noqa: E402
from otel_carbon import attributes as A  # noqa: E402
from otel_carbon.metrics import CarbonMetrics  # noqa: E402
from otel_carbon.process_sampler import get_sampler, shutdown_sampler  # noqa: E402

ROUTES = ("/", "/items", "/items/{id}", "/checkout", "/health")
#: spans per request on a thread worker: the request, a child every 10th, a hand-off every 50th
THREAD_SPANS_PER_REQUEST = 1 + 1 / 10 + 1 / 50


class CountingExporter(SpanExporter):
    """Counts spans, those without figures (carbon.method=unavailable), and the local root
    spans with figures (what the per-span metrics record by default)."""

    def __init__(self) -> None:
        self.received = 0
        self.unavailable = 0
        self.negative = 0
        self.roots_with_figures = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            attrs = span.attributes or {}
            if attrs.get(A.METHOD) == A.UNAVAILABLE:
                self.unavailable += 1
            elif span.parent is None or span.parent.is_remote:
                self.roots_with_figures += 1
            if attrs.get(A.ENERGY_TOTAL, 0.0) < 0 or attrs.get(A.CPU_TIME, 0.0) < 0:
                self.negative += 1
        self.received += len(spans)
        return SpanExportResult.SUCCESS


class Load:
    """Threads and asyncio tasks ending spans at a target rate."""

    def __init__(self, tracer: Any, rate: float, threads: int, tasks: int) -> None:
        self.tracer = tracer
        self.workers = threads + tasks
        self.per_worker = rate / self.workers
        self.threads = threads
        self.tasks = tasks
        self.stop = threading.Event()
        self.ended = [0] * (self.workers + 1)  # one slot per worker, the last for the finisher
        self.errors: List[str] = []
        self.handoff: "queue.Queue[Any]" = queue.Queue()
        self._threads: List[threading.Thread] = []

    def _request(self, i: int, slot: int) -> None:
        route = ROUTES[i % len(ROUTES)]
        with self.tracer.start_as_current_span(f"GET {route}", attributes={"http.route": route}):
            sum(range(200))
            if i % 10 == 0:
                with self.tracer.start_as_current_span("db.query"):
                    sum(range(100))
                self.ended[slot] += 1
        self.ended[slot] += 1
        if i % 50 == 0:  # a span ended by another thread than the one that started it
            self.handoff.put(self.tracer.start_span("background"))

    def _thread_worker(self, slot: int) -> None:
        try:
            chunk = 10
            next_t = time.monotonic()
            i = 0
            while not self.stop.is_set():
                for _ in range(chunk):
                    self._request(i, slot)
                    i += 1
                next_t += chunk * THREAD_SPANS_PER_REQUEST / self.per_worker
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -1.0:  # behind by more than a second: do not burst to catch up
                    next_t = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - reported in the verdict
            self.errors.append(f"thread {slot}: {exc!r}")

    async def _task_worker(self, slot: int) -> None:
        chunk = 10
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        i = 0
        while not self.stop.is_set():
            for _ in range(chunk):
                route = ROUTES[i % len(ROUTES)]
                with self.tracer.start_as_current_span(f"async {route}", attributes={"http.route": route}):
                    sum(range(200))
                    await asyncio.sleep(0)  # interleave with the other tasks inside the span
                self.ended[slot] += 1
                i += 1
            next_t += chunk / self.per_worker
            delay = next_t - loop.time()
            if delay < -1.0:
                next_t = loop.time()
            await asyncio.sleep(max(delay, 0))

    def _loop_thread(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(self._task_worker(self.threads + k) for k in range(self.tasks)))

        try:
            asyncio.run(main())
        except Exception as exc:  # noqa: BLE001
            self.errors.append(f"event loop: {exc!r}")

    def _finisher(self) -> None:
        slot = self.workers
        while not (self.stop.is_set() and self.handoff.empty()):
            try:
                span = self.handoff.get(timeout=0.1)
            except queue.Empty:
                continue
            span.end()
            self.ended[slot] += 1

    def start(self) -> None:
        for k in range(self.threads):
            self._threads.append(threading.Thread(target=self._thread_worker, args=(k,), name=f"load-{k}", daemon=True))
        if self.tasks:
            self._threads.append(threading.Thread(target=self._loop_thread, name="load-asyncio", daemon=True))
        self._threads.append(threading.Thread(target=self._finisher, name="load-finisher", daemon=True))
        for t in self._threads:
            t.start()

    def finish(self, timeout_s: float = 30.0) -> bool:
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(deadline - time.monotonic(), 0.1))
        return not any(t.is_alive() for t in self._threads)

    @property
    def total_ended(self) -> int:
        return sum(self.ended)


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 1e6


def metric_span_count(reader: InMemoryMetricReader) -> int:
    count = 0
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == A.SPAN_COUNT:
                    count += sum(p.value for p in metric.data.data_points)
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=5000.0, help="target spans per second (all workers)")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=4, help="asyncio tasks on one event-loop thread")
    parser.add_argument("--leaked", type=int, default=0, help="spans started first and never ended")
    parser.add_argument("--max-open-spans", type=int, default=None, help="the processor's cap (default: OTEL_CARBON_MAX_OPEN_SPANS)")
    parser.add_argument("--report-every", type=float, default=10.0)
    parser.add_argument("--max-growth-mb", type=float, default=25.0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    exporter = CountingExporter()
    provider = TracerProvider()
    carbon = CarbonSpanProcessor(max_open_spans=args.max_open_spans)
    provider.add_span_processor(carbon)
    # a queue big enough that the SDK's batch processor is not what drops spans here
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=1 << 17, max_export_batch_size=2048))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    metrics = CarbonMetrics(meter_provider).attach(carbon)
    sampler = get_sampler()
    tracer = provider.get_tracer("soak")

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    print(
        f"soak: {args.minutes:g} min at {args.rate:g} spans/s target, {args.threads} threads + {args.tasks} asyncio "
        f"tasks; sensors {', '.join(s.name for s in sampler.sensors + sampler.gpus)}; interval {sampler.interval_s:g} s"
    )
    leaked: List[Any] = []
    if args.leaked:
        t0 = time.monotonic()
        leaked = [tracer.start_span("leaked") for _ in range(args.leaked)]
        print(
            f"leaked {args.leaked} spans in {time.monotonic() - t0:.1f} s: open {carbon.open_spans} "
            f"(cap {carbon._max_open}), dropped_open_spans {carbon.dropped_open_spans}, RSS {rss_mb():.1f} MB"
        )

    load = Load(tracer, args.rate, args.threads, args.tasks)
    header = f"{'t (s)':>6} {'in':>9} {'out':>9} {'rate/s':>7} {'RSS MB':>7} {'open':>7} {'drop_open':>9} {'drop_metric':>11} {'pairs d/s':>9} {'unavail':>7}"
    print(header)
    rows: List[Dict[str, Any]] = []
    t_start = time.monotonic()
    load.start()
    duration_s = args.minutes * 60
    last_in, last_t = 0, t_start
    while True:
        remaining = t_start + duration_s - time.monotonic()
        time.sleep(min(args.report_every, max(remaining, 0)))
        now = time.monotonic()
        metric_count = metric_span_count(reader)  # a collection, like a scrape
        gc.collect()
        row = {
            "t_s": round(now - t_start, 1),
            "in": load.total_ended,
            "out": exporter.received,
            "rate": round((load.total_ended - last_in) / (now - last_t)),
            "rss_mb": round(rss_mb(), 1),
            "open": carbon.open_spans,
            "dropped_open_spans": carbon.dropped_open_spans,
            "metrics_dropped_spans": metrics.dropped_spans,
            "dropped_pairs": sampler.reading.dropped_pairs,
            "skewed_pairs": sampler.reading.skewed_pairs,
            "unavailable": exporter.unavailable,
            "metric_spans": metric_count,
        }
        rows.append(row)
        last_in, last_t = row["in"], now
        print(
            f"{row['t_s']:>6.0f} {row['in']:>9} {row['out']:>9} {row['rate']:>7} {row['rss_mb']:>7.1f} {row['open']:>7} "
            f"{row['dropped_open_spans']:>9} {row['metrics_dropped_spans']:>11} "
            f"{row['dropped_pairs']:>4}/{row['skewed_pairs']:<4} {row['unavailable']:>7}",
            flush=True,
        )
        if now - t_start >= duration_s:
            break

    stopped = load.finish()
    flushed = provider.force_flush(60_000)
    metrics.drain()
    ended = load.total_ended
    metric_spans = metric_span_count(reader)
    total_s = time.monotonic() - t_start
    growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
    checks = {
        "load stopped, no error in the load": stopped and not load.errors,
        "flush returned True": flushed,
        "zero spans lost (in == out)": ended == exporter.received,
        "every local root span with figures is in the metrics": metric_spans == exporter.roots_with_figures
        and metrics.dropped_spans == 0,
        "no unavailable span (beyond evicted leaked ones)": exporter.unavailable == 0,
        "no negative figure": exporter.negative == 0,
        # every leaked span is still tracked or was evicted (and counted); nothing else is open
        "open + dropped_open_spans == leaked": carbon.open_spans + carbon.dropped_open_spans == args.leaked,
        f"RSS growth {growth:+.1f} MB < {args.max_growth_mb:g} MB (first report to end)": growth < args.max_growth_mb,
    }
    print(
        f"\nend: {ended} spans in {total_s:.0f} s ({ended / total_s:.0f}/s achieved of {args.rate:g}/s target), "
        f"out {exporter.received}, metric spans {metric_spans}, open {carbon.open_spans}, "
        f"dropped_open_spans {carbon.dropped_open_spans}, metrics dropped {metrics.dropped_spans}, "
        f"sampler ticks {sampler.ticks}, dropped_pairs {sampler.reading.dropped_pairs}, skewed_pairs {sampler.reading.skewed_pairs}, "
        f"sensor errors {sampler.sensor_errors or 'none'}; load average {os.getloadavg()[0]:.2f} at end"
    )
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    passed = all(checks.values())
    print(f"verdict: {'PASS' if passed else 'FAIL'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "checks": checks, "passed": passed}, indent=1))
    del leaked
    metrics.shutdown()
    provider.shutdown()
    meter_provider.shutdown()
    shutdown_sampler()
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
