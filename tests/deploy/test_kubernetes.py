"""The Kubernetes manifests of deploy/kubernetes, offline: the built-in kinds against the
Kubernetes JSON schemas kubernetes-validate bundles (strict: no unknown fields), KEDA's
ScaledObject and TriggerAuthentication against the small schema of keda_schema.py, and the
references between them: selectors, ports, probes, the Secret, the scaler's agents and slots,
and a termination grace period that fits the worker's drain."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from processgpt.api.routes.health import router as health_router
from tests.deploy.files import (
    KUBERNETES,
    Doc,
    agents_of,
    find,
    kustomization,
    load_yaml,
    manifests,
    parse_cli,
    worker_stop_seconds,
)
from tests.deploy.keda_schema import SCHEMAS

KUBERNETES_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
"""The oldest release the manifests claim (PodDisruptionBudget policy/v1, Job TTL and
autoscaling/v2 are older) and the newest one kubernetes-validate knows."""


def _validate(doc: Doc, where: str) -> None:
    if doc["apiVersion"].startswith("keda.sh/"):
        errors = [
            f"{list(e.absolute_path)}: {e.message}"
            for e in jsonschema.Draft202012Validator(SCHEMAS[doc["kind"]]).iter_errors(doc)
        ]
        assert not errors, (where, errors)
        behavior = (
            doc["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        )
        if behavior is not None:  # KEDA hands it to the HPA as it is
            _validate(_hpa_with(behavior), f"{where} behavior")
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where} (Kubernetes {version}): {list(exc.path)}: {exc.message}")


def _hpa_with(behavior: dict[str, Any]) -> Doc:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "behavior"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
            "maxReplicas": 1,
            "behavior": behavior,
        },
    }


def _pod(deployment_or_job: Doc) -> Doc:
    return deployment_or_job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def _container(deployment_or_job: Doc) -> Doc:
    (container,) = _pod(deployment_or_job)["containers"]
    return container  # type: ignore[no-any-return]


def _pod_template_annotations(deployment: Doc) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"].get("annotations", {})  # type: ignore[no-any-return]


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _scaler_query(scaled: Doc) -> str:
    (trigger,) = scaled["spec"]["triggers"]
    return str(trigger["metadata"]["query"])


# -- schemas ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in KUBERNETES.glob("*.yaml")))
def test_every_manifest_validates(name: str) -> None:
    if name == "kustomization.yaml":
        return
    for doc in load_yaml(KUBERNETES / name):
        _validate(doc, f"{name}: {doc['kind']}/{doc['metadata']['name']}")


def test_the_schemas_refuse_what_a_typo_makes() -> None:
    """The checks bite: an unknown field, a number where KEDA wants a string, a scaler
    without its query, an HPA behavior Kubernetes would refuse."""
    docs = manifests()
    worker = copy.deepcopy(find(docs, "Deployment", "processgpt-worker"))
    _container(worker)["livenesProbe"] = {"httpGet": {"path": "/livez", "port": 8000}}
    with pytest.raises(pytest.fail.Exception, match="livenesProbe"):
        _validate(worker, "typo")
    scaled = copy.deepcopy(find(docs, "ScaledObject", "processgpt-worker"))
    scaled["spec"]["triggers"][0]["metadata"]["targetQueryValue"] = 1
    with pytest.raises(AssertionError, match="is not of type 'string'"):
        _validate(scaled, "number")
    scaled = copy.deepcopy(find(docs, "ScaledObject", "processgpt-worker"))
    del scaled["spec"]["triggers"][0]["metadata"]["query"]
    with pytest.raises(AssertionError, match="'query' is a required property"):
        _validate(scaled, "no query")
    scaled = copy.deepcopy(find(docs, "ScaledObject", "processgpt-worker"))
    scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] = {
        "policy": []
    }
    with pytest.raises(pytest.fail.Exception, match="policy"):
        _validate(scaled, "behavior")


def test_the_kustomization_lists_every_manifest_but_the_examples() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    examples = {name for name in present if name.endswith(".example.yaml")}
    assert listed == present - examples
    assert examples == {"secret.example.yaml", "keda-prometheus.example.yaml"}
    assert kustomization()["images"] == [{"name": "processgpt", "newTag": "0.1.0"}]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) absent")
def test_kustomize_builds_what_the_files_say() -> None:
    built = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert len(docs) == len(manifests())
    for doc in docs:
        _validate(doc, f"built {doc['kind']}/{doc['metadata']['name']}")
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "processgpt", doc["metadata"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "processgpt"
        if doc["kind"] in ("Deployment", "Job"):
            assert _container(doc)["image"] == "processgpt:0.1.0"


# -- references -------------------------------------------------------------------------------


def test_selectors_services_and_disruption_budgets_find_their_pods() -> None:
    docs = manifests()
    deployments = [d for _, d in docs if d["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {
        "processgpt-api",
        "processgpt-worker",
    }
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployment["spec"]["selector"]["matchLabels"], labels)
    for kind in ("PodDisruptionBudget", "Service"):
        for _, doc in docs:
            if doc["kind"] != kind:
                continue
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            chosen = [
                d
                for d in deployments
                if _selects(selector, d["spec"]["template"]["metadata"]["labels"])
            ]
            assert len(chosen) == 1, (kind, doc["metadata"]["name"])
            if kind == "PodDisruptionBudget":
                assert doc["spec"]["maxUnavailable"] == 1
                assert chosen[0]["metadata"]["name"] == doc["metadata"]["name"]
    service = find(docs, "Service", "processgpt-api")
    ports = {p["name"]: p for p in _container(find(docs, "Deployment", "processgpt-api"))["ports"]}
    (service_port,) = service["spec"]["ports"]
    assert ports[service_port["targetPort"]]["containerPort"] == 8000


def test_the_api_probes_livez_and_readyz() -> None:
    api = _container(find(manifests(), "Deployment", "processgpt-api"))
    paths = {route.path for route in health_router.routes}  # type: ignore[attr-defined]
    assert api["livenessProbe"]["httpGet"]["path"] == "/livez"  # no database
    assert api["startupProbe"]["httpGet"]["path"] == "/livez"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
        assert api[probe]["httpGet"]["path"] in paths
        assert api[probe]["httpGet"]["port"] == "http"
    assert _env(api) == {"PROCESSGPT_API_HOST": "0.0.0.0", "PROCESSGPT_API_PORT": "8000"}


def test_every_container_runs_a_real_command_unprivileged_with_the_shared_settings() -> None:
    docs = manifests()
    secret = find(manifests(examples=True), "Secret", "processgpt")
    assert {"DATABASE_URL", "PROCESSGPT_SECRET_KEYS"} <= set(secret["stringData"])
    config = find(docs, "ConfigMap", "processgpt")
    assert config["data"]["PROCESSGPT_LOG_FORMAT"] == "json"
    commands = {}
    for _, doc in docs:
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        name = doc["metadata"]["name"]
        pod, container = _pod(doc), _container(doc)
        assert container["image"] == "processgpt", name  # set by the kustomization
        assert "command" not in container, "args: the image's entrypoint (tini) stays"
        commands[name] = parse_cli(container["args"]).command
        assert container["envFrom"] == [
            {"configMapRef": {"name": "processgpt"}},
            {"secretRef": {"name": "processgpt"}},
        ], name
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        # What a read-only root leaves writable: /tmp, and the data directory (the Dockerfile's
        # PROCESSGPT_DATA_DIR).
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts) == {"/tmp", "/var/lib/processgpt"}, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert all("emptyDir" in volumes[v] for v in mounts.values()), name
        assert "memory" in container["resources"]["limits"], name
    assert commands == {
        "processgpt-migrate": "migrate",
        "processgpt-api": "api",
        "processgpt-worker": "worker",
    }
    job = find(docs, "Job", "processgpt-migrate")
    assert _pod(job)["restartPolicy"] == "Never"


def test_the_worker_is_sized_by_keda_and_drains_within_its_grace_period() -> None:
    docs = manifests()
    worker = find(docs, "Deployment", "processgpt-worker")
    assert "replicas" not in worker["spec"], "the ScaledObject owns the replica count"
    container = _container(worker)
    assert "--no-migrate" in container["args"], "the migrate Job migrates"
    env = _env(container)
    grace = float(env["PROCESSGPT_SHUTDOWN_GRACE"])
    agents = agents_of(container["args"])
    needed = worker_stop_seconds(grace, len(agents))
    assert _pod(worker)["terminationGracePeriodSeconds"] >= needed
    # A worker's only HTTP is its /metrics listener, which says nothing about its health.
    assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container)
    (port,) = container["ports"]
    env = _env(container)
    assert port["containerPort"] == int(env["PROCESSGPT_METRICS_PORT"])
    assert env["PROCESSGPT_METRICS_HOST"] == "0.0.0.0"
    annotations = _pod_template_annotations(worker)
    assert annotations["prometheus.io/port"] == env["PROCESSGPT_METRICS_PORT"]


def test_the_scaled_object_counts_the_workers_agents_and_slots() -> None:
    docs = manifests()
    worker = find(docs, "Deployment", "processgpt-worker")
    agents = agents_of(_container(worker)["args"])
    slots = _env(_container(worker))["PROCESSGPT_CONCURRENCY"]
    prometheus = [
        ("keda-prometheus.example.yaml", doc)
        for doc in load_yaml(KUBERNETES / "keda-prometheus.example.yaml")
    ]
    for scaled in (
        find(docs, "ScaledObject", "processgpt-worker"),
        find(prometheus, "ScaledObject", "processgpt-worker"),
    ):
        assert scaled["spec"]["scaleTargetRef"] == {"name": "processgpt-worker"}
        assert scaled["spec"]["minReplicaCount"] >= 0
        (trigger,) = scaled["spec"]["triggers"]
        assert trigger["metricType"] == "AverageValue"
        query = trigger["metadata"]["query"]
        if trigger["type"] == "postgresql":
            # replicas = ceil(query / 1): the query is the number of pods
            assert trigger["metadata"]["targetQueryValue"] == "1"
            lists = re.findall(r"agent_orch IN \(([^)]*)\)", query)
            assert len(lists) == 2, query  # pending and in progress
            for found in lists:
                assert [a.strip().strip("'") for a in found.split(",")] == agents
            assert re.search(rf"\) / {slots}\.0\)", query), query
        else:
            assert trigger["type"] == "prometheus"
            assert trigger["metadata"]["threshold"] == "1"
            assert sorted(set(re.findall(r'agent="([^"]+)"', query))) == sorted(agents)
            assert query.rstrip().endswith(f"/ {slots})"), query


def test_keda_connects_with_the_database_url_of_the_pods_secret() -> None:
    docs = manifests()
    scaled = find(docs, "ScaledObject", "processgpt-worker")
    (trigger,) = scaled["spec"]["triggers"]
    auth = find(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "connection", "name": "processgpt", "key": "DATABASE_URL"}
    ]
    secret = find(manifests(examples=True), "Secret", "processgpt")
    assert secret["stringData"]["DATABASE_URL"].startswith("postgresql://")
    assert "SELECT" in _scaler_query(scaled)
