"""Structure of collector/: the collector configurations (every component a pipeline uses is
defined, every connector joins two pipelines, no unknown keys), the compose file, the app's
Dockerfile, the Prometheus configuration (``promtool check config``), Grafana provisioning
and both dashboards. No container engine, collector or Jaeger runs here: these checks stand
in for ``otelcol-contrib validate`` and ``docker compose config`` (see collector/README.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = ROOT / "collector"
COLLECTOR_CONFIGS = sorted(COLLECTOR.glob("otelcol-*.yaml"))
COMPOSE = COLLECTOR / "docker-compose.yaml"
OTELCOL_VERSION = "0.156.0"

TOP_LEVEL = {"receivers", "processors", "exporters", "connectors", "extensions", "service"}
SERVICE_KEYS = {"pipelines", "extensions", "telemetry"}
PIPELINE_KEYS = {"receivers", "processors", "exporters"}
SIGNALS = {"traces", "metrics", "logs", "profiles"}
# The component types these files use, all in otelcol-contrib 0.156.0.
KNOWN_TYPES = {
    "receivers": {"otlp"},
    "processors": {"batch", "memory_limiter", "deltatocumulative"},
    "exporters": {"otlp_grpc", "otlp_http", "prometheus", "awsemf", "debug"},
    "connectors": {"signal_to_metrics"},
    "extensions": {"health_check"},
}
# connector type -> (pipeline signals it can end, pipeline signals it can start)
CONNECTOR_SIGNALS = {"signal_to_metrics": ({"traces", "metrics", "logs"}, {"metrics"})}
# renamed in otelcol 0.144 (otlp -> otlp_grpc, otlphttp -> otlp_http): deprecated aliases only
DEPRECATED_EXPORTERS = {"otlp", "otlphttp"}


def load_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def config_problems(config: Any) -> List[str]:
    """What otelcol would refuse (or silently ignore) in a configuration; [] when none."""
    problems: List[str] = []
    if not isinstance(config, dict):
        return ["the configuration is not a mapping"]
    problems += [f"unknown top-level key {k!r}" for k in sorted(set(config) - TOP_LEVEL)]
    sections = {s: config.get(s) or {} for s in TOP_LEVEL - {"service"}}
    for section, components in sections.items():
        if not isinstance(components, dict):
            problems.append(f"{section} is not a mapping")
            continue
        for cid in components:
            ctype = component_type(cid)
            if ctype not in KNOWN_TYPES[section]:
                problems.append(f"{section}: unknown component type {ctype!r} ({cid})")
            if section == "exporters" and ctype in DEPRECATED_EXPORTERS:
                problems.append(f"exporters: {cid!r} is a deprecated name since otelcol 0.144")
    service = config.get("service")
    if not isinstance(service, dict):
        return problems + ["no service section"]
    problems += [f"unknown service key {k!r}" for k in sorted(set(service) - SERVICE_KEYS)]
    for ext in service.get("extensions") or []:
        if ext not in sections["extensions"]:
            problems.append(f"service.extensions: {ext!r} is not defined under extensions")
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("no pipelines")
    used = {s: set() for s in sections}
    connector_ends: Dict[str, List[str]] = {c: [] for c in sections["connectors"]}
    connector_starts: Dict[str, List[str]] = {c: [] for c in sections["connectors"]}
    for name, pipeline in pipelines.items():
        signal = name.split("/", 1)[0]
        if signal not in SIGNALS:
            problems.append(f"pipeline {name!r}: unknown signal {signal!r}")
        if not isinstance(pipeline, dict):
            problems.append(f"pipeline {name!r} is not a mapping")
            continue
        problems += [f"pipeline {name!r}: unknown key {k!r}" for k in sorted(set(pipeline) - PIPELINE_KEYS)]
        for key in ("receivers", "exporters"):
            if not pipeline.get(key):
                problems.append(f"pipeline {name!r} has no {key}")
        for rid in pipeline.get("receivers") or []:
            if rid in sections["connectors"]:
                connector_starts[rid].append(signal)
                used["connectors"].add(rid)
            elif rid in sections["receivers"]:
                used["receivers"].add(rid)
            else:
                problems.append(f"pipeline {name!r}: receiver {rid!r} is not defined")
        for pid in pipeline.get("processors") or []:
            if pid in sections["processors"]:
                used["processors"].add(pid)
            else:
                problems.append(f"pipeline {name!r}: processor {pid!r} is not defined")
        for eid in pipeline.get("exporters") or []:
            if eid in sections["connectors"]:
                connector_ends[eid].append(signal)
                used["connectors"].add(eid)
            elif eid in sections["exporters"]:
                used["exporters"].add(eid)
            else:
                problems.append(f"pipeline {name!r}: exporter {eid!r} is not defined")
    for cid in sections["connectors"]:
        ends, starts = connector_ends[cid], connector_starts[cid]
        if not ends or not starts:
            problems.append(f"connector {cid!r} must be an exporter in one pipeline and a receiver in another")
        allowed = CONNECTOR_SIGNALS.get(component_type(cid))
        if allowed and (set(ends) - allowed[0] or set(starts) - allowed[1]):
            problems.append(f"connector {cid!r}: cannot go from {sorted(set(ends))} to {sorted(set(starts))}")
    for section in ("receivers", "processors", "exporters", "connectors"):
        for cid in sorted(set(sections[section]) - used[section]):
            problems.append(f"{section}: {cid!r} is defined but used in no pipeline")
    return problems


def env_default(value: str) -> str:
    """The default of a ``${env:VAR:-default}`` value (the collector's syntax), else the value."""
    match = re.fullmatch(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", value)
    return match.group(1) if match else value


def test_there_are_collector_configs():
    names = {p.name for p in COLLECTOR_CONFIGS}
    assert {"otelcol-config.yaml", "otelcol-cloudwatch.yaml"} <= names, names


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=lambda p: p.name)
def test_collector_config_structure(path):
    config = load_yaml(path)
    assert config_problems(config) == []
    # in a container the receivers must listen on every interface (the default is localhost)
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        assert env_default(protocol["endpoint"]).startswith("0.0.0.0:"), protocol
    assert f"otelcol-contrib {OTELCOL_VERSION}" in path.read_text(encoding="utf-8")


def test_the_structure_check_finds_broken_configs():
    config = load_yaml(COLLECTOR / "otelcol-config.yaml")
    config["servce"] = {}  # typo
    config["service"]["pipelines"]["traces"]["processors"].append("batch/missing")
    del config["service"]["pipelines"]["metrics/spans"]  # the connector now only ends a pipeline
    config["exporters"]["otlp/old"] = {"endpoint": "jaeger:4317"}
    config["service"]["pipelines"]["traces"]["exporters"].append("otlp/old")
    config["service"]["pipelines"]["logs"] = {"receivers": ["otlp"], "exporters": ["debug"]}
    problems = "\n".join(config_problems(config))
    assert "unknown top-level key 'servce'" in problems
    assert "processor 'batch/missing' is not defined" in problems
    assert "connector 'signal_to_metrics' must be an exporter in one pipeline and a receiver in another" in problems
    assert "'otlp/old' is a deprecated name" in problems
    assert "exporter 'debug' is not defined" in problems
    assert "processors: 'deltatocumulative' is defined but used in no pipeline" in problems

    config = load_yaml(COLLECTOR / "otelcol-config.yaml")
    config["service"]["pipelines"]["logs"] = {"receivers": ["signal_to_metrics"], "exporters": ["prometheus"]}
    assert any("cannot go from" in p for p in config_problems(config))


def test_both_collector_configs_derive_the_same_span_metrics():
    main = load_yaml(COLLECTOR / "otelcol-config.yaml")["connectors"]
    cloudwatch = load_yaml(COLLECTOR / "otelcol-cloudwatch.yaml")["connectors"]
    assert main == cloudwatch


def test_jaeger_and_prometheus_wiring_matches_compose():
    config = load_yaml(COLLECTOR / "otelcol-config.yaml")
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    host, port = env_default(config["exporters"]["otlp_grpc/jaeger"]["endpoint"]).rsplit(":", 1)
    assert host in services and port == "4317"  # Jaeger v2 takes OTLP gRPC on 4317
    assert services[host]["image"].startswith("jaegertracing/jaeger:2.")
    exporter_port = env_default(config["exporters"]["prometheus"]["endpoint"]).rsplit(":", 1)[1]
    scrape = load_yaml(COLLECTOR / "prometheus" / "prometheus.yml")["scrape_configs"]
    targets = [t for job in scrape for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"otelcol:{exporter_port}"]
    assert all(job.get("honor_labels") is True for job in scrape)  # keep the exporter's job label
    app_env = services["app"]["environment"]
    http_port = env_default(config["receivers"]["otlp"]["protocols"]["http"]["endpoint"]).rsplit(":", 1)[1]
    assert app_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://otelcol:{http_port}"
    assert app_env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"


def test_compose_file():
    compose = load_yaml(COMPOSE)
    assert set(compose) <= {"name", "services", "volumes", "networks"}
    services = compose["services"]
    assert {"app", "otelcol", "jaeger", "prometheus", "grafana"} <= set(services)
    for name, service in services.items():
        image = service.get("image", "")
        repo, _, tag = image.rpartition(":")
        assert repo and re.search(r"\d+\.\d+\.\d+", tag), f"{name}: image not pinned: {image!r}"
        for dependency in service.get("depends_on", []):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            assert (COLLECTOR / source).exists(), f"{name}: {source} does not exist"
            assert target.startswith("/")
    assert services["otelcol"]["image"] == f"otel/opentelemetry-collector-contrib:{OTELCOL_VERSION}"
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")
    assert services["prometheus"]["image"].startswith("prom/prometheus:v3.")
    assert services["grafana"]["image"].startswith("grafana/grafana:12.")
    for name, service in services.items():  # a local demo: nothing published beyond loopback
        for published in service.get("ports", []):
            assert published.startswith("127.0.0.1:"), (name, published)
    mounts = dict(v.split(":")[:2] for v in services["otelcol"]["volumes"])
    assert services["otelcol"]["command"] == [f"--config={mounts['./otelcol-config.yaml']}"]
    build = services["app"]["build"]
    assert (COLLECTOR / build["context"] / build["dockerfile"]).resolve() == COLLECTOR / "app" / "Dockerfile"
    readme = (COLLECTOR / "README.md").read_text(encoding="utf-8")
    for service in services.values():  # the README lists every pinned image
        assert f"`{service['image']}`" in readme or service["image"].startswith("otel-carbon-example:")


def test_app_dockerfile():
    text = (COLLECTOR / "app" / "Dockerfile").read_text(encoding="utf-8")
    base = re.search(r"^FROM (\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim", base), base
    for source in re.findall(r"^COPY (\S+)", text, re.M):  # relative to the build context (repo root)
        assert (ROOT / source).exists(), source
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert cmd[0] == "gunicorn" and cmd[cmd.index("--workers") + 1] == "1"
    module, attr = cmd[-1].split(":")
    example = ROOT / cmd[cmd.index("--chdir") + 1] / f"{module}.py"
    source = example.read_text(encoding="utf-8")
    assert re.search(rf"^{attr} = ", source, re.M), f"{example} defines no {attr}"
    assert "otel_carbon.configure(" in source  # it honours the OTEL_* variables compose sets


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed")
def test_prometheus_config_passes_promtool():
    result = subprocess.run(
        ["promtool", "check", "config", str(COLLECTOR / "prometheus" / "prometheus.yml")],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def grafana_dashboard() -> Dict[str, Any]:
    return json.loads((COLLECTOR / "grafana" / "dashboards" / "otel-carbon.json").read_text(encoding="utf-8"))


def test_grafana_provisioning():
    compose = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in compose["volumes"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    sources = load_yaml(COLLECTOR / "grafana" / "provisioning" / "datasources" / "prometheus.yaml")
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    providers = load_yaml(COLLECTOR / "grafana" / "provisioning" / "dashboards" / "otel-carbon.yaml")
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == mounts["./grafana/dashboards"]
    home = compose["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (COLLECTOR / "grafana" / "dashboards" / Path(home).name).is_file()

    dashboard = grafana_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    refs = [p["datasource"] for p in dashboard["panels"] if p["type"] != "row"]
    refs += [t["datasource"] for p in dashboard["panels"] for t in p.get("targets", [])]
    refs += [v["datasource"] for v in dashboard["templating"]["list"]]
    assert refs and all(r == {"type": "prometheus", "uid": source["uid"]} for r in refs)
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"], panel["title"]


SEARCH = re.compile(r"""^SEARCH\('\{([^}]*)\} MetricName="([^"]+)"', '(\w+)', (\d+)\)$""")


def cloudwatch_searches() -> List[Dict[str, Any]]:
    body = json.loads((COLLECTOR / "cloudwatch" / "dashboard.json").read_text(encoding="utf-8"))
    found = []
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        for line in widget["properties"]["metrics"]:
            for item in line:
                match = SEARCH.match(item["expression"])
                assert match, item["expression"]
                schema = [s.strip() for s in match.group(1).split(",")]
                found.append(
                    {
                        "widget": widget,
                        "namespace": schema[0],
                        "dimensions": [s[1:-1] if s.startswith('"') else s for s in schema[1:]],
                        "quoted": schema[1:],
                        "metric": match.group(2),
                        "stat": match.group(3),
                        "period": int(match.group(4)),
                    }
                )
    return found


def test_cloudwatch_dashboard_body():
    body = json.loads((COLLECTOR / "cloudwatch" / "dashboard.json").read_text(encoding="utf-8"))
    assert set(body) == {"widgets"}
    for widget in body["widgets"]:
        assert widget["type"] in {"metric", "text"}
        assert {"x", "y", "width", "height", "properties"} <= set(widget)
        assert widget["x"] + widget["width"] <= 24
        if widget["type"] == "metric":
            props = widget["properties"]
            assert props["region"] and props["title"] and props["view"] == "timeSeries"
    searches = cloudwatch_searches()
    assert len(searches) >= 6
    for search in searches:
        assert search["stat"] in {"Sum", "Average", "Maximum", "Minimum", "SampleCount"}
        assert search["period"] % 60 == 0
        # a dimension name with anything but letters and digits must be double-quoted
        for raw in search["quoted"]:
            assert re.fullmatch(r"[A-Za-z0-9]+", raw) or re.fullmatch(r'"[^"]+"', raw), raw


def go_requires(go_mod: Path) -> Dict[str, str]:
    """module -> version of the ``require`` lines of a go.mod."""
    text = go_mod.read_text(encoding="utf-8")
    return dict(re.findall(r"^\s*(?:require\s+)?([\w./-]+\.[\w./-]+) (v[\w.+-]+)(?:\s*//.*)?$", text, re.M))


def test_the_e2e_collector_is_the_release_the_configs_name():
    """collector/e2e/otelcol builds exactly the components the configs use, all of one release."""
    requires = go_requires(COLLECTOR / "e2e" / "otelcol" / "go.mod")
    assert requires["go.opentelemetry.io/collector/otelcol"] == f"v{OTELCOL_VERSION}"
    contrib = "github.com/open-telemetry/opentelemetry-collector-contrib/"
    main_go = (COLLECTOR / "e2e" / "otelcol" / "main.go").read_text(encoding="utf-8")
    imported = set(re.findall(r'"((?:go\.opentelemetry\.io/collector|github\.com/open-telemetry)[^"]*)"', main_go))
    components = {m for m in imported if re.fullmatch(r"[a-z0-9]+(receiver|processor|exporter|connector)", m.rsplit("/", 1)[-1])}
    for module in components:
        assert requires[module] == f"v{OTELCOL_VERSION}", module
    # one factory per component type the configs use (awsemf excepted: not buildable here)
    used = set()
    for path in COLLECTOR_CONFIGS:
        config = load_yaml(path)
        for section in ("receivers", "processors", "exporters", "connectors"):
            used |= {component_type(c) for c in config.get(section, {})}
    names = {m.rsplit("/", 1)[-1] for m in components}
    wanted = {"otlp": "otlpreceiver", "memory_limiter": "memorylimiterprocessor", "batch": "batchprocessor",
              "deltatocumulative": "deltatocumulativeprocessor", "otlp_grpc": "otlpexporter",
              "prometheus": "prometheusexporter", "signal_to_metrics": "signaltometricsconnector"}
    assert used == set(wanted) | {"awsemf"}, used
    assert names == set(wanted.values()), names
    assert any(m.startswith(contrib) for m in components)
