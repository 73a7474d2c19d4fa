"""The conformance suite over KubernetesProvisioner against a real kube-apiserver.

Real etcd, kube-apiserver, kube-controller-manager and kube-scheduler (v1.20.2) on loopback.
Pods run through OUR NODE AGENT, NOT A KUBELET (backends/node_agent.py): it runs each pod's
container command (the launcher of this checkout) as a local process and reports its status
through the API.  The provisioner authenticates as the service account of the shipped RBAC
manifests (packages/gp-k8s/deploy), so the suite also proves those permissions suffice.

Two variants: kernels in one shared namespace, and a namespace created per kernel.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from backends.k8s_cluster import (
    K8sCluster,
    apply_manifests,
    ensure_namespace,
    install_kernelspec,
    k8s_cluster,
    kernel_objects,
    kernel_process_alive,
    load_manifests,
    processes_of,
    raw,
    service_account_kubeconfig,
    wait_until_allowed,
)

from gp_k8s.reaper import Reaper
from gp_provisioners_core.testing import (
    ConformanceBackend,
    ProvisionerConformance,
    isolated_jupyter_paths,
)

__all__ = ["k8s_cluster"]

DEPLOY = Path(__file__).resolve().parents[1] / "packages" / "gp-k8s" / "deploy"
SERVER_NAMESPACE = "gp-system"
REAPER_BOUND = 60.0
"""Seconds the leftovers check lets the reaper finish a kernel's deletions."""
KERNEL_NAMESPACE = "gp-kernels"


@dataclass
class K8sBackend(ConformanceBackend):
    cluster: K8sCluster | None = None

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        """Delete the pod at once (grace 0) behind the provisioner's back."""
        assert self.cluster is not None
        namespace = provisioner_info["kernel_namespace_name"]
        name = provisioner_info["container_name"]
        raw(
            self.cluster.api_client(),
            "DELETE",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
        )

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        """This launch's pod, launch Secret and processes; the kernel's namespace when no pod
        of the kernel is left in it.  (After a restart the kernel id lives on in a new pod.)

        Stopping a kernel returns once its container stopped; its pod object and namespace
        are seen through in the background by the process's reaper, which must finish
        (bounded) before nothing is left."""
        assert self.cluster is not None
        await Reaper.shared().settled(str(provisioner_info["kernel_id"]), REAPER_BOUND)
        api = self.cluster.api_client()
        found = []
        namespace = provisioner_info["kernel_namespace_name"]
        objects = kernel_objects(api, provisioner_info["kernel_id"])
        for name in (provisioner_info["container_name"], provisioner_info["launch_secret_name"]):
            found += [o for o in objects if o.endswith(f"{namespace}/{name}")]
        pods = [o for o in objects if o.startswith("pod ")]
        if not pods:
            found += [o for o in objects if o.startswith("namespace ")]
        kernel_id = str(provisioner_info["kernel_id"])
        for key in ("pid", "kernel_pid"):
            if kernel_process_alive(int(provisioner_info.get(key) or 0), kernel_id):
                found.append(f"{key} {provisioner_info[key]} still runs")
        return found


def _rbac_kubeconfig(cluster: K8sCluster, manifest: str, server_namespace: str) -> Path:
    """Apply a shipped RBAC manifest (its server namespace renamed, so each variant's service
    account holds only its own manifest's rights); return that account's kubeconfig."""
    admin = cluster.api_client()
    ensure_namespace(admin, server_namespace)
    ensure_namespace(admin, KERNEL_NAMESPACE)
    docs = load_manifests(
        DEPLOY / manifest,
        {"jupyter": server_namespace, "kernels": KERNEL_NAMESPACE},
        cluster_suffix=f"-{server_namespace}",
    )
    apply_manifests(admin, docs)
    user = f"system:serviceaccount:{server_namespace}:gateway-provisioners"
    wait_until_allowed(admin, user, "create", "pods", KERNEL_NAMESPACE)
    return service_account_kubeconfig(cluster, server_namespace, "gateway-provisioners")


@pytest.fixture(scope="module")
def k8s_kernelspecs(
    k8s_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("jupyter-k8s")
    with isolated_jupyter_paths(root) as prefix:
        shared = install_kernelspec(
            prefix, "gp_k8s_shared", "--namespace", KERNEL_NAMESPACE, "--launch-timeout", "120"
        )
        per_kernel = install_kernelspec(
            prefix, "gp_k8s_per_kernel", "--create-kernel-namespace", "--launch-timeout", "120"
        )
        yield {
            "shared": (
                shared,
                _rbac_kubeconfig(k8s_cluster, "rbac-shared-namespace.yaml", SERVER_NAMESPACE),
            ),
            "per_kernel": (
                per_kernel,
                _rbac_kubeconfig(
                    k8s_cluster, "rbac-namespace-per-kernel.yaml", SERVER_NAMESPACE + "-ns"
                ),
            ),
        }


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
