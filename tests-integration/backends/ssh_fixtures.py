"""pytest fixtures of the ssh suites (gp-distributed): three real sshd on 127.0.0.1-3 and the
kernelspecs of ``jupyter ssh-spec install`` pointing at them.

Registered for every suite by ``pytest_plugins`` in ``tests-integration/conftest.py`` (as every
backend's fixture module is): a test asks for ``ssh_kernelspec`` by name and imports nothing.
``SshKernelspec`` and the process helpers are importable for suites that need their types.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import AsyncKernelManager

from backends.sshd import SshdCluster, sshd_available
from backends.system_packages import cannot_run
from gp_distributed.load_balancing import HostSelector
from gp_distributed.local_process import pid_is_running
from gp_provisioners_core.testing import ConformanceBackend

SSH_KERNEL_NAME = "gp_ssh_test"
SSH_ANY_HOSTS_KERNEL_NAME = "gp_ssh_any_hosts"
SSH_LAUNCH_TIMEOUT = 120
SSH_KERNEL_USER = "alice"


@dataclass
class SshKernelspec:
    """The kernelspecs the ssh suites start kernels from, and the cluster behind them.

    ``kernel_name`` lists the three hosts in its kernel.json; ``any_hosts_kernel_name`` names
    none, so GP_REMOTE_HOSTS or traitlets config decide.
    """

    cluster: SshdCluster
    kernel_name: str
    any_hosts_kernel_name: str
    jupyter_path: Path

    def entry(self, address: str) -> str:
        return self.cluster.hosts[address].entry

    async def start(
        self, kernel_name: str = "", *, env: dict[str, str] | None = None, **kwargs: Any
    ) -> AsyncKernelManager:
        """Start one kernel as KERNEL_USERNAME=alice (plus ``env``); return its manager."""
        manager = AsyncKernelManager(kernel_name=kernel_name or self.kernel_name, **kwargs)
        launch_env = dict(os.environ, KERNEL_USERNAME=SSH_KERNEL_USER, **(env or {}))
        await manager.start_kernel(env=launch_env)
        return manager

    @staticmethod
    async def execute(manager: AsyncKernelManager, code: str, timeout: float = 60) -> str:
        return await ssh_execute(manager, code, timeout)

    @staticmethod
    def processes_of(kernel_ids: Iterable[str]) -> list[str]:
        return processes_of(kernel_ids)

    @staticmethod
    async def wait_no_processes(kernel_ids: Iterable[str], timeout: float = 15) -> list[str]:
        return await wait_no_processes(kernel_ids, timeout)


async def ssh_execute(manager: AsyncKernelManager, code: str, timeout: float = 60) -> str:
    """Run ``code`` in the kernel; return its stdout (raises on an error or a timeout)."""
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=timeout)
        chunks: list[str] = []
        errors: list[str] = []

        def collect(message: dict[str, Any]) -> None:
            if message["msg_type"] == "stream":
                chunks.append(message["content"]["text"])
            elif message["msg_type"] == "error":
                errors.append("\n".join(message["content"]["traceback"]))

        await client.execute_interactive(code, timeout=timeout, output_hook=collect)
    finally:
        client.stop_channels()
    if errors:
        raise AssertionError(f"{code!r} failed in the kernel: {errors[0]}")
    return "".join(chunks)


def processes_of(kernel_ids: Iterable[str]) -> list[str]:
    """``pid args`` of every process whose command line names one of ``kernel_ids``
    (launchers, their wrappers and kernels, on any of the loopback hosts)."""
    ids = [kid for kid in kernel_ids if kid]
    if not ids:
        return []
    listing = subprocess.run(
        ["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True
    ).stdout
    found = []
    for line in listing.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and not parts[1].startswith("Z") and any(k in parts[2] for k in ids):
            found.append(f"{parts[0]} {parts[2][:200]}")
    return found


async def wait_no_processes(kernel_ids: Iterable[str], timeout: float = 15) -> list[str]:
    """Wait until no process names one of ``kernel_ids``; return what is left at ``timeout``."""
    ids = list(kernel_ids)
    deadline = time.monotonic() + timeout
    while True:
        left = processes_of(ids)
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.2)


@pytest.fixture(scope="session")
def sshd_cluster() -> Iterator[SshdCluster]:
    """Three real sshd on 127.0.0.1-3 (one port, keys made for this run); fails without sshd."""
    reason = sshd_available()
    if reason:
        cannot_run(f"ssh suites need a real sshd: {reason}")
    cluster = SshdCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def ssh_kernelspec_install(
    sshd_cluster: SshdCluster, tmp_path_factory: pytest.TempPathFactory
) -> SshKernelspec:
    """The ssh kernelspecs, installed once with ``jupyter-ssh-spec install --prefix`` into a
    temporary JUPYTER_PATH (see ``ssh_kernelspec`` for the environment that uses them)."""
    root = tmp_path_factory.mktemp("ssh-jupyter")
    cli = Path(sys.executable).with_name("jupyter-ssh-spec")
    common = ["--launch-timeout", str(SSH_LAUNCH_TIMEOUT), "--python", sys.executable]
    for name, extra in (
        (SSH_KERNEL_NAME, ["--remote-hosts", ",".join(sshd_cluster.entries())]),
        (SSH_ANY_HOSTS_KERNEL_NAME, []),
    ):
        subprocess.run(
            [str(cli), "install", "--prefix", str(root), "--kernel-name", name, *common, *extra],
            check=True,
            capture_output=True,
        )
    return SshKernelspec(
        sshd_cluster, SSH_KERNEL_NAME, SSH_ANY_HOSTS_KERNEL_NAME, root / "share" / "jupyter"
    )


@pytest.fixture
def ssh_kernelspec(
    ssh_kernelspec_install: SshKernelspec, monkeypatch: pytest.MonkeyPatch
) -> SshKernelspec:
    """The ssh kernelspecs, with the environment of one test pointing at them: JUPYTER_* at
    the temporary prefix, the response manager on 127.0.0.1, and the cluster's client key and
    known_hosts as GP_SSH_* (no ~/.ssh/config).  Restored after the test."""
    cluster = ssh_kernelspec_install.cluster
    root = ssh_kernelspec_install.jupyter_path.parent.parent
    settings = {
        "JUPYTER_PATH": str(ssh_kernelspec_install.jupyter_path),
        "JUPYTER_DATA_DIR": str(root / "data"),
        "JUPYTER_CONFIG_DIR": str(root / "config"),
        "JUPYTER_RUNTIME_DIR": str(root / "runtime"),
        "GP_RESPONSE_IP": "127.0.0.1",
        "GP_SSH_KEY_FILE": str(cluster.key_file),
        "GP_SSH_KNOWN_HOSTS": str(cluster.known_hosts),
        "GP_SSH_CONFIG_FILE": "",
        "GP_SSH_USER": cluster.user,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    for name in ("GP_REMOTE_HOSTS", "GP_LOAD_BALANCING_ALGORITHM", "GP_SSH_PORT"):
        monkeypatch.delenv(name, raising=False)
    return ssh_kernelspec_install


@pytest.fixture
def ssh_host_selector() -> Iterator[HostSelector]:
    """A fresh process-wide HostSelector (rotation, live counts, cool-downs) for one test."""
    yield HostSelector.reset_shared()
    HostSelector.reset_shared()


class SshBackend(ConformanceBackend):
    """What the conformance kit needs of the ssh backend: a hard kill of the kernel process on
    its (loopback) host, and the processes a launch may leave."""

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        assert provisioner_info["assigned_host"], "the kernel must have run on a host"
        os.kill(provisioner_info["kernel_pid"], signal.SIGKILL)

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        pids = {
            provisioner_info["launcher_pid"],
            provisioner_info["kernel_pid"],
            provisioner_info["pid"],
        }
        return [f"pid {pid} still runs" for pid in sorted(pids) if pid and pid_is_running(pid)]
