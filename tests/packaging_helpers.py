"""Helpers for the tests that build, install and clone the project as a user would.

They need the package registry (pip installs the dependencies into fresh virtual
environments). Where it cannot be reached they skip, and under ``CI=true`` a skip fails
(conftest.py): CI always has the registry.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / ".ci" / "constraints-newest.txt"


def _index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL")
    if url:
        return url
    result = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"],
                            capture_output=True, text=True, timeout=60)
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "https://pypi.org/simple"


def registry_unreachable() -> Optional[str]:
    """Why the package registry cannot be reached, or None when it can."""
    url = _index_url().rstrip("/") + "/pip/"
    try:
        with urllib.request.urlopen(url, timeout=15) as response:
            response.read(1)
    except Exception as exc:  # any failure means: no registry here
        return f"the package registry ({url}) cannot be reached: {exc}"
    return None


@pytest.fixture(scope="session")
def registry():
    reason = registry_unreachable()
    if reason:
        pytest.skip(reason)


def clean_env(**extra: str) -> Dict[str, str]:
    """The environment of a new shell: no virtual environment active, no Python or OTel
    settings of the test run leaking in, nothing of this checkout on sys.path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PYTHON", "VIRTUAL_ENV", "PYTEST", "COV_"))}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin)
    env.update(extra)
    return env


def run(argv: Sequence[str], *, cwd: Path, env: Dict[str, str], timeout_s: float) -> subprocess.CompletedProcess:
    """Run a command; a non-zero exit fails the test with the end of its output."""
    result = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert result.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {result.returncode}\n"
        f"--- stdout (end)\n{result.stdout[-4000:]}\n--- stderr (end)\n{result.stderr[-4000:]}"
    )
    return result


def base_python() -> str:
    """The interpreter this virtual environment was made from (a new venv starts from it)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def new_venv(path: Path, env: Dict[str, str]) -> Path:
    run([base_python(), "-m", "venv", str(path)], cwd=path.parent, env=env, timeout_s=300)
    python = path / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], cwd=path.parent, env=env, timeout_s=600)
    return python


def pip_install(python: Path, requirements: List[str], env: Dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return run([str(python), "-m", "pip", "install", "-v", "-c", str(CONSTRAINTS), *requirements],
               cwd=cwd, env=env, timeout_s=900)
