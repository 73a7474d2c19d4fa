"""One server process, two kernelspecs, two clusters: each spec names its own kubeconfig
(``jupyter k8s-spec install --kubeconfig``), and each kernel runs in its cluster.

Two real control planes (etcd, kube-apiserver, controller-manager, scheduler) on loopback,
each with OUR NODE AGENT (not a kubelet).  Checks: both kernels run and execute code at once;
each pod exists in its own cluster only; the process keeps one pod watch per cluster (not one
per kernel, not one shared by both clusters); after shutdown nothing is left in either.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.k8s_cluster import (
    ClusterUnavailable,
    K8sCluster,
    ensure_namespace,
    install_kernelspec,
    kernel_objects,
)
from backends.system_packages import cannot_run
from jupyter_client.manager import AsyncKernelManager

from gp_k8s.pod_cache import PodWatchCache
from gp_k8s.reaper import Reaper
from gp_provisioners_core.testing import isolated_jupyter_paths
from gp_provisioners_core.testing.kernels import execute

NAMESPACE = "gp-multi"


@pytest.fixture(scope="module")
def second_cluster() -> Iterator[K8sCluster]:
    cluster = K8sCluster(Path(tempfile.mkdtemp(prefix="gp-k8s-second-")))
    cluster.remove_workdir = not os.environ.get("GP_K8S_KEEP_CLUSTER_DIR")
    try:
        cluster.start()
    except ClusterUnavailable as err:
        cluster.stop()
        cannot_run(f"no second Kubernetes control plane: {err}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def specs(
    k8s_cluster: K8sCluster, second_cluster: K8sCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    for cluster in (k8s_cluster, second_cluster):
        ensure_namespace(cluster.api_client(), NAMESPACE)
    root = tmp_path_factory.mktemp("jupyter-two-clusters")
    with isolated_jupyter_paths(root) as prefix:
        yield {
            name: install_kernelspec(
                prefix,
                f"gp_k8s_{name}",
                "--namespace",
                NAMESPACE,
                "--kubeconfig",
                str(cluster.admin_kubeconfig),
                "--launch-timeout",
                "120",
            )
            for name, cluster in (("first", k8s_cluster), ("second", second_cluster))
        }


@pytest.mark.asyncio
async def test_two_kernelspecs_run_kernels_in_two_clusters(
    specs: dict[str, str],
    k8s_cluster: K8sCluster,
    second_cluster: K8sCluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    for name in ("GP_KUBECONFIG", "KUBECONFIG", "GP_KUBE_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(second_cluster.workdir))  # no ~/.kube/config to fall back on
    clusters = {"first": k8s_cluster, "second": second_cluster}
    managers = {name: AsyncKernelManager(kernel_name=spec) for name, spec in specs.items()}
    try:
        for manager in managers.values():
            await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice"))
        for name, manager in managers.items():
            client = manager.client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=60)
                assert (await execute(client, "print(6 * 7)")).stdout.strip() == "42"
            finally:
                client.stop_channels()
            kernel_id = str(manager.kernel_id)
            other = "second" if name == "first" else "first"
            here = kernel_objects(clusters[name].api_client(), kernel_id)
            assert any(item.startswith("pod ") for item in here), here
            assert kernel_objects(clusters[other].api_client(), kernel_id) == []
        # One watch of this namespace per cluster (other suites in the same process may watch
        # other namespaces of the first cluster).
        hosts = [
            cache.api_client.configuration.host
            for cache in PodWatchCache.instances()
            if cache.namespace == NAMESPACE
        ]
        watches_per_server = [
            hosts.count(server) for server in (k8s_cluster.server, second_cluster.server)
        ]
        assert watches_per_server == [1, 1]
    finally:
        for manager in managers.values():
            if manager.has_kernel:
                await manager.shutdown_kernel(now=True)
    for name, manager in managers.items():
        kernel_id = str(manager.kernel_id)
        assert await Reaper.shared().settled(kernel_id, 60)
        assert kernel_objects(clusters[name].api_client(), kernel_id) == []
