"""The package as a user gets it: a wheel and an sdist built with ``python -m build``, each
installed into a new virtual environment, with and without a C compiler, and a smoke test
run from outside the checkout against what was installed.

Slow (fresh virtual environments, dependencies from the registry): ``-m "not slow"`` leaves
these out of a quick local run; CI runs them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

try:
    from .intensity_helpers import reference_country
    from .packaging_helpers import REPO, clean_env, new_venv, pip_install, registry, run  # noqa: F401
except ImportError:
    from intensity_helpers import reference_country
    from packaging_helpers import REPO, clean_env, new_venv, pip_install, registry, run  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("registry")]

NO_COMPILER = {"CC": "/bin/false", "CXX": "/bin/false"}
COPY_IGNORES = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "*.so", "__pycache__",
                                      ".hypothesis", ".pytest_cache", "emissions.csv")


@pytest.fixture(scope="module")
def dists(tmp_path_factory, registry):
    """sdist + wheel (built from the sdist, with a compiler), and a wheel built without one."""
    work = tmp_path_factory.mktemp("dists")
    source = work / "source"
    shutil.copytree(REPO, source, ignore=COPY_IGNORES)
    env = clean_env()
    run([sys.executable, "-m", "build", "--outdir", str(work / "out"), str(source)], cwd=work, env=env, timeout_s=900)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "out-nocc"), str(source)],
        cwd=work, env=clean_env(**NO_COMPILER), timeout_s=900)
    (sdist,) = (work / "out").glob("otel_carbon-*.tar.gz")
    (wheel,) = (work / "out").glob("otel_carbon-*.whl")
    (wheel_nocc,) = (work / "out-nocc").glob("otel_carbon-*.whl")
    return {"wheel": wheel, "sdist": sdist, "wheel built without a compiler": wheel_nocc}


def test_the_sdist_carries_the_c_sources_and_the_data_but_no_build_output(dists):
    import tarfile

    with tarfile.open(dists["sdist"]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in ("setup.py", "pyproject.toml", "README.md", "otel_carbon/_speedups.c", "otel_carbon/_speedups_tick.c",
                   "otel_carbon/_speedups_procstat.h", "otel_carbon/data/grid_intensity_countries.csv",
                   "otel_carbon/data/data_sources.csv", "otel_carbon/py.typed"):
        assert needed in names, needed
    assert not [n for n in names if n.endswith((".so", ".pyc"))]


@pytest.mark.parametrize(
    "artifact, compiler, span_path",
    [
        ("wheel", True, "compiled"),
        ("wheel built without a compiler", False, "pure Python: the compiled span path was not built"),
        ("sdist", False, "pure Python: the compiled span path was not built"),
    ],
)
def test_installs_into_a_new_venv_and_puts_figures_on_a_span(dists, tmp_path, artifact, compiler, span_path):
    env = clean_env() if compiler else clean_env(**NO_COMPILER)
    python = new_venv(tmp_path / "venv", env)
    pip_install(python, [str(dists[artifact])], env, cwd=tmp_path)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    smoke_env = dict(env, OTEL_CARBON_COUNTRY="FR", OTEL_CARBON_NVML="off")
    out = run([str(python), str(REPO / "tests" / "package_smoke.py")], cwd=outside, env=smoke_env, timeout_s=300)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(doc["file"]).resolve().is_relative_to((tmp_path / "venv").resolve()), doc["file"]
    assert doc["span_path"].startswith(span_path), doc["span_path"]
    a = doc["attributes"]
    assert a["carbon.cpu.time"] >= 0.19 and a["carbon.cpu.clock"] == "thread"
    assert a["carbon.energy.total"] > 0 and a["carbon.method"] in ("estimated", "measured", "mixed")
    # the bundled data is in the installed package: France's intensity from the reference table
    assert a["carbon.zone"] == "FR"
    assert a["carbon.intensity"] == float(reference_country("FRA")["g_co2e_per_kwh"])
    assert a["carbon.emissions"] == pytest.approx(a["carbon.energy.total"] * a["carbon.intensity"] / 3.6e6, rel=1e-9)

    # the console script is installed, and says which span path runs
    sensors = run([str(python.parent / "otel-carbon"), "sensors"], cwd=outside, env=smoke_env, timeout_s=300)
    assert f"Span path: {span_path}" in sensors.stdout
