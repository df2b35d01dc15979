"""Helpers for the example tests: subprocess servers on loopback, bounded waits, and the
checks every exported span must pass. (No tests here; imported by tests/test_examples_*.py.)

Every server runs in its own session (process group) and is always stopped: SIGTERM to
the group, then SIGKILL after a grace period. Output goes to a file (never a pipe that
could fill up) and is shown when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import httpx

from otel_carbon import attributes as A
from otel_carbon.intensity import bundled

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
BIN = Path(sys.executable).parent
PYTHON = sys.executable

COUNTRY = "FR"  # the grid every example test uses: expectations come from the bundled row
EXPECTED_INTENSITY = bundled.country(COUNTRY).intensity


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(receiver: Any, protocol: str = "grpc", **extra: str) -> Dict[str, str]:
    """The environment for a subprocess exporting spans to ``receiver``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    endpoint = f"http://{receiver.grpc_endpoint}" if protocol == "grpc" else receiver.http_endpoint
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_CARBON_COUNTRY=COUNTRY,
        OTEL_CARBON_NVML="off",
        PYTHONUNBUFFERED="1",
    )
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


class Proc:
    """A subprocess in its own process group, with its output in a temporary file."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: Path = REPO, stdin: Any = None,
                 stdout: Any = None) -> None:
        """``stdout``: a file for the standard output alone (default: with stderr, in the log)."""
        self._log = tempfile.TemporaryFile(mode="w+b")
        self.argv = list(argv)
        self.popen = subprocess.Popen(
            self.argv, cwd=str(cwd), env=dict(env), stdout=self._log if stdout is None else stdout,
            stderr=subprocess.STDOUT if stdout is None else self._log, stdin=stdin, start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def describe(self) -> str:
        return f"$ {' '.join(self.argv)}\n(exit {self.popen.poll()})\n{self.output()[-6000:]}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout_s: float) -> int:
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"timed out after {timeout_s}s\n{self.describe()}") from None

    def stop(self, grace_s: float = 5.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever is left of the group (workers of a killed master)
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.popen.poll() is None:
            self.popen.wait(5)
        if self.popen.stdin is not None:
            self.popen.stdin.close()

    def __enter__(self) -> "Proc":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def wait_http(proc: Proc, url: str, timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200; fail early if the server died."""
    deadline = time.monotonic() + timeout_s
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"server exited before answering {url}\n{proc.describe()}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout_s}s ({last!r})\n{proc.describe()}")


def server_spans(spans: Iterable[Dict[str, Any]], path: str) -> List[Dict[str, Any]]:
    """The SERVER spans of requests to ``path``."""
    out = []
    for s in spans:
        if s["kind"] != "SPAN_KIND_SERVER":
            continue
        a = s["attributes"]
        target = a.get("url.path") or a.get("http.target") or a.get("http.url") or ""
        if str(target).split("?")[0].endswith(path):
            out.append(s)
    return out


def assert_carbon(span: Dict[str, Any]) -> None:
    """The attributes every enriched span carries, with values derived from the inputs."""
    a = span["attributes"]
    where = f"span {span['name']!r} attributes {a}"
    assert a.get(A.METHOD) not in (None, A.UNAVAILABLE), where
    assert a[A.CPU_TIME] > 0, where
    assert a[A.ENERGY_TOTAL] > 0, where
    assert a[A.ZONE] == EXPECTED_INTENSITY.zone, where
    assert a[A.INTENSITY] == EXPECTED_INTENSITY.g_per_kwh, where
    expected_g = a[A.ENERGY_TOTAL] * EXPECTED_INTENSITY.pue * EXPECTED_INTENSITY.g_per_kwh / A.JOULES_PER_KWH
    assert abs(a[A.EMISSIONS] - expected_g) <= 1e-9 * max(expected_g, 1e-12) + 1e-15, where
    for key in (A.ENERGY_TOTAL, A.CPU_TIME, A.EMISSIONS, A.INTENSITY):
        assert span["attribute_kinds"][key] == "double_value", where


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)
