"""What the e2e tests do without their binaries (tests/collector_stack.py): skip with a
one-line reason, or, under ``OTEL_CARBON_E2E=require``, fail on a missing Go toolchain or a
failed build. Runs collector/e2e/build.sh for real, with an empty cache and a PATH that has
the tools it needs but no ``go`` (or a ``go`` that fails)."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

try:
    from collector_stack import binaries
except ImportError:  # tests/ imported as a package
    from .collector_stack import binaries

TOOLS = ("bash", "awk", "find", "sort", "xargs", "cat", "sha256sum", "cut", "mkdir", "dirname", "mv", "flock")


@pytest.fixture
def no_go(tmp_path, monkeypatch):
    """An empty binary cache and a PATH with build.sh's tools but without Go."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("OTEL_CARBON_E2E_CACHE", str(tmp_path / "cache"))
    return bin_dir


def test_not_built_and_no_go_skips_with_the_reason(no_go, monkeypatch):
    monkeypatch.delenv("OTEL_CARBON_E2E", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not built and Go is not installed"):
        binaries()


def test_not_built_skips_with_the_command_to_run(no_go, monkeypatch):
    (no_go / "go").write_text("#!/bin/sh\nexit 1\n")
    (no_go / "go").chmod(stat.S_IRWXU)
    monkeypatch.delenv("OTEL_CARBON_E2E", raising=False)
    with pytest.raises(pytest.skip.Exception, match="run collector/e2e/build.sh"):
        binaries()


def test_off_skips(monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_E2E", "off")
    with pytest.raises(pytest.skip.Exception, match="OTEL_CARBON_E2E=off"):
        binaries()


def test_require_without_go_fails(no_go, monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_E2E", "require")
    with pytest.raises(pytest.fail.Exception, match="Go toolchain"):
        binaries()


def test_require_with_a_failing_build_fails_with_its_output(no_go, monkeypatch):
    (no_go / "go").write_text("#!/bin/sh\necho 'go: no module proxy here' >&2\nexit 1\n")
    (no_go / "go").chmod(stat.S_IRWXU)
    monkeypatch.setenv("OTEL_CARBON_E2E", "require")
    with pytest.raises(pytest.fail.Exception, match="(?s)build.sh failed.*no module proxy here"):
        binaries()


def test_an_unknown_mode_fails(monkeypatch):
    monkeypatch.setenv("OTEL_CARBON_E2E", "yes")
    with pytest.raises(pytest.fail.Exception, match="expected 'require', 'off' or unset"):
        binaries()
