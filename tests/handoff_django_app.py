"""A one-file Django project whose async view hands its CPU work to ``sync_to_async``
(served as ASGI by uvicorn in tests/test_handoff_web.py)."""

from __future__ import annotations

import time

import django
from asgiref.sync import sync_to_async
from opentelemetry import trace
from django.conf import settings
from django.http import JsonResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    SECRET_KEY="handoff-test",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)

from opentelemetry.instrumentation.django import DjangoInstrumentor  # noqa: E402

import otel_carbon  # noqa: E402

SETUP = otel_carbon.configure(service_name="handoff-django")
DjangoInstrumentor().instrument()
django.setup()


def burn(ms: float) -> float:
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < ms / 1000:
        for i in range(200):
            x += i * i
    return time.thread_time() - start


async def health(request):
    return JsonResponse({"ok": True})


async def work(request):
    # The instrumentation's middleware runs on the request's sync thread (where the server
    # span starts and ends); this span is the async view's own, on the event loop.
    with trace.get_tracer(__name__).start_as_current_span("view"):
        used = await sync_to_async(burn)(float(request.GET.get("ms", 20)))
    return JsonResponse({"cpu_s": used})


urlpatterns = [path("health/", health), path("work/", work)]

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
