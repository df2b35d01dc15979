"""``otelcol-carbon validate`` on every shipped collector configuration: the real collector
(built from the pinned release by collector/e2e/build.sh, see tests/collector_stack.py)
accepts each file as it is, with its environment-variable defaults.

The ``awsemf`` exporter (otelcol-cloudwatch.yaml) cannot be built from the modules this
project can fetch (its internal AWS modules are not served), so that file is validated with
``awsemf`` swapped for an OTLP exporter: everything else in it is checked as shipped."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

try:
    from collector_stack import COLLECTOR, base_env, binaries
except ImportError:  # tests/ imported as a package
    from .collector_stack import COLLECTOR, base_env, binaries

pytestmark = pytest.mark.e2e

CONFIGS = sorted(COLLECTOR.glob("otelcol-*.yaml"))
NOT_BUILT = {"awsemf": "otlp_grpc/awsemf-stand-in"}  # component -> what stands in for it
STAND_IN = {"endpoint": "127.0.0.1:4317", "tls": {"insecure": True}}


@pytest.fixture(scope="module")
def otelcol() -> str:
    return binaries()["otelcol"]


def validate(binary: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([binary, "validate", "--config", str(path)], env=base_env(), capture_output=True,
                          text=True, timeout=120)


def swap_unbuilt_exporters(config: Dict[str, Any]) -> Dict[str, Any]:
    """``config`` with each exporter we cannot build replaced, in its pipelines too."""
    exporters = config["exporters"]
    for name, stand_in in NOT_BUILT.items():
        if name in exporters:
            del exporters[name]
            exporters[stand_in] = dict(STAND_IN)
            for pipeline in config["service"]["pipelines"].values():
                pipeline["exporters"] = [stand_in if e == name else e for e in pipeline["exporters"]]
    return config


def test_every_collector_config_is_checked():
    assert {p.name for p in CONFIGS} == {"otelcol-config.yaml", "otelcol-cloudwatch.yaml"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates(otelcol, config, tmp_path):
    loaded = yaml.safe_load(config.read_text())
    swapped = swap_unbuilt_exporters(yaml.safe_load(config.read_text()))
    path = config
    if swapped != loaded:
        assert config.name == "otelcol-cloudwatch.yaml"
        path = tmp_path / config.name
        path.write_text(yaml.safe_dump(swapped))
    result = validate(otelcol, path)
    assert result.returncode == 0, result.stderr[-4000:]


def test_validate_rejects_what_a_typo_would_ship(otelcol, tmp_path):
    """The check above can fail: an unknown option and a pipeline naming a component that is
    not defined are both refused."""
    config = yaml.safe_load((COLLECTOR / "otelcol-config.yaml").read_text())
    config["connectors"]["signal_to_metrics"]["spans"][0]["sum"]["monotonik"] = True
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(config))
    result = validate(otelcol, path)
    assert result.returncode != 0 and "monotonik" in result.stderr, result.stderr[-4000:]

    config = yaml.safe_load((COLLECTOR / "otelcol-config.yaml").read_text())
    config["service"]["pipelines"]["traces"]["exporters"].append("otlp_grpc/nowhere")
    path.write_text(yaml.safe_dump(config))
    result = validate(otelcol, path)
    assert result.returncode != 0 and "otlp_grpc/nowhere" in result.stderr, result.stderr[-4000:]
