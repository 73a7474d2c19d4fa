"""Launches Slurm (or we) refuse end in seconds with the reason and leave no job behind;
pending reasons are reported while a launch waits."""

from __future__ import annotations

import logging
import time

import pytest
from backends.slurm_kernels import SlurmKernelspecs, job_leftovers
from traitlets.config import Config

from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    LaunchFailedError,
    LaunchTimeoutError,
)

PATHS = ["cli", "rest"]
FAIL_FAST_SECONDS = 5.0


def _kernel(specs: SlurmKernelspecs, path: str) -> str:
    return specs.cli if path == "cli" else specs.rest


async def _jobs_named(specs: SlurmKernelspecs, kernel_id: str) -> list[str]:
    """Unfinished jobs named ``kernel_id`` (waiting for a cancelled one to end)."""
    active = specs.cluster.active_jobs()
    ids = [line.split()[0] for line in active if line.split()[2] == kernel_id]
    return await job_leftovers(specs.cluster, ids)


async def _failed_start(
    specs: SlurmKernelspecs,
    path: str,
    env: dict[str, str],
    error: type[Exception],
    config: Config | None = None,
) -> tuple[Exception, float, str]:
    started = time.monotonic()
    with pytest.raises(error) as failure:
        await specs.start(_kernel(specs, path), env=env, config=config or Config())
    seconds = time.monotonic() - started
    return failure.value, seconds, str(failure.value.kernel_id)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", PATHS)
async def test_missing_partition_fails_fast_with_slurms_reason(
    slurm_kernelspecs: SlurmKernelspecs, path: str
) -> None:
    err, seconds, kernel_id = await _failed_start(
        slurm_kernelspecs, path, {"KERNEL_SLURM_PARTITION": "nosuchpartition"}, LaunchFailedError
    )
    assert seconds < FAIL_FAST_SECONDS
    assert "Invalid partition name specified" in str(err)
    assert kernel_id in str(err)
    assert await _jobs_named(slurm_kernelspecs, kernel_id) == []


@pytest.mark.parametrize("path", PATHS)
async def test_cpus_beyond_our_maximum_are_refused_before_submission(
    slurm_kernelspecs: SlurmKernelspecs, path: str
) -> None:
    err, seconds, kernel_id = await _failed_start(
        slurm_kernelspecs, path, {"KERNEL_SLURM_CPUS": "5"}, InvalidLaunchParameterError
    )
    assert seconds < FAIL_FAST_SECONDS
    assert err.status_code == 400  # type: ignore[attr-defined]
    assert f"KERNEL_SLURM_CPUS='5' for kernel {kernel_id}" in str(err)
    assert "at most 4 CPUs" in str(err)
    assert await _jobs_named(slurm_kernelspecs, kernel_id) == []


@pytest.mark.parametrize("path", PATHS)
async def test_cpus_beyond_the_partition_fail_fast_with_slurms_reason(
    slurm_kernelspecs: SlurmKernelspecs, path: str
) -> None:
    """The operator allows 64 CPUs, the node has 32: sbatch queues the job as PartitionConfig,
    which never clears (the watcher sees it and the launch ends); slurmrestd refuses it."""
    config = Config({"SlurmProvisioner": {"max_cpus": 64}})
    err, seconds, kernel_id = await _failed_start(
        slurm_kernelspecs, path, {"KERNEL_SLURM_CPUS": "64"}, LaunchFailedError, config
    )
    assert seconds < FAIL_FAST_SECONDS
    reasons = ("is PENDING (PartitionConfig)", "partition configuration not available")
    assert any(reason in str(err) for reason in reasons), str(err)
    assert await _jobs_named(slurm_kernelspecs, kernel_id) == []


async def test_pending_reason_is_logged_and_named_at_the_timeout(
    slurm_kernelspecs: SlurmKernelspecs, caplog: pytest.LogCaptureFixture
) -> None:
    """With no pending reason fatal, a job over the partition's time limit waits (its reason
    logged) until the launch timeout, whose error names the job's state; the job is
    cancelled.  (Slurm 22.05 gives PartitionConfig or PartitionTimeLimit for it.)"""
    caplog.set_level(logging.INFO)
    config = Config({"SlurmProvisioner": {"fatal_pending_reasons": set()}})
    env = {
        "KERNEL_SLURM_PARTITION": "short",
        "KERNEL_SLURM_TIME_LIMIT": "10",
        "KERNEL_LAUNCH_TIMEOUT": "3",
    }
    err, seconds, kernel_id = await _failed_start(
        slurm_kernelspecs, "cli", env, LaunchTimeoutError, config
    )
    assert 3 <= seconds < 3 + FAIL_FAST_SECONDS
    assert "PENDING (Partition" in str(err)
    waiting = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert any(kernel_id in m and "PENDING (Partition" in m for m in waiting), waiting
    assert await _jobs_named(slurm_kernelspecs, kernel_id) == []


async def test_over_the_partition_time_limit_fails_fast_by_default(
    slurm_kernelspecs: SlurmKernelspecs,
) -> None:
    env = {"KERNEL_SLURM_PARTITION": "short", "KERNEL_SLURM_TIME_LIMIT": "0:10:00"}
    err, seconds, kernel_id = await _failed_start(slurm_kernelspecs, "rest", env, LaunchFailedError)
    assert seconds < FAIL_FAST_SECONDS
    assert "PENDING (Partition" in str(err)
    assert await _jobs_named(slurm_kernelspecs, kernel_id) == []
