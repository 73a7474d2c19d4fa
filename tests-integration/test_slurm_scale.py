"""Ten kernels at once as Slurm jobs: all ready and executing, one status query per interval
whatever their number, and nothing queued or running once they are shut down."""

from __future__ import annotations

import asyncio
import time

from backends.slurm_kernels import SlurmKernelspecs, job_leftovers
from bench_slurm import count_queries, shutdown, start_kernels
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.testing import execute, provisioner_of
from gp_slurm import SlurmProvisioner

KERNELS = 10
WINDOW = 4.0


async def _job_id_seen_by_kernel(manager: AsyncKernelManager) -> str:
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        result = await execute(client, "import os; print(os.environ['SLURM_JOB_ID'])")
    finally:
        client.stop_channels()
    assert result.error_name == ""
    return result.stdout.strip()


async def test_ten_kernels_as_jobs_with_flat_query_count(
    slurm_kernelspecs: SlurmKernelspecs,
) -> None:
    cluster = slurm_kernelspecs.cluster
    started = time.monotonic()
    managers = await start_kernels(slurm_kernelspecs, slurm_kernelspecs.cli, KERNELS)
    all_ready = time.monotonic() - started
    try:
        job_ids = [provisioner_of(m, SlurmProvisioner).job_id for m in managers]
        assert len(set(job_ids)) == KERNELS
        seen = await asyncio.gather(*(_job_id_seen_by_kernel(m) for m in managers))
        assert list(seen) == job_ids  # each kernel runs inside its own job
        active = {line.split()[0]: line for line in cluster.active_jobs()}
        for manager, job_id in zip(managers, job_ids, strict=True):
            assert f"{job_id} RUNNING {manager.kernel_id}" == active[job_id]
            assert provisioner_of(manager, SlurmProvisioner).assigned_host == cluster.node_name

        watcher = provisioner_of(managers[0], SlurmProvisioner).watcher()
        assert all(provisioner_of(m, SlurmProvisioner).watcher() is watcher for m in managers)
        with_ten = await count_queries(watcher, WINDOW)
        await shutdown(managers[2:])
        with_two = await count_queries(watcher, WINDOW)
        print(
            f"\n{KERNELS} kernels ready in {all_ready:.1f}s; squeue calls in {WINDOW:g}s "
            f"(interval {watcher.interval:g}s): {with_ten} with {KERNELS} kernels, "
            f"{with_two} with 2"
        )
        expected = WINDOW / watcher.interval
        assert with_ten <= expected + 1
        assert with_ten <= with_two + 1
    finally:
        await shutdown([m for m in managers if m.has_kernel])
    assert await job_leftovers(cluster, job_ids) == []
    names = {str(m.kernel_id) for m in managers}
    assert [line for line in cluster.active_jobs() if line.split()[2] in names] == []
