"""A FastAPI app whose endpoints hand their CPU work to other threads (served by uvicorn in
tests/test_handoff_web.py). Each answers with the CPU time the work used where it ran."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

import otel_carbon

SETUP = otel_carbon.configure(service_name="handoff-fastapi")
POOL = ThreadPoolExecutor(4)  # made before the first span, as applications do

app = FastAPI()
FastAPIInstrumentor.instrument_app(app, exclude_spans=["send", "receive"])


def burn(ms: float) -> float:
    """Spin for ``ms`` of this thread's CPU time; return the CPU seconds used."""
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < ms / 1000:
        for i in range(200):
            x += i * i
    return time.thread_time() - start


@app.get("/health")
async def health() -> dict:
    return {"ok": True}


@app.get("/def")
def plain(ms: float = 20) -> dict:  # Starlette runs it on AnyIO's worker threads
    return {"cpu_s": burn(ms)}


@app.get("/to_thread")
async def to_thread(ms: float = 20) -> dict:
    return {"cpu_s": await asyncio.to_thread(burn, ms)}


@app.get("/executor")
async def executor(ms: float = 20) -> dict:
    return {"cpu_s": await asyncio.get_running_loop().run_in_executor(POOL, burn, ms)}
