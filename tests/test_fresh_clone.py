"""The README's two commands, as a newcomer runs them: in a fresh clone of the repository, in a
temporary directory with nothing beside it, from a shell with no virtual environment active.

The clone test is slow (two new virtual environments, dependencies from the registry) and
skips only where the package registry cannot be reached; under ``CI=true`` that skip fails.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import List

import pytest

try:
    from .packaging_helpers import REPO, clean_env, registry, run  # noqa: F401
except ImportError:
    from packaging_helpers import REPO, clean_env, registry, run  # noqa: F401

README = REPO / "README.md"

# The test command runs the whole suite in CI (.ci/run). Here, inside the suite, the clone runs
# it on the tests that need the repository's own files (the reference tables) and the span path:
# PYTEST_ADDOPTS adds the selection without changing the README's command.
CLONE_TESTS = "tests/test_intensity_data.py tests/test_config.py tests/test_asyncio_attribution.py"


def readme_commands() -> List[str]:
    """The lines of the README's fenced block between the ``commands`` markers."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- commands:.*?-->\s*```bash\n(.*?)```\s*<!-- end commands -->", text, re.S)
    assert match, "README.md: the ```bash block between <!-- commands: --> and <!-- end commands --> is missing"
    lines = [line.strip() for line in match.group(1).splitlines() if line.strip()]
    assert len(lines) == 2, lines
    return lines


def test_each_readme_command_has_its_own_venv_and_ci_runs_the_test_command():
    demo, tests = readme_commands()
    venvs = [re.search(r"python3 -m venv (\S+) && \. \1/bin/activate", line) for line in (demo, tests)]
    assert all(venvs), (demo, tests)
    assert venvs[0].group(1) != venvs[1].group(1)
    # .ci/run installs the test environment and runs pytest exactly as the README's second line says
    ci = [line.strip().replace("pip install -q ", "pip install ")  # CI's log is quieter, same install
          for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    install, pytest_command = [step.strip() for step in tests.split("&&")][2:]
    assert install in ci, (install, ".ci/run")
    # the same pytest command, whole or split by markers (e.g. the e2e tests after their build)
    runs = re.compile(r"^(\w+=\S+ )*" + re.escape(pytest_command) + r"( -m .+)?$")
    assert any(runs.match(line) for line in ci), (pytest_command, ".ci/run")


@pytest.mark.slow
def test_a_fresh_clone_runs_the_readme_commands(tmp_path, registry):
    if shutil.which("git") is None:
        pytest.fail("git is needed to clone the repository")
    clone = tmp_path / "otel-carbon"
    run(["git", "clone", "-q", str(REPO), str(clone)], cwd=tmp_path, env=clean_env(), timeout_s=300)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["otel-carbon"]  # nothing beside it
    demo, tests = readme_commands()

    out = run(["bash", "-c", demo], cwd=clone, env=clean_env(), timeout_s=900)
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith(("batch-job", "hash x"))}
    assert set(rows) == {"batch-job", "hash"}, out.stdout
    # batch-job, CPU, energy, CO2e (each a number and its unit, SI prefixes), method, zone
    batch = re.match(r"batch-job +([\d.]+) [mµn]?s +([\d.]+) [mµnk]?J +([\d.]+) [mµnk]?g +(\w+) ", rows["batch-job"])
    assert batch and float(batch[2]) > 0 and batch[4] in ("estimated", "measured", "mixed"), rows["batch-job"]
    assert "otel-carbon run" in out.stderr and "CO2e" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-4000:]

    out = run(["bash", "-c", tests], cwd=clone, env=clean_env(PYTEST_ADDOPTS=f"-p no:cacheprovider {CLONE_TESTS}"),
              timeout_s=1800)
    summary = out.stdout.strip().splitlines()[-1]
    assert re.match(r"^\d+ passed in ", summary), summary  # no failure, no skip
    assert (clone / ".venv-demo").is_dir() and (clone / ".venv-test").is_dir()
