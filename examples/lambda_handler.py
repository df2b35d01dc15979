"""A Lambda-style handler whose every invocation exports a span with energy and CO2e.

    # AWS Lambda: handler "lambda_handler.handler"; with otel-carbon and its dependencies
    # in the deployment package or a layer, and OTEL_EXPORTER_OTLP_ENDPOINT pointing at a
    # collector (e.g. the ADOT / OpenTelemetry Lambda layer's one on localhost).
    python examples/lambda_handler.py '{"rounds": 20000}'      # one local invocation

The serverless rules:

* **Set up once, outside the handler**: ``configure()`` runs at cold start (the module is
  imported once per execution environment) and is reused by every invocation.
* **Flush at the end of every invocation**: between invocations the environment is frozen
  (no thread runs: the batch span processor could never export later), so the handler calls
  :meth:`CarbonSetup.force_flush` in a ``finally`` block before it returns.
* **Take a fresh reading at the start**: the sampler thread was frozen too, so its last
  reading may be minutes old; ``SETUP.sampler.tick()`` reads now, before the span starts.
* **No hardware counters** exist in Lambda (no RAPL, no NVML): the CPU power is the Cloud
  Carbon Footprint per-vCPU model (``carbon.method=estimated``); set
  ``OTEL_RESOURCE_ATTRIBUTES=cloud.provider=aws`` in the function's configuration so the
  model uses AWS's coefficients (the sensors read the environment when they are probed).
  The grid intensity comes from the function's region (``AWS_REGION``, put on the Resource
  below as ``cloud.provider=aws``, ``cloud.region``), with AWS's average PUE.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Dict

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import otel_carbon

MAX_ROUNDS = 5_000_000


def _resource_attributes() -> Dict[str, Any]:
    """What the Lambda runtime tells us about itself, as semantic-convention attributes."""
    attributes: Dict[str, Any] = {"faas.name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "lambda-example")}
    if os.environ.get("AWS_LAMBDA_FUNCTION_VERSION"):
        attributes["faas.version"] = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
    if os.environ.get("AWS_REGION"):
        attributes.update({"cloud.provider": "aws", "cloud.platform": "aws_lambda", "cloud.region": os.environ["AWS_REGION"]})
    return attributes


# -- cold start: once per execution environment ------------------------------------------
SETUP = otel_carbon.configure(
    service_name=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "lambda-example"),
    resource_attributes=_resource_attributes(),
)
tracer = trace.get_tracer("examples.lambda_handler")
_cold_start = True


def hash_work(rounds: int) -> str:
    digest = b"otel-carbon"
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def handler(event: Dict[str, Any], context: Any = None) -> Dict[str, Any]:
    """``event["rounds"]``: sha256 rounds of CPU work (default 20000)."""
    global _cold_start
    cold, _cold_start = _cold_start, False
    SETUP.sampler.tick()  # the sampler was frozen since the last invocation: read now
    request_id = getattr(context, "aws_request_id", None) or str((event or {}).get("id", ""))
    try:
        with tracer.start_as_current_span(
            "lambda-handler",
            kind=SpanKind.SERVER,
            attributes={"faas.coldstart": cold, "faas.invocation_id": request_id, "faas.trigger": "other"},
        ) as span:
            rounds = (event or {}).get("rounds", 20_000)
            if not isinstance(rounds, int) or isinstance(rounds, bool) or not 0 <= rounds <= MAX_ROUNDS:
                span.set_status(Status(StatusCode.ERROR, "bad rounds"))
                return {"statusCode": 400, "body": json.dumps({"error": f"rounds must be an int in [0, {MAX_ROUNDS}]"})}
            digest = hash_work(rounds)
            return {"statusCode": 200, "body": json.dumps({"rounds": rounds, "digest": digest, "pid": os.getpid()})}
    finally:
        # The span has ended (the `with` block closed): export it before the function freezes.
        SETUP.force_flush(timeout_millis=5000)


if __name__ == "__main__":
    print(handler(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
