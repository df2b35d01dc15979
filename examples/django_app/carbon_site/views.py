"""``/work/?rounds=N``: N sha256 rounds of CPU work in the request's span. The view times its
own hashing with the thread clock and puts it on the span as ``app.work.cpu_time`` (s), to
compare with ``carbon.cpu.time``."""

import hashlib
import os
import time

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
    span = trace.get_current_span()
    span.set_attribute("app.worker.pid", os.getpid())
    start = time.thread_time()
    digest = hash_work(rounds)
    span.set_attribute("app.work.cpu_time", time.thread_time() - start)
    return JsonResponse({"pid": os.getpid(), "rounds": rounds, "digest": digest})


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "pid": os.getpid()})
