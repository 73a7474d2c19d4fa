"""What a kernel's job looks like to Slurm and from inside: the requested resources (CPUs,
memory, time, a GPU of a type), the job name, the batch host, and an environment holding only
what is allowed to travel; the launch secret is neither in the script nor in the kernel."""

from __future__ import annotations

import json
import subprocess

import pytest
from backends.slurm import GPU_TYPE
from backends.slurm_kernels import SlurmKernelspecs, job_leftovers
from traitlets.config import Config

from gp_provisioners_core.testing import execute

GPU_CONFIG = Config(
    {"SlurmProvisioner": {"max_gpus": 1, "allowed_gpu_types": [GPU_TYPE], "max_cpus": 2}}
)
REQUEST = {
    "KERNEL_EXTRA": "travels",
    "KERNEL_SLURM_CPUS": "2",
    "KERNEL_SLURM_MEMORY": "1G",
    "KERNEL_SLURM_TIME_LIMIT": "1:30:00",
    "KERNEL_SLURM_GPUS": f"{GPU_TYPE}:1",
}


def _scontrol(specs: SlurmKernelspecs, *args: str) -> str:
    return subprocess.run(
        ["scontrol", *args],
        capture_output=True,
        text=True,
        env=specs.cluster.env(),
        check=True,
    ).stdout


@pytest.mark.parametrize("path", ["cli", "rest"])
async def test_job_resources_name_and_environment(
    slurm_kernelspecs: SlurmKernelspecs, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GP_TEST_SERVER_ONLY", "do-not-travel")
    kernel_name = slurm_kernelspecs.cli if path == "cli" else slurm_kernelspecs.rest
    manager = await slurm_kernelspecs.start(kernel_name, env=REQUEST, config=GPU_CONFIG)
    provisioner = manager.provisioner
    job_id = provisioner.job_id  # type: ignore[union-attr]
    try:
        assert provisioner.assigned_host == slurm_kernelspecs.cluster.node_name  # type: ignore[union-attr]
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            code = "import json, os; print(json.dumps(dict(os.environ)))"
            seen = json.loads((await execute(client, code)).stdout)
        finally:
            client.stop_channels()
        assert seen["KERNEL_EXTRA"] == "travels"
        assert seen["KERNEL_ID"] == manager.kernel_id
        assert seen["SLURM_JOB_ID"] == job_id
        assert seen["SLURM_CPUS_ON_NODE"] == "2"
        assert "CUDA_VISIBLE_DEVICES" in seen  # Slurm granted the GPU
        assert "GP_TEST_SERVER_ONLY" not in seen
        assert "JUPYTER_PATH" not in seen
        assert "GP_LAUNCH_SECRET" not in seen  # the launcher keeps it from the kernel

        shown = _scontrol(slurm_kernelspecs, "show", "job", job_id)
        for expected in (
            f"JobName={manager.kernel_id}",
            "NumCPUs=2",
            "TimeLimit=01:30:00",
            "MinMemoryNode=1G",
            f"TresPerNode=gres:gpu:{GPU_TYPE}:1",
        ):
            assert expected in shown, shown
        if path == "cli":  # slurmrestd v0.0.38 ignores "requeue": false (Slurm 22.05)
            assert "Requeue=0" in shown, shown
        script = _scontrol(slurm_kernelspecs, "write", "batch_script", job_id, "-")
        assert script.startswith("#!/bin/sh\nexec ")
        assert f"--kernel-id {manager.kernel_id}" in script
        assert "KERNEL_" not in script  # the environment travels beside the script
    finally:
        await manager.shutdown_kernel()
    assert await job_leftovers(slurm_kernelspecs.cluster, [job_id]) == []
