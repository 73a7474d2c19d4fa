"""The conformance suite, run on kernels claimed from a warm pool.

Every test of :class:`~gp_provisioners_core.testing.conformance.ProvisionerConformance` runs on
a kernel that a :class:`~gp_provisioners_core.pool_manager.PooledMultiKernelManager` started
ahead under a pool id and handed to a start request under the requested id: interrupt, restart,
shutdown, crash detection and re-attach from another process must all work after the re-key.
Use it like the plain suite::

    class TestSshPooledConformance(PooledProvisionerConformance):
        @pytest.fixture
        def conformance_backend(self, ...) -> ConformanceBackend: ...

Two more tests: the claimed kernel carries the requested id everywhere the provisioner reports
it, and a request of another user is started cold, never served another user's kernel.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ..pool_manager import PooledMultiKernelManager
from .conformance import ConformanceBackend, ProvisionerConformance, RunningKernel


async def wait_for_pool(manager: PooledMultiKernelManager, ready: int, timeout: float) -> None:
    """Wait until ``ready`` pooled kernels are ready; fail naming the pools' state."""
    deadline = time.monotonic() + timeout
    while manager.pools.stats()["ready"] < ready:
        if time.monotonic() > deadline:
            raise AssertionError(f"the pool did not fill in {timeout:g}s: {manager.pools.stats()}")
        await asyncio.sleep(0.05)


class PooledProvisionerConformance(ProvisionerConformance):
    """The shared tests on pooled kernels.  Subclasses provide ``conformance_backend``."""

    pool_size = 1

    @pytest.fixture
    async def pooled_manager(
        self, conformance_backend: ConformanceBackend
    ) -> AsyncIterator[PooledMultiKernelManager]:
        manager = PooledMultiKernelManager()
        manager.pools.pool_sizes = {conformance_backend.kernel_name: self.pool_size}
        manager.pools.scope = "per-user"  # the suite's requests carry KERNEL_USERNAME
        manager.warm_pools([conformance_backend.kernel_name], conformance_backend.start_env())
        try:
            await wait_for_pool(manager, self.pool_size, conformance_backend.launch_timeout * 2)
            yield manager
        finally:
            await manager.shutdown_all(now=True)

    @pytest.fixture
    async def kernel(
        self, conformance_backend: ConformanceBackend, pooled_manager: PooledMultiKernelManager
    ) -> AsyncIterator[RunningKernel]:
        [pooled_id] = sorted(pooled_manager.pools.pooled_kernel_ids())[:1]
        kernel_id = str(uuid.uuid4())
        await pooled_manager.start_kernel(
            kernel_name=conformance_backend.kernel_name,
            kernel_id=kernel_id,
            env=conformance_backend.start_env(),
        )
        assert pooled_manager.pools.stats()["served"] == 1, "the request was not served pooled"
        manager: Any = pooled_manager.get_kernel(kernel_id)
        pooled_manager.remove_kernel(kernel_id)  # the test drives it; shutdown_all must not
        client = manager.client()
        client.start_channels()
        running = RunningKernel(manager, client, conformance_backend)
        try:
            await client.wait_for_ready(timeout=conformance_backend.launch_timeout)
            assert manager.kernel_id == kernel_id != pooled_id
            yield running
        finally:
            running.client.stop_channels()
            if manager.has_kernel:
                await manager.shutdown_kernel(now=True)

    @pytest.mark.asyncio
    async def test_claimed_kernel_carries_the_requested_id(self, kernel: RunningKernel) -> None:
        info = await kernel.provisioner_info()
        provisioner: Any = kernel.manager.provisioner
        assert provisioner.kernel_id == kernel.manager.kernel_id
        launch_id = info.get("launch_kernel_id")
        if launch_id is not None:  # a gp-* provisioner: the launch id is kept for the launcher
            assert launch_id != kernel.manager.kernel_id

    @pytest.mark.asyncio
    async def test_another_user_starts_cold(
        self, conformance_backend: ConformanceBackend, pooled_manager: PooledMultiKernelManager
    ) -> None:
        before = pooled_manager.pools.pooled_kernel_ids()
        kernel_id = await pooled_manager.start_kernel(
            kernel_name=conformance_backend.kernel_name,
            env=conformance_backend.start_env(KERNEL_USERNAME="conformance-other"),
        )
        try:
            assert kernel_id not in before
            assert before <= pooled_manager.pools.pooled_kernel_ids()  # nothing was claimed
            assert pooled_manager.pools.stats()["served"] == 0
            provisioner: Any = pooled_manager.get_kernel(kernel_id).provisioner
            username = getattr(provisioner, "kernel_username", "conformance-other")
            assert username == "conformance-other"
        finally:
            await pooled_manager.shutdown_kernel(kernel_id, now=True)


__all__ = ["PooledProvisionerConformance", "wait_for_pool"]
