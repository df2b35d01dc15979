"""examples/flask_app.py under gunicorn with 2 pre-forked workers, exporting to a real OTLP
receiver: every worker's spans carry energy and CO2e (the sampler restarts after fork), with
the app imported in each worker, with ``--preload`` (imported once, in the master), and
under ``opentelemetry-instrument`` (set up in the master). Both OTLP transports are used."""

from __future__ import annotations

import functools
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

try:
    from test_examples_common import BIN, EXAMPLES, Proc, assert_carbon, child_env, free_port, server_spans, wait_http, wait_until
except ImportError:  # tests/ imported as a package
    from .test_examples_common import BIN, EXAMPLES, Proc, assert_carbon, child_env, free_port, server_spans, wait_http, wait_until

ROUNDS = 40_000
STALE_WAIT_S = 3.3


@functools.lru_cache(maxsize=None)
def _gunicorn_options() -> tuple:
    """``--no-control-socket`` where gunicorn has one (a shared socket in $HOME otherwise)."""
    usage = subprocess.run([str(BIN / "gunicorn"), "--help"], capture_output=True, text=True, timeout=30).stdout
    return ("--no-control-socket",) if "--no-control-socket" in usage else ()


@pytest.mark.parametrize(
    "mode, protocol",
    [("import-per-worker", "grpc"), ("preload", "http/protobuf"), ("opentelemetry-instrument", "http/protobuf")],
)
def test_gunicorn_workers_all_carry_energy(otlp_receiver, mode, protocol):
    port = free_port()
    argv = [str(BIN / "gunicorn"), "-w", "2", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "3", *_gunicorn_options(), "flask_app:app"]
    env = child_env(otlp_receiver, protocol)
    service = "flask-example"
    if mode == "preload":
        argv.insert(1, "--preload")
    elif mode == "opentelemetry-instrument":
        # The distro's providers and the carbon instrumentor are set up in the master,
        # before fork; the app's configure() then adds to them (nothing twice).
        argv.insert(0, str(BIN / "opentelemetry-instrument"))
        service = env["OTEL_SERVICE_NAME"] = "flask-auto"
    forked_after_setup = mode != "import-per-worker"
    base = f"http://127.0.0.1:{port}"
    served = {}  # worker pid -> requests it answered
    with Proc(argv, env, cwd=EXAMPLES) as proc:
        wait_http(proc, f"{base}/health")
        if forked_after_setup:
            # Past the sampler's staleness limit (3 s: three idle intervals): a worker whose
            # sampler thread did not restart after fork would now say carbon.method=unavailable.
            time.sleep(STALE_WAIT_S)
        deadline = time.monotonic() + 20
        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(8) as pool:
            while len(served) < 2 or sum(served.values()) < 16:
                assert time.monotonic() < deadline, f"requests never reached 2 workers: {served}\n{proc.describe()}"
                for r in pool.map(lambda _: client.get(f"{base}/work", params={"rounds": ROUNDS}), range(16)):
                    assert r.status_code == 200, r.text
                    assert r.json()["rounds"] == ROUNDS
                    pid = r.json()["pid"]
                    served[pid] = served.get(pid, 0) + 1
        sent = sum(served.values())
        wait_until(lambda: len(server_spans(otlp_receiver.spans(), "/work")) >= sent, 15,
                   f"{sent} /work spans\n{proc.describe()}")
        master = proc.pid
    spans = server_spans(otlp_receiver.spans(), "/work")
    assert len(spans) == sent
    by_pid = {}
    for span in spans:
        assert_carbon(span)
        by_pid.setdefault(span["attributes"]["app.worker.pid"], []).append(span)
    # every worker that answered exported its own spans, none came from the master
    assert {pid: len(s) for pid, s in by_pid.items()} == served
    assert len(by_pid) >= 2 and master not in by_pid
    for span in spans:
        assert span["resource"]["service.name"] == service
