"""The deployment files parse and say what the connector needs (replicas, probes, secrets, routing).

The checks that run the image's command are in tests/integration/test_deploy.py.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support.deploy import K8S, ROOT, _container, _dockerfile_cmd, _docs, _kind

OFFICIAL_SECRET_KEYS = {
    "perian_organization",
    "perian_token",
    "aws_access_key_id",
    "aws_secret_access_key",
    "google_application_credentials",
    "docker_registry_url",
    "docker_registry_username",
    "docker_registry_password",
}


def test_every_manifest_parses_and_is_listed_in_kustomization() -> None:
    docs = _docs()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "PodDisruptionBudget", "Secret", "ServiceAccount"}
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"] == "flyte-perian-connector"
        assert doc["metadata"]["namespace"] == "flyte"
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def test_deployment_is_replicated_probed_and_drains() -> None:
    deployment = _kind("Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in spec["selector"]["matchLabels"].items())
    container = _container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8000, "metrics": 9090}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 8000, probe
    annotations = spec["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9090"
    args = container["args"]
    grace = float(args[args.index("--grace") + 1]) + float(args[args.index("--shutdown-delay") + 1])
    assert spec["template"]["spec"]["terminationGracePeriodSeconds"] > grace
    assert args[args.index("--port") + 1] == "8000" and args[args.index("--metrics-port") + 1] == "9090"


def test_secret_is_mounted_at_etc_secrets_with_official_names() -> None:
    pod = _kind("Deployment")["spec"]["template"]["spec"]
    mounts = {m["name"]: m for m in _container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_volume = next(name for name, v in volumes.items() if "secret" in v)
    assert mounts[secret_volume]["mountPath"] == "/etc/secrets" and mounts[secret_volume]["readOnly"]
    secret = _kind("Secret")
    assert volumes[secret_volume]["secret"]["secretName"] == secret["metadata"]["name"]
    keys = set(secret["stringData"])
    assert {"perian_organization", "perian_token"} <= keys <= OFFICIAL_SECRET_KEYS
    commented = set(re.findall(r"#\s*(\w+):", (K8S / "secret.yaml").read_text()))
    assert keys | commented >= OFFICIAL_SECRET_KEYS  # every official name is documented


def test_service_and_pdb_select_the_pods() -> None:
    labels = _kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = _kind("Service")
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_port["port"] == 8000 and grpc_port["targetPort"] == "grpc"
    pdb = _kind("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] >= 1
    assert all(labels[k] == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())


@pytest.mark.parametrize("name", ["propeller-config.yaml", "flyte2-config.yaml"])  # Flyte 1 and Flyte 2
def test_propeller_config_routes_perian_task_to_the_service(name: str) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "flyte" / name).read_text())
    plugins = config["tasks"]["task-plugins"]
    assert "connector-service" in plugins["enabled-plugins"]
    assert plugins["default-for-task-types"]["perian_task"] == "connector-service"
    connector = config["plugins"]["connector-service"]
    deployment_id = connector["connectorForTaskTypes"]["perian_task"]
    deployment = connector["connectors"][deployment_id]
    service = _kind("Service")["metadata"]
    assert deployment["endpoint"] == f"k8s://{service['name']}.{service['namespace']}:8000"
    assert json.loads(deployment["defaultServiceConfig"])["loadBalancingConfig"] == [{"round_robin": {}}]
    assert set(deployment["timeouts"]) <= {"CreateTask", "GetTask", "DeleteTask", "ExecuteTaskSync", "ListConnectors"}


def test_dockerfile_runs_serve_in_exec_form() -> None:
    text = (ROOT / "Dockerfile").read_text()
    entry, cmd = _dockerfile_cmd()
    assert entry == ["perianctl"] and cmd[0] == "serve"
    assert re.search(r"^EXPOSE 8000 9090$", text, re.M)
    assert re.search(r"^USER \d+", text, re.M)
