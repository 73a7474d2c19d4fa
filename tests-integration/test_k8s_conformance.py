"""The conformance suite over KubernetesProvisioner against a real kube-apiserver.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler (v1.20.2) on loopback.
Pods run through OUR NODE AGENT, NOT A KUBELET (backends/node_agent.py): it runs each pod's
container command (the launcher of this checkout) as a local process and reports its status
through the API.  The provisioner authenticates as the service account of the shipped RBAC
manifests (packages/gp-k8s/deploy), so the suite also proves those permissions suffice.

Two variants: kernels in one shared namespace, and a namespace created per kernel.
"""

from __future__ import annotations

from typing import Any

import pytest
from backends.k8s_cluster import (
    K8sCluster,
    processes_of,
    raw,
)
from backends.k8s_fixtures import REAPER_BOUND, K8sBackend

from gp_k8s.reaper import Reaper
from gp_provisioners_core.testing import (
    ProvisionerConformance,
)


class _K8sConformance(ProvisionerConformance):
    variant = ""

    @pytest.fixture
    def conformance_backend(
        self,
        k8s_cluster: K8sCluster,
        k8s_kernelspecs: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> K8sBackend:
        kernel_name, kubeconfig = k8s_kernelspecs[self.variant]
        monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
        monkeypatch.setenv("GP_KUBECONFIG", str(kubeconfig))
        return K8sBackend(kernel_name=kernel_name, launch_timeout=120, cluster=k8s_cluster)


class TestK8sSharedNamespaceConformance(_K8sConformance):
    variant = "shared"


class TestK8sNamespacePerKernelConformance(_K8sConformance):
    variant = "per_kernel"


def test_nothing_of_any_kernel_is_left(k8s_cluster: K8sCluster) -> None:
    """After both suites (restarts, kills, re-attach, per-kernel namespaces included): no pod,
    launch Secret or kernel namespace of gp-k8s remains, and no kernel process runs."""
    assert Reaper.shared().drain(REAPER_BOUND) == []
    api = k8s_cluster.api_client()
    selector = "app=gateway-provisioners,component=kernel"
    left = []
    for path in ("/api/v1/pods", "/api/v1/secrets", "/api/v1/namespaces"):
        items = raw(api, "GET", path, labelSelector=selector).get("items") or []
        left += [
            f"{path} {i['metadata'].get('namespace', '')}/{i['metadata']['name']}" for i in items
        ]
    assert left == []
    launchers = processes_of("kernels/gp_k8s_shared/") + processes_of("kernels/gp_k8s_per_kernel/")
    assert launchers == []
