"""deploy/: manifests validated offline, the scrape config by promtool, the dashboard by running
every query against a real Prometheus that scraped a real three-node run."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from conftest import ROOT

DEPLOY = ROOT / "deploy"
RAY_MANIFESTS = ["kuberay/rayjob.yaml", "kuberay/raycluster.yaml"]


def load(relative: str) -> dict:
    return yaml.safe_load((DEPLOY / relative).read_text())


def strict(schema: dict) -> dict:
    """The CRD schema, refusing fields it does not name (the API server would prune them)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


@pytest.fixture(scope="module")
def crd_schemas() -> dict[str, dict]:
    folder = os.environ.get("KUBERAY_CRDS_DIR")
    if not folder or not Path(folder).is_dir():
        pytest.skip("KUBERAY_CRDS_DIR does not name the KubeRay CRDs folder (.ci/run sets it)")
    schemas = {}
    for path in Path(folder).glob("ray.io_*.yaml"):
        crd = yaml.safe_load(path.read_text())
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        schemas[crd["spec"]["names"]["kind"]] = strict(version["schema"]["openAPIV3Schema"])
    return schemas


@pytest.mark.parametrize("relative", RAY_MANIFESTS)
def test_ray_manifests_match_the_kuberay_crds(crd_schemas, relative):
    manifest = load(relative)
    assert manifest["apiVersion"] == "ray.io/v1"
    jsonschema.validate(manifest, crd_schemas[manifest["kind"]])


def test_the_strict_schema_refuses_an_unknown_field(crd_schemas):
    manifest = load("kuberay/rayjob.yaml")
    manifest["spec"]["entrypointt"] = "typo"
    with pytest.raises(jsonschema.ValidationError, match="entrypointt"):
        jsonschema.validate(manifest, crd_schemas["RayJob"])


def cluster_spec(manifest: dict) -> dict:
    return manifest["spec"].get("rayClusterSpec", manifest["spec"])


def pod_templates(manifest: dict) -> list[dict]:
    spec = cluster_spec(manifest)
    return [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]


@pytest.mark.parametrize("relative", RAY_MANIFESTS)
def test_pod_templates_are_valid_core_pods(relative):
    for template in pod_templates(load(relative)):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "check", **template["metadata"]},
            "spec": template["spec"],
        }
        kubernetes_validate.validate(pod, "1.30", strict=True)


def test_core_kinds_validate():
    kubernetes_validate.validate(load("kuberay/configmap.yaml"), "1.30", strict=True)


@pytest.mark.parametrize("relative", RAY_MANIFESTS)
def test_workers_spread_one_per_node_with_credentials_from_a_secret(relative):
    manifest = load(relative)
    spec = cluster_spec(manifest)
    for group in spec["workerGroupSpecs"]:
        affinity = group["template"]["spec"]["affinity"]["podAntiAffinity"]
        rule = affinity["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert rule["topologyKey"] == "kubernetes.io/hostname"
        assert (
            rule["labelSelector"]["matchLabels"].items()
            <= group["template"]["metadata"]["labels"].items()
        )
    for template in pod_templates(manifest):
        for container in template["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                assert "value" not in env[name]
                assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "s3-credentials"
            assert container["resources"]["requests"] and container["resources"]["limits"]
    text = (DEPLOY / relative).read_text()
    assert not re.search(r"AWS_SECRET_ACCESS_KEY\s*[:=]\s*\S", text.replace("key: AWS_SECRET", ""))


def test_rayjob_finishes_cleanly():
    spec = load("kuberay/rayjob.yaml")["spec"]
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    assert yaml.safe_load(spec["runtimeEnvYAML"])["working_dir"] == "/app"
    assert "COPY --chown=ray:users configs ./configs" in (DEPLOY / "Dockerfile").read_text()


def test_podmonitor_scrapes_ports_the_pods_expose():
    monitor = load("prometheus/podmonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "PodMonitor"
    wanted = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
    assert wanted == {"s3dlio-metrics", "metrics"}
    selector = monitor["spec"]["selector"]["matchLabels"]
    config = load("kuberay/configmap.yaml")["data"]
    for relative in RAY_MANIFESTS:
        templates = pod_templates(load(relative))
        exposed = {
            port["name"]: port["containerPort"]
            for template in templates
            for container in template["spec"]["containers"]
            for port in container["ports"]
        }
        assert wanted <= set(exposed)
        assert exposed["s3dlio-metrics"] == int(config["S3DLIO_METRICS_PORT"])
        assert all(selector.items() <= t["metadata"]["labels"].items() for t in templates)
    assert config["S3DLIO_METRICS_HOST"] == "0.0.0.0"


@pytest.mark.integration
def test_promtool_accepts_the_scrape_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    proc = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


DASHBOARD = json.loads((DEPLOY / "grafana" / "s3dlio-ray.json").read_text())


def test_dashboard_structure():
    assert DASHBOARD["schemaVersion"] >= 36
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in DASHBOARD["panels"])
    for wanted in (
        "cluster throughput",
        "per node",
        "operations per second",
        "errors",
        "retries",
        "latency",
        "concurrency",
        "run",
        "per endpoint",
        "what limits",
        "cluster limit",
    ):
        assert wanted in titles
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(
            t["datasource"]["uid"] == "${datasource}" for t in panel["targets"]
        )


def grafana_to_promql(expression: str) -> str:
    """What Grafana sends for a 1 s scrape interval and every node selected."""
    return expression.replace("$__rate_interval", "4s").replace("$node", ".+")


DASHBOARD_TARGETS = [
    (panel["title"], target) for panel in DASHBOARD["panels"] for target in panel["targets"]
] + [("variable node", {"expr": "s3dlio_ray_bytes_total", "legendFormat": "{{node}}"})]


@pytest.mark.parametrize(
    ("title", "target"),
    DASHBOARD_TARGETS,
    ids=[f"{t}-{x.get('refId', '')}" for t, x in DASHBOARD_TARGETS],
)
def test_every_dashboard_query_returns_data_with_its_labels(scraped_run, title, target):
    expression = grafana_to_promql(target["expr"])
    series = scraped_run.query_range(expression)
    assert series, f"{title}: {expression} returned nothing"
    labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
    for one in series:
        assert labels <= set(one["metric"]), (title, labels, one["metric"])
    if "node" in labels:
        assert {s["metric"]["node"] for s in series} == set(scraped_run.result.cluster.nodes)
    if "endpoint" in labels:
        assert {s["metric"]["endpoint"] for s in series} == set(scraped_run.result.endpoints)
