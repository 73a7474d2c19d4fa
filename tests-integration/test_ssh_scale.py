"""gp-distributed over real sshd: 30 kernels at once across three hosts.

Round-robin gives each host 10; least-connection then fills the host that was emptied; one
pooled ssh connection per host serves every kernel; no paramiko call runs on the event loop;
nothing is left running once all are shut down.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections import Counter
from typing import Any

import paramiko
import pytest
from backends.ssh_fixtures import SshKernelspec
from backends.sshd import SshdCluster

from gp_distributed import DistributedProvisioner
from gp_distributed.load_balancing import HostSelector
from gp_provisioners_core.testing import provisioner_of

KERNELS = 30
ADDRESSES = ("127.0.0.1", "127.0.0.2", "127.0.0.3")


def _accepted_logins(cluster: SshdCluster) -> dict[str, int]:
    return {
        address: host.log.read_text().count("Accepted publickey")
        for address, host in cluster.hosts.items()
    }


@pytest.fixture
def paramiko_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads that opened ssh connections and channels during the test."""
    seen: list[str] = []
    connect, open_session = paramiko.SSHClient.connect, paramiko.Transport.open_session

    def recording_connect(self: paramiko.SSHClient, *args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return connect(self, *args, **kwargs)

    def recording_open_session(self: paramiko.Transport, *args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return open_session(self, *args, **kwargs)

    monkeypatch.setattr(paramiko.SSHClient, "connect", recording_connect)
    monkeypatch.setattr(paramiko.Transport, "open_session", recording_open_session)
    return seen


async def test_thirty_kernels_round_robin_then_least_connection(
    ssh_kernelspec: SshKernelspec,
    ssh_host_selector: HostSelector,
    paramiko_threads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = ssh_kernelspec.cluster
    logins_before = _accepted_logins(cluster)
    monkeypatch.setenv("GP_LOAD_BALANCING_ALGORITHM", "round-robin")
    loop_thread = threading.current_thread().name

    started = time.monotonic()
    managers = await asyncio.gather(*(ssh_kernelspec.start() for _ in range(KERNELS)))
    launch_seconds = time.monotonic() - started
    all_ids = [m.kernel_id for m in managers]
    try:
        by_host = Counter(provisioner_of(m, DistributedProvisioner).assigned_host for m in managers)
        assert by_host == {ssh_kernelspec.entry(a): KERNELS // 3 for a in ADDRESSES}
        for manager in managers:
            address = provisioner_of(manager, DistributedProvisioner).assigned_host.rsplit(":", 1)[
                0
            ]
            assert manager.get_connection_info()["ip"] == address

        outputs = await asyncio.gather(
            *(ssh_kernelspec.execute(m, f"print({i} * 2)") for i, m in enumerate(managers))
        )
        assert [o.strip() for o in outputs] == [str(i * 2) for i in range(KERNELS)]
        assert all(await asyncio.gather(*(m.is_alive() for m in managers)))

        # Empty one host, then least-connection sends the next kernels there.
        emptied = ssh_kernelspec.entry("127.0.0.3")
        on_emptied = [
            m
            for m in managers
            if provisioner_of(m, DistributedProvisioner).assigned_host == emptied
        ]
        await asyncio.gather(*(m.shutdown_kernel() for m in on_emptied))
        assert await ssh_kernelspec.wait_no_processes([m.kernel_id for m in on_emptied]) == []
        managers = [m for m in managers if m not in on_emptied]
        monkeypatch.setenv("GP_LOAD_BALANCING_ALGORITHM", "least-connection")
        more = await asyncio.gather(*(ssh_kernelspec.start() for _ in range(5)))
        all_ids += [m.kernel_id for m in more]
        managers += more
        assert [provisioner_of(m, DistributedProvisioner).assigned_host for m in more] == [
            emptied
        ] * 5
    finally:
        stopping = time.monotonic()
        await asyncio.gather(*(m.shutdown_kernel() for m in managers), return_exceptions=True)
        shutdown_seconds = time.monotonic() - stopping
    assert await ssh_kernelspec.wait_no_processes(all_ids) == []
    assert [p for p in os.listdir("/tmp") if any(k in p for k in all_ids)] == []

    # One connection per host served all of them, and no paramiko call ran on the loop.
    new_logins = {
        address: count - logins_before[address]
        for address, count in _accepted_logins(cluster).items()
    }
    assert all(n <= 1 for n in new_logins.values()), new_logins
    assert paramiko_threads
    assert loop_thread not in paramiko_threads
    assert all(name.startswith("gp-ssh") for name in paramiko_threads), set(paramiko_threads)
    print(
        f"{KERNELS} kernels over ssh started in {launch_seconds:.1f}s, "
        f"{len(managers)} shut down in {shutdown_seconds:.1f}s; new ssh logins {new_logins}"
    )
