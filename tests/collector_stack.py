"""The real Jaeger v2 and OpenTelemetry Collector for the tests (no tests here).

Both are built from the Go modules in ``collector/e2e/`` by ``collector/e2e/build.sh`` into a
cache outside the repository. ``OTEL_CARBON_E2E`` says what a test does without them:

* unset: use them if they are built, else skip with a one-line reason;
* ``require`` (``.ci/run``): build them when missing; no Go toolchain, or a failed build,
  fails the test;
* ``off``: skip.

:func:`start_jaeger` and :func:`start_collector` run them on loopback ports with the shipped
configuration files; only environment variables (``${env:VAR:-default}`` in the files) move
their endpoints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Dict, Mapping

import httpx
import pytest

try:
    from test_examples_common import Proc, free_port, wait_http
except ImportError:  # tests/ imported as a package
    from .test_examples_common import Proc, free_port, wait_http

REPO = Path(__file__).resolve().parent.parent
COLLECTOR = REPO / "collector"
BUILD = COLLECTOR / "e2e" / "build.sh"
JAEGER_CONFIG = COLLECTOR / "e2e" / "jaeger-config.yaml"
E2E_ENV = "OTEL_CARBON_E2E"


def _run_build(*args: str, timeout_s: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(BUILD), *args], capture_output=True, text=True, timeout=timeout_s)


def _paths(stdout: str) -> Dict[str, str]:
    return dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line)


def binaries() -> Dict[str, str]:
    """``{"jaeger": path, "otelcol": path}``, or skip / fail as ``OTEL_CARBON_E2E`` says."""
    mode = os.environ.get(E2E_ENV, "").strip().lower()
    if mode == "off":
        pytest.skip(f"{E2E_ENV}=off")
    if mode not in ("", "require"):
        pytest.fail(f"{E2E_ENV}={mode!r}: expected 'require', 'off' or unset")
    located = _run_build("--locate", timeout_s=60)
    if located.returncode == 0:
        return _paths(located.stdout)
    has_go = shutil.which("go") is not None
    if mode != "require":
        if not has_go:
            pytest.skip("Jaeger and the collector are not built and Go is not installed (collector/e2e/build.sh)")
        pytest.skip("Jaeger and the collector are not built yet: run collector/e2e/build.sh")
    if not has_go:
        pytest.fail(f"{E2E_ENV}=require, but the Go toolchain (go) is not on PATH")
    built = _run_build(timeout_s=3600)
    if built.returncode != 0:
        pytest.fail(f"collector/e2e/build.sh failed (exit {built.returncode}):\n{built.stderr[-4000:]}")
    return _paths(built.stdout)


def loopback(port: int) -> str:
    return f"127.0.0.1:{port}"


def base_env() -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "JAEGER_", "OTELCOL_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


class Jaeger:
    """Jaeger v2, in-memory, every port on loopback (``collector/e2e/jaeger-config.yaml``)."""

    def __init__(self, binary: str, ui_assets: str = "") -> None:
        self.otlp_grpc = loopback(free_port())
        self.query_http = loopback(free_port())
        env = base_env()
        env.update(
            JAEGER_OTLP_GRPC_ENDPOINT=self.otlp_grpc,
            JAEGER_QUERY_HTTP_ENDPOINT=self.query_http,
            JAEGER_QUERY_GRPC_ENDPOINT=loopback(free_port()),
            JAEGER_TELEMETRY_PORT=str(free_port()),
            JAEGER_UI_ASSETS=ui_assets,
        )
        self.proc = Proc([binary, "--config", str(JAEGER_CONFIG)], env)
        try:
            wait_http(self.proc, f"{self.url}/api/services", timeout_s=60)
        except BaseException:
            self.proc.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://{self.query_http}"

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)


class Collector:
    """The collector with a shipped configuration file, its endpoints moved to free loopback
    ports by the file's environment variables. Its own telemetry is switched off
    (``--set``), so it opens no port of its own."""

    def __init__(self, binary: str, config: Path, jaeger_otlp: str, extra_env: Mapping[str, str] = ()) -> None:
        self.otlp_grpc = loopback(free_port())
        self.otlp_http = loopback(free_port())
        self.prometheus = loopback(free_port())
        env = base_env()
        env.update(
            OTELCOL_OTLP_GRPC_ENDPOINT=self.otlp_grpc,
            OTELCOL_OTLP_HTTP_ENDPOINT=self.otlp_http,
            OTELCOL_PROMETHEUS_ENDPOINT=self.prometheus,
            JAEGER_OTLP_ENDPOINT=jaeger_otlp,
        )
        env.update(extra_env)
        argv = [binary, "--config", str(config), "--set", "service.telemetry.metrics.level=none"]
        self.proc = Proc(argv, env)
        try:
            wait_http(self.proc, f"http://{self.prometheus}/metrics", timeout_s=60)
        except BaseException:
            self.proc.stop()
            raise
