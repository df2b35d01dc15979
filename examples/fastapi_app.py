"""FastAPI under uvicorn, the official OpenTelemetry FastAPI instrumentation, and energy and
CO2e per request, correct when many requests run at once on the event loop.

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 \\
        uvicorn --app-dir examples fastapi_app:app --host 127.0.0.1 --port 8000

    curl 'http://127.0.0.1:8000/work?rounds=2000&steps=10'

``/work`` hashes ``rounds`` sha256 rounds, ``steps`` times, yielding to the event loop
(``await asyncio.sleep(0)``) between steps, so concurrent requests interleave on one thread.
Each request's span is charged the CPU time of its own task's steps (``carbon.cpu.clock``
is ``task``), not the whole window it was open in: 50 requests at once each get about the
figure of one request alone. The handler also times its own hashing with the thread clock
and puts it on the span as ``app.work.cpu_time`` (seconds), so you can compare the two.

With ``uvicorn[standard]`` the loop is uvloop: otel_carbon installs its task-timing factory
on the loop when the first span starts, so the task that served the *first* request falls
back to the thread clock (``carbon.cpu.clock=thread``); every later request is timed per
task. With ``--loop asyncio`` every request is (the default loop's handles are timed).
With ``--workers N`` each worker process has its own sampler and figures.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

from fastapi import FastAPI, HTTPException
from opentelemetry import trace
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

import otel_carbon

SETUP = otel_carbon.configure(service_name="fastapi-example")

app = FastAPI(title="otel_carbon FastAPI example")
# "send"/"receive" would add two internal spans per request; the server span is enough here.
FastAPIInstrumentor.instrument_app(app, exclude_spans=["send", "receive"])

MAX_ROUNDS = 1_000_000
MAX_STEPS = 1_000


def hash_work(rounds: int, seed: bytes = b"otel-carbon") -> bytes:
    digest = seed
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


@app.get("/work")
async def work(rounds: int = 2000, steps: int = 10) -> dict:
    if not (0 <= rounds <= MAX_ROUNDS and 1 <= steps <= MAX_STEPS):
        raise HTTPException(400, f"rounds must be in [0, {MAX_ROUNDS}] and steps in [1, {MAX_STEPS}]")
    trace.get_current_span().set_attribute("app.worker.pid", os.getpid())
    digest = b"otel-carbon"
    work_s = 0.0
    for _ in range(steps):
        start = time.thread_time()
        digest = hash_work(rounds, digest)
        work_s += time.thread_time() - start
        await asyncio.sleep(0)  # let the other requests run
    trace.get_current_span().set_attribute("app.work.cpu_time", work_s)
    return {"pid": os.getpid(), "rounds": rounds, "steps": steps, "digest": digest.hex()}


@app.get("/health")
async def health() -> dict:
    return {"ok": True, "pid": os.getpid()}
