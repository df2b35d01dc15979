"""examples/lambda_handler.py invoked many times in one process, as a Lambda execution
environment does: setup once, a flush at the end of every invocation (each invocation's span
is at the receiver when the handler returns, although the batch delay is a minute), and a
freeze between invocations (SIGSTOP) after which the figures are still available."""

from __future__ import annotations

import json
import os
import queue
import signal
import statistics
import subprocess
import threading
import time

try:
    from test_examples_common import EXAMPLES, PYTHON, child_env
except ImportError:  # tests/ imported as a package
    from .test_examples_common import EXAMPLES, PYTHON, child_env

from otel_carbon import attributes as A
from otel_carbon.intensity import bundled

REGION = "eu-west-1"
EXPECTED = bundled.cloud("aws", REGION).intensity
INVOCATIONS = 16
SMALL, BIG = 10_000, 40_000
FREEZE_S = 3.3  # longer than the sampler's staleness limit (3 s)

DRIVER = f"""
import json, sys
sys.path.insert(0, {str(EXAMPLES)!r})
import lambda_handler
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps(lambda_handler.handler(json.loads(line), None)), flush=True)
"""


def _spans_for(receiver, invocation_id):
    return [s for s in receiver.spans() if s["attributes"].get("faas.invocation_id") == invocation_id]


def test_handler_flushes_every_invocation_and_survives_a_freeze(otlp_receiver):
    env = child_env(otlp_receiver, "http/protobuf", OTEL_BSP_SCHEDULE_DELAY="60000", AWS_REGION=REGION,
                    AWS_LAMBDA_FUNCTION_NAME="carbon-fn", AWS_LAMBDA_FUNCTION_VERSION="7",
                    OTEL_RESOURCE_ATTRIBUTES="cloud.provider=aws")
    env.pop("OTEL_CARBON_COUNTRY")  # the region decides
    proc = subprocess.Popen([PYTHON, "-c", DRIVER], cwd=str(EXAMPLES), env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen = []

    def next_line(timeout_s=15.0):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no answer from the handler in {timeout_s}s; output so far: {seen}") from None
            seen.append(line)
            if line.startswith("{") or line.strip() == "ready":
                return line

    def invoke(event):
        proc.stdin.write(json.dumps(event) + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(next_line())

    try:
        assert next_line(30).strip() == "ready"
        rounds_of = {}
        for i in range(INVOCATIONS):
            if i == INVOCATIONS // 2:  # the execution environment is frozen, then thawed
                os.killpg(proc.pid, signal.SIGSTOP)
                time.sleep(FREEZE_S)
                os.killpg(proc.pid, signal.SIGCONT)
            invocation_id = f"inv-{i}"
            rounds_of[invocation_id] = SMALL if i % 2 else BIG
            answer = invoke({"id": invocation_id, "rounds": rounds_of[invocation_id]})
            assert answer["statusCode"] == 200, answer
            # flushed before the handler returned: no waiting (the batch delay is 60 s)
            assert len(_spans_for(otlp_receiver, invocation_id)) == 1, (invocation_id, seen)
        bad = invoke({"id": "inv-bad", "rounds": "lots"})
        assert bad["statusCode"] == 400
        assert len(_spans_for(otlp_receiver, "inv-bad")) == 1
    finally:
        proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    spans = {s["attributes"]["faas.invocation_id"]: s for s in otlp_receiver.spans()}
    assert len(spans) == INVOCATIONS + 1
    cpu = {SMALL: [], BIG: []}
    for invocation_id, span in spans.items():
        a = span["attributes"]
        assert a[A.METHOD] not in (None, A.UNAVAILABLE), (invocation_id, a)
        assert a[A.ZONE] == EXPECTED.zone and a[A.INTENSITY] == EXPECTED.g_per_kwh, a
        expected_g = a[A.ENERGY_TOTAL] * EXPECTED.pue * EXPECTED.g_per_kwh / A.JOULES_PER_KWH
        assert abs(a[A.EMISSIONS] - expected_g) <= 1e-9 * expected_g, a
        assert a[A.ENERGY_TOTAL] > 0
        assert a["faas.coldstart"] is (invocation_id == "inv-0")
        assert span["resource"]["cloud.region"] == REGION and span["resource"]["faas.name"] == "carbon-fn"
        if invocation_id in rounds_of:
            cpu[rounds_of[invocation_id]].append(a[A.CPU_TIME])
    assert spans["inv-bad"]["status"]["code"] == "STATUS_CODE_ERROR"
    # the figures follow the work done: 4x the rounds, about 4x the CPU time
    ratio = statistics.median(cpu[BIG]) / statistics.median(cpu[SMALL])
    assert 2.0 < ratio < 8.0, cpu
