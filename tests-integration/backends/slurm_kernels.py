"""Helpers of the gp-slurm suites and bench: kernelspecs on the test cluster, the conformance
backend, and the check that no job is left.  The pytest fixtures are in ``slurm_fixtures``."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from backends.slurm import SlurmCluster
from gp_provisioners_core.testing import ConformanceBackend

CLI_KERNEL = "gp_slurm_cli"
REST_KERNEL = "gp_slurm_rest"
LAUNCH_TIMEOUT = 60
STATUS_INTERVAL = 1.0


@dataclass
class SlurmKernelspecs:
    cluster: SlurmCluster
    cli: str
    rest: str
    token_file: Path

    async def start(
        self, kernel_name: str, env: dict[str, str] | None = None, **kwargs: Any
    ) -> AsyncKernelManager:
        manager = AsyncKernelManager(kernel_name=kernel_name, **kwargs)
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice", **(env or {})))
        return manager


@dataclass
class SlurmConformanceBackend(ConformanceBackend):
    """The conformance suite's view of the cluster: kill like a crash, find what is left."""

    cluster: SlurmCluster | None = field(default=None)

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        for pid in (provisioner_info["pid"], provisioner_info["kernel_pid"]):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        assert self.cluster is not None
        return await job_leftovers(self.cluster, [provisioner_info["job_id"]])


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


async def job_leftovers(
    cluster: SlurmCluster, job_ids: list[str], timeout: float = 10.0
) -> list[str]:
    """Jobs among ``job_ids`` Slurm still holds unfinished, waiting up to ``timeout`` for
    them to end (a cancelled job is 'completing' for a moment)."""
    wanted = {str(job_id) for job_id in job_ids if job_id}
    deadline = time.monotonic() + timeout
    while True:
        active = await asyncio.to_thread(cluster.active_jobs)
        left = [line for line in active if line.split()[0] in wanted]
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.2)


def install_kernelspecs(cluster: SlurmCluster, root: Path) -> SlurmKernelspecs:
    """Install the sbatch and the slurmrestd kernelspec under ``root`` with the real CLI."""
    token_file = root / "slurm.jwt"
    token_file.write_text(cluster.token() + "\n")
    token_file.chmod(0o600)
    cli = Path(sys.executable).with_name("jupyter-slurm-spec")
    common = [
        "--launch-timeout",
        str(LAUNCH_TIMEOUT),
        "--python",
        sys.executable,
        "--slurm-conf",
        str(cluster.conf),
        "--output-dir",
        str(cluster.output_dir),
        "--allowed-partitions",
        "short,nosuchpartition",
        "--status-interval",
        str(STATUS_INTERVAL),
    ]
    rest = ["--rest-url", cluster.rest_url, "--rest-token-file", str(token_file)]
    for name, extra in ((CLI_KERNEL, []), (REST_KERNEL, rest)):
        subprocess.run(
            [str(cli), "install", "--prefix", str(root), "--kernel-name", name, *common, *extra],
            check=True,
            capture_output=True,
        )
    return SlurmKernelspecs(cluster, CLI_KERNEL, REST_KERNEL, token_file)


@contextmanager
def kernelspec_environment(root: Path) -> Iterator[None]:
    """Make the kernelspecs under ``root`` visible and the response server listen on
    127.0.0.1 (any port) for the block; restore the environment afterwards."""
    settings = {
        "JUPYTER_PATH": os.pathsep.join(
            p for p in (str(root / "share" / "jupyter"), os.environ.get("JUPYTER_PATH", "")) if p
        ),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_RESPONSE_PORT": "0",
    }
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
