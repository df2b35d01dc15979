"""Flask, the official OpenTelemetry Flask instrumentation, and energy and CO2e per request.

Served by gunicorn with pre-forked workers (each worker's spans carry its own figures):

    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \\
        gunicorn -w 2 -b 127.0.0.1:8000 --chdir examples flask_app:app

    curl 'http://127.0.0.1:8000/work?rounds=20000'

``otel_carbon.configure()`` runs when gunicorn imports this module: in each worker, or once
in the master with ``--preload``. Both work: the SDK's batch span processor and our sampler
each start a fresh thread in every forked worker (``os.register_at_fork``). With
``--preload`` the exporters are made in the master: prefer ``http/protobuf``, which is
fork-safe; a gRPC channel is only safe in the workers if the master has not used it yet
(it connects lazily), see gRPC's notes on fork support.

The ``/work`` span gets ``app.worker.pid`` so you can see which worker served it.
"""

from __future__ import annotations

import hashlib
import os

from flask import Flask, jsonify, request
from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor

import otel_carbon

SETUP = otel_carbon.configure(service_name="flask-example")

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)

MAX_ROUNDS = 5_000_000


def hash_work(rounds: int) -> str:
    digest = b"otel-carbon"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


@app.get("/work")
def work():  # type: ignore[no-untyped-def]
    """CPU work of ``rounds`` sha256 rounds (default 20000)."""
    try:
        rounds = int(request.args.get("rounds", "20000"))
    except ValueError:
        return jsonify(error="rounds must be a whole number"), 400
    if not 0 <= rounds <= MAX_ROUNDS:
        return jsonify(error=f"rounds must be in [0, {MAX_ROUNDS}]"), 400
    trace.get_current_span().set_attribute("app.worker.pid", os.getpid())
    return jsonify(pid=os.getpid(), rounds=rounds, digest=hash_work(rounds))


@app.get("/health")
def health():  # type: ignore[no-untyped-def]
    return jsonify(ok=True, pid=os.getpid())


if __name__ == "__main__":  # development server: python examples/flask_app.py
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
