"""Plain Flask and FastAPI apps for the web benchmark: no carbon code of their own.

They are run under ``opentelemetry-instrument`` (Flask/FastAPI instrumentations), with our
``carbon`` instrumentor enabled or disabled through ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``.
"""

from __future__ import annotations

import asyncio
import hashlib

from fastapi import FastAPI
from flask import Flask, request


def hash_work(rounds: int) -> str:
    digest = b"bench"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


flask_app = Flask(__name__)


@flask_app.get("/work")
def flask_work() -> str:
    return hash_work(int(request.args.get("rounds", "1000")))


@flask_app.get("/health")
def flask_health() -> str:
    return "ok"


fastapi_app = FastAPI()


@fastapi_app.get("/work")
async def fastapi_work(rounds: int = 1000, steps: int = 2) -> dict:
    for _ in range(steps):
        hash_work(rounds // steps)
        await asyncio.sleep(0)
    return {"ok": True}


@fastapi_app.get("/health")
async def fastapi_health() -> dict:
    return {"ok": True}
