"""A real Prometheus server for the test suite (the Debian package ``prometheus``).

It runs the ``prometheus`` binary on 127.0.0.1 with a temporary configuration (one scrape
job, ``scrape_interval`` 1 s) and a temporary storage directory, waits until ``/-/ready``
answers, and stops it (then removes both) on :meth:`PrometheusServer.stop`::

    with PrometheusServer(["127.0.0.1:9464"]) as prom:
        prom.query('sum by (http_route) (carbon_span_energy_joules_total)')

Queries go through Prometheus's HTTP API (``/api/v1/query``) with no proxy.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Sequence

JOB = "otel-carbon-test"

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def prometheus_binary() -> Optional[str]:
    """Path of the ``prometheus`` binary, or None when it is not installed."""
    return shutil.which("prometheus") or next(
        (p for p in ("/usr/bin/prometheus", "/usr/local/bin/prometheus") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout_s: float = 5.0) -> bytes:
    with _NO_PROXY.open(url, timeout=timeout_s) as response:
        return response.read()


class PrometheusServer:
    def __init__(self, targets: Sequence[str], scrape_interval_s: int = 1, binary: Optional[str] = None,
                 honor_labels: bool = False) -> None:
        """``honor_labels``: keep the targets' own ``job`` (as collector/prometheus/prometheus.yml)."""
        self.targets = list(targets)
        self.honor_labels = honor_labels
        self.scrape_interval_s = scrape_interval_s
        self.binary = binary or prometheus_binary()
        self.port: Optional[int] = None
        self._dir: Optional[str] = None
        self._proc: Optional[subprocess.Popen] = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> "PrometheusServer":
        if self.binary is None:
            raise FileNotFoundError("the prometheus binary is not installed (Debian package 'prometheus')")
        self._dir = tempfile.mkdtemp(prefix="otel-carbon-prometheus-")
        config = os.path.join(self._dir, "prometheus.yml")
        interval = f"{self.scrape_interval_s}s"
        with open(config, "w", encoding="utf-8") as fh:
            # JSON is YAML: no YAML library needed
            json.dump(
                {
                    "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
                    "scrape_configs": [{"job_name": JOB, "honor_labels": self.honor_labels,
                                        "static_configs": [{"targets": self.targets}]}],
                },
                fh,
            )
        self.port = free_port()
        self._log = open(os.path.join(self._dir, "prometheus.log"), "wb")
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={os.path.join(self._dir, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._dir,
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                log = self.log_tail()
                self.stop()
                raise RuntimeError(f"prometheus exited with {self._proc.returncode}:\n{log}")
            try:
                if http_get(self.url + "/-/ready", timeout_s=1.0):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                log = self.log_tail()
                self.stop()
                raise TimeoutError(f"prometheus not ready after {timeout_s}s:\n{log}")
            time.sleep(0.1)

    def query(self, promql: str) -> List[Dict[str, Any]]:
        """The ``result`` of an instant query (a list of ``{"metric": {...}, "value": [t, "v"]}``)."""
        body = json.loads(http_get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})))
        if body.get("status") != "success":
            raise RuntimeError(f"query {promql!r} failed: {body}")
        return body["data"]["result"]

    def targets_health(self) -> List[Dict[str, Any]]:
        return json.loads(http_get(self.url + "/api/v1/targets"))["data"]["activeTargets"]

    def log_tail(self, n: int = 4000) -> str:
        if self._dir is None:
            return ""
        try:
            with open(os.path.join(self._dir, "prometheus.log"), "rb") as fh:
                return fh.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        """Stop the server and remove its files; safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
