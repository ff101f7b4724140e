"""Kubernetes manifests: kustomize renders base and GPU overlay, kubernetes-validate accepts every object."""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from server.config import ServerConfig
from tests.deploy.catalogue import DEPLOY, series_names
from tests.support.prometheus import metric_names

K8S = DEPLOY / "k8s"
K8S_VERSION = "1.30.0"  # the oldest release these manifests use features of (preStop sleep)


def _render(overlay: Path) -> list[dict[str, Any]]:
    return copy.deepcopy(_rendered(str(overlay)))


@functools.cache
def _rendered(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    kustomize = shutil.which("kustomize")
    if kubectl:
        command = [kubectl, "kustomize", str(overlay)]
    elif kustomize:
        command = [kustomize, "build", str(overlay)]
    else:
        pytest.skip("needs kubectl (with kustomize) or kustomize to render the overlays")
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


@pytest.mark.parametrize("overlay", ["base", "overlays/gpu"])
def test_rendered_objects_validate_strictly(overlay: str) -> None:
    docs = _render(K8S / overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
            "PersistentVolumeClaim", "ServiceAccount"} <= kinds  # fmt: skip
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_raw_base_files_validate_without_kustomize() -> None:
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            kubernetes_validate.validate(yaml.safe_load(path.read_text()), K8S_VERSION, strict=True)


def _container(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = _kind(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def test_deployment_probes_grace_period_and_model_volume() -> None:
    pod, container = _container(_render(K8S / "base"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == 8001
    config = ServerConfig.from_args(container["args"], env={})  # the flags must be Hangar's
    assert pod["terminationGracePeriodSeconds"] > config.exit_timeout_secs + 5  # + preStop sleep
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/models"]["readOnly"] is True
    assert config.model_repositories == (Path("/models"),)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})


def test_gpu_overlay_requests_a_gpu_and_keeps_the_base() -> None:
    docs = _render(K8S / "overlays/gpu")
    pod, container = _container(docs)
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith(":gpu")
    assert container["readinessProbe"]["grpc"]["port"] == 8001  # merged, not replaced
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/models", "/dev/shm"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])


def test_service_is_grpc_aware() -> None:
    service = _kind(_render(K8S / "base"), "Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert ports["grpc"]["appProtocol"] == "grpc" and ports["grpc"]["port"] == 8001
    assert ports["metrics"]["port"] == 8002


def test_hpa_scales_on_the_adapter_metric_for_waiting_requests() -> None:
    hpa = _kind(_render(K8S / "base"), "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    adapter = yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert metric["pods"]["metric"]["name"] == rule["name"]["as"]
    assert metric_names(rule["seriesQuery"]) == {"nv_trt_llm_request_metrics"} <= series_names()
    assert (
        'request_type="waiting"' in rule["seriesQuery"] and 'request_type="waiting"' in rule["metricsQuery"]
    )


def test_pdb_and_network_policy_select_the_pods() -> None:
    docs = _render(K8S / "base")
    labels = _kind(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for kind in ("PodDisruptionBudget", "NetworkPolicy"):
        spec = _kind(docs, kind)["spec"]
        selector = spec["selector"] if kind == "PodDisruptionBudget" else spec["podSelector"]
        assert selector["matchLabels"].items() <= labels.items()
    policy = _kind(docs, "NetworkPolicy")["spec"]
    ingress_ports = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert ingress_ports == {8001, 8002}
