"""A Flask view that fans its CPU work out to a thread pool and waits (served by gunicorn in
tests/test_handoff_web.py); it answers with the CPU time the work used on the pool."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

from flask import Flask, jsonify, request
from opentelemetry.instrumentation.flask import FlaskInstrumentor

import otel_carbon

SETUP = otel_carbon.configure(service_name="handoff-flask")
POOL = ThreadPoolExecutor(4)

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)


def burn(ms: float) -> float:
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < ms / 1000:
        for i in range(200):
            x += i * i
    return time.thread_time() - start


@app.get("/health")
def health():
    return jsonify(ok=True)


@app.get("/fanout")
def fanout():
    ms = float(request.args.get("ms", 30))
    parts = int(request.args.get("parts", 4))
    used = list(POOL.map(burn, [ms] * parts))
    return jsonify(cpu_s=sum(used), pid=os.getpid())


@app.get("/inline")
def inline():
    return jsonify(cpu_s=burn(float(request.args.get("ms", 10))), pid=os.getpid())
