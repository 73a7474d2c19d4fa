"""A kernel claimed from a warm pool on Docker, Kubernetes and Slurm: it runs code under the
requested id, what names it on the backend follows that id where the backend allows (container
name, pod label and annotation, job name), and shutting it down leaves nothing under either id.

One short test per backend (the full conformance suite on claimed kernels runs over ssh in
test_pool_conformance.py); each uses the backend of its conformance suite.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from backends import dockerd
from backends.k8s_cluster import K8sCluster, kernel_objects, raw
from backends.slurm_kernels import SlurmKernelspecs, job_leftovers
from jupyter_client.manager import AsyncKernelManager

from gp_k8s.reaper import Reaper
from gp_provisioners_core.pool_manager import PooledMultiKernelManager
from gp_provisioners_core.testing.kernels import execute
from gp_provisioners_core.testing.pool_conformance import wait_for_pool


@dataclass
class Claimed:
    pools: PooledMultiKernelManager
    manager: Any
    kernel_id: str
    pool_kernel_id: str

    async def info(self) -> dict[str, Any]:
        """The provisioner info once the claim's background relabel has finished."""
        await self.manager.provisioner.relabelled()
        return dict(await self.manager.provisioner.get_provisioner_info())


@pytest.fixture
async def claim() -> AsyncIterator[Any]:
    made: list[PooledMultiKernelManager] = []

    async def claim(kernel_name: str) -> Claimed:
        env = {**os.environ, "KERNEL_USERNAME": "pooluser"}
        pools = PooledMultiKernelManager()
        made.append(pools)
        pools.pools.pool_sizes = {kernel_name: 1}
        pools.pools.scope = "per-user"
        pools.warm_pools([kernel_name], env)
        await wait_for_pool(pools, 1, 240)
        [pool_kernel_id] = pools.pools.pooled_kernel_ids()
        pools.pools.max_pooled_kernels = 0  # no refill: the test watches one kernel
        kernel_id = str(uuid.uuid4())
        await pools.start_kernel(kernel_name=kernel_name, kernel_id=kernel_id, env=env)
        assert pools.pools.stats()["served"] == 1
        manager = pools.get_kernel(kernel_id)
        assert isinstance(manager, AsyncKernelManager)
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            assert (await execute(client, "print(6 * 7)")).stdout.strip() == "42"
        finally:
            client.stop_channels()
        return Claimed(pools, manager, kernel_id, pool_kernel_id)

    yield claim
    for pools in made:
        await pools.shutdown_all(now=True)


@pytest.mark.asyncio
async def test_docker_container_is_renamed(
    docker_kernelspecs: dockerd.DockerKernelspecs, claim: Any
) -> None:
    import docker

    claimed: Claimed = await claim(docker_kernelspecs.docker)
    info = await claimed.info()
    client = docker.DockerClient(base_url=docker_kernelspecs.backend.base_url, timeout=30)
    state = await asyncio.to_thread(client.api.inspect_container, info["container_id"])
    assert state["Name"].lstrip("/").endswith(claimed.kernel_id)
    assert info["container_name"] == state["Name"].lstrip("/")
    assert info["launch_kernel_id"] == claimed.pool_kernel_id  # labels cannot change
    await claimed.pools.shutdown_kernel(claimed.kernel_id)
    left = await asyncio.to_thread(client.containers.list, all=True)
    assert [c.name for c in left if claimed.pool_kernel_id in str(c.labels)] == []


@pytest.mark.asyncio
async def test_k8s_pod_label_follows(
    k8s_cluster: K8sCluster,
    k8s_kernelspecs: dict[str, Any],
    claim: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kernel_name, kubeconfig = k8s_kernelspecs["shared"]  # the shipped RBAC: patch allowed
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_KUBECONFIG", str(kubeconfig))
    claimed: Claimed = await claim(kernel_name)
    info = await claimed.info()
    pod = raw(
        k8s_cluster.api_client(),
        "GET",
        f"/api/v1/namespaces/{info['kernel_namespace_name']}/pods/{info['container_name']}",
    )
    assert pod["metadata"]["labels"]["kernel-id"] == claimed.kernel_id
    assert pod["metadata"]["annotations"]["gateway-provisioners/kernel-id"] == claimed.kernel_id
    assert any(
        o.startswith("pod ") for o in kernel_objects(k8s_cluster.api_client(), claimed.kernel_id)
    )
    await claimed.pools.shutdown_kernel(claimed.kernel_id)
    await asyncio.to_thread(Reaper.shared().drain, 60)
    for kernel_id in (claimed.kernel_id, claimed.pool_kernel_id):
        assert kernel_objects(k8s_cluster.api_client(), kernel_id) == []


@pytest.mark.asyncio
async def test_slurm_job_is_renamed(slurm_kernelspecs: SlurmKernelspecs, claim: Any) -> None:
    claimed: Claimed = await claim(slurm_kernelspecs.cli)
    info = await claimed.info()
    jobs = await asyncio.to_thread(slurm_kernelspecs.cluster.active_jobs)
    assert f"{info['job_id']} RUNNING {claimed.kernel_id}" in jobs
    await claimed.pools.shutdown_kernel(claimed.kernel_id)
    assert await job_leftovers(slurm_kernelspecs.cluster, [info["job_id"]]) == []
