"""examples/django_app (a minimal project with the official Django instrumentation) served
by ``django runserver`` (a thread per request), exporting to a real OTLP receiver."""

from __future__ import annotations

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
    """Requests served concurrently (a thread each) carry about the CPU time their own view
    measured for its hashing (``app.work.cpu_time``, thread clock), alone or four at once: not
    the whole window. Compared request by request, not against the median of the requests
    run alone: the CPU the same hashing costs moves with what else the machine runs (a CI
    run once saw it double between two phases of a test)."""
    project = EXAMPLES / "django_app"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = child_env(otlp_receiver, "http/protobuf", DJANGO_SETTINGS_MODULE="carbon_site.settings", PYTHONPATH=str(project))
    argv = [PYTHON, "-m", "django", "runserver", "--noreload", "--skip-checks", f"127.0.0.1:{port}"]

    def span_ids():
        return {s["span_id"] for s in server_spans(otlp_receiver.spans(), "/work/")}

    with Proc(argv, env, cwd=project) as proc:
        wait_http(proc, f"{base}/health/")
        with httpx.Client(timeout=10) as client:
            for _ in range(ALONE):
                assert client.get(f"{base}/work/", params={"rounds": ROUNDS}).status_code == 200
            wait_until(lambda: len(span_ids()) >= ALONE, 10, f"spans\n{proc.describe()}")
            alone_ids = span_ids()
            with ThreadPoolExecutor(4) as pool:  # runserver answers each in its own thread
                for r in pool.map(lambda _: client.get(f"{base}/work/", params={"rounds": ROUNDS}), range(CONCURRENT)):
                    assert r.status_code == 200, r.text
            wait_until(lambda: len(span_ids()) >= ALONE + CONCURRENT, 10, f"spans\n{proc.describe()}")

    spans = server_spans(otlp_receiver.spans(), "/work/")
    assert len(spans) == ALONE + CONCURRENT
    ratios = {}
    for span in spans:
        assert_carbon(span)
        assert span["attributes"][A.CPU_CLOCK] == "thread"
        assert span["attributes"]["app.worker.pid"] == proc.pid  # runserver: one process, many threads
        assert span["resource"]["service.name"] == "django-example"
        assert span["scope"]["name"].startswith("opentelemetry.instrumentation.django")
        ratios[span["span_id"]] = span["attributes"][A.CPU_TIME] / span["attributes"]["app.work.cpu_time"]
    alone = sorted(ratios[i] for i in alone_ids)
    together = sorted(r for i, r in ratios.items() if i not in alone_ids)
    # charging the window (four at once on this machine's cores) would give 2x or more
    for group in (alone, together):
        assert 0.9 < group[0] and group[-1] < 1.5, f"span CPU / view's own CPU: alone {alone}, four at once {together}"
