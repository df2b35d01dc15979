import os

import pytest

if __package__:  # tests/ is a package (tests/__init__.py exists)
    from .otlp_receiver import OtlpReceiver
else:  # rootdir-relative import mode: tests/ itself is on sys.path
    from otlp_receiver import OtlpReceiver


@pytest.fixture
def otlp_receiver(monkeypatch):
    """A running in-process OTLP receiver (gRPC + HTTP on 127.0.0.1, OS-assigned ports).

    OTEL_EXPORTER_OTLP_* variables are removed for the test (they would
    override endpoints, timeouts, compression, headers, certificates of
    exporters created without explicit arguments), and 127.0.0.1/localhost are
    added to NO_PROXY so a proxy configured in the environment is not used.
    Both servers are shut down, and their threads joined, after the test.
    """
    for key in list(os.environ):
        if key.upper().startswith("OTEL_EXPORTER_OTLP_"):
            monkeypatch.delenv(key, raising=False)
    for key in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(key, "")
        monkeypatch.setenv(key, ",".join(p for p in (current, "127.0.0.1", "localhost") if p))
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
