"""``/work/?rounds=N``: N sha256 rounds of CPU work in the request's span."""

import hashlib
import os

from django.http import HttpRequest, JsonResponse
from opentelemetry import trace

MAX_ROUNDS = 5_000_000


def hash_work(rounds: int) -> str:
    digest = b"otel-carbon"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def work(request: HttpRequest) -> JsonResponse:
    try:
        rounds = int(request.GET.get("rounds", "20000"))
    except ValueError:
        return JsonResponse({"error": "rounds must be a whole number"}, status=400)
    if not 0 <= rounds <= MAX_ROUNDS:
        return JsonResponse({"error": f"rounds must be in [0, {MAX_ROUNDS}]"}, status=400)
    trace.get_current_span().set_attribute("app.worker.pid", os.getpid())
    return JsonResponse({"pid": os.getpid(), "rounds": rounds, "digest": hash_work(rounds)})


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "pid": os.getpid()})
