"""examples/django_app (a minimal project with the official Django instrumentation) served
by ``django runserver`` (a thread per request), exporting to a real OTLP receiver."""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor

import httpx

try:
    from test_examples_common import EXAMPLES, PYTHON, Proc, assert_carbon, child_env, free_port, server_spans, wait_http, wait_until
except ImportError:  # tests/ imported as a package
    from .test_examples_common import EXAMPLES, PYTHON, Proc, assert_carbon, child_env, free_port, server_spans, wait_http, wait_until

from otel_carbon import attributes as A

ROUNDS = 40_000
ALONE, CONCURRENT = 4, 8


def test_django_runserver_requests_carry_energy(otlp_receiver):
    project = EXAMPLES / "django_app"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_env(otlp_receiver, "http/protobuf", DJANGO_SETTINGS_MODULE="carbon_site.settings", PYTHONPATH=str(project))
    argv = [PYTHON, "-m", "django", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"]
    with Proc(argv, env, cwd=project) as proc:
        wait_http(proc, f"{base}/health/")
        with httpx.Client(timeout=10) as client:
            for _ in range(ALONE):
                assert client.get(f"{base}/work/", params={"rounds": ROUNDS}).status_code == 200
            wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/work/")) >= ALONE, 10, f"spans\n{proc.describe()}")
            first_ids = {s["span_id"] for s in server_spans(otlp_receiver.spans(), "/work/")}
            with ThreadPoolExecutor(4) as pool:  # runserver answers each in its own thread
                for r in pool.map(lambda _: client.get(f"{base}/work/", params={"rounds": ROUNDS}), range(CONCURRENT)):
                    assert r.status_code == 200, r.text
        total = ALONE + CONCURRENT
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/work/")) >= total, 10, f"spans\n{proc.describe()}")

    spans = server_spans(otlp_receiver.spans(), "/work/")
    assert len(spans) == total
    for span in spans:
        assert_carbon(span)
        assert span["attributes"][A.CPU_CLOCK] == "thread"
        assert span["attributes"]["app.worker.pid"] == proc.pid  # runserver: one process, many threads
        assert span["resource"]["service.name"] == "django-example"
        assert span["scope"]["name"].startswith("opentelemetry.instrumentation.django")
    alone_s = statistics.median(s["attributes"][A.CPU_TIME] for s in spans if s["span_id"] in first_ids)
    ratios = sorted(s["attributes"][A.CPU_TIME] / alone_s for s in spans if s["span_id"] not in first_ids)
    assert 0.5 < ratios[0] and ratios[-1] < 2.0, f"alone {alone_s * 1000:.2f} ms, concurrent ratios {ratios}"
