"""pytest fixtures of the Kubernetes suites (gp-k8s): the shared test cluster and the kernelspecs of
``jupyter k8s-spec install`` in its two namespace modes.

The cluster is real etcd, kube-apiserver, controller manager and scheduler on loopback, with
OUR node agent (``backends/node_agent.py``) in place of a kubelet and our service proxy in place
of kube-proxy (``backends/k8s_cluster.py``; ``python backends/k8s_cluster.py`` runs it by hand).
Registered for every suite by ``pytest_plugins`` in ``tests-integration/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.k8s_cluster import (
    ClusterUnavailable,
    K8sCluster,
    apply_manifests,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
    kernel_process_alive,
    load_manifests,
    raw,
    service_account_kubeconfig,
    shared_cluster,
    wait_until_allowed,
)
from backends.system_packages import cannot_run
from gp_k8s.reaper import Reaper
from gp_provisioners_core.testing import ConformanceBackend, isolated_jupyter_paths


@pytest.fixture(scope="session")
def k8s_cluster() -> K8sCluster:
    """The shared control plane; fails (or skips, with GP_TEST_ALLOW_SKIP=1) when it cannot
    run on this machine."""
    try:
        cluster = shared_cluster()
    except ClusterUnavailable as err:
        cannot_run(f"no Kubernetes control plane: {err}")
    return cluster


DEPLOY = Path(__file__).resolve().parents[2] / "packages" / "gp-k8s" / "deploy"
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


def shipped_rbac_kubeconfig(cluster: K8sCluster, manifest: str, server_namespace: str) -> Path:
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
                shipped_rbac_kubeconfig(
                    k8s_cluster, "rbac-shared-namespace.yaml", SERVER_NAMESPACE
                ),
            ),
            "per_kernel": (
                per_kernel,
                shipped_rbac_kubeconfig(
                    k8s_cluster, "rbac-namespace-per-kernel.yaml", SERVER_NAMESPACE + "-ns"
                ),
            ),
        }
