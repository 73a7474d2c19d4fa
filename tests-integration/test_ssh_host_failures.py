"""gp-distributed over real sshd: hosts that refuse, are not trusted, or go down mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import pytest
from backends.ssh_fixtures import SshKernelspec
from jupyter_client.manager import AsyncKernelManager

from gp_distributed import DistributedProvisioner
from gp_distributed.load_balancing import HostSelector
from gp_provisioners_core.errors import LaunchFailedError, LaunchTimeoutError
from gp_provisioners_core.testing import provisioner_of


def _closed_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("failure", ["refused", "untrusted"])
async def test_unreachable_host_fails_fast_and_cools_down(
    ssh_kernelspec: SshKernelspec,
    ssh_host_selector: HostSelector,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    failure: str,
) -> None:
    good = ssh_kernelspec.entry("127.0.0.2")
    if failure == "refused":
        bad = f"127.0.0.9:{_closed_port('127.0.0.9')}"
        expected = r"Unable to connect to port \d+ on 127\.0\.0\.9"
    else:
        bad = ssh_kernelspec.entry("127.0.0.1")
        known = tmp_path / "known_hosts"
        lines = ssh_kernelspec.cluster.known_hosts.read_text().splitlines()
        known.write_text("\n".join(line for line in lines if "127.0.0.1" not in line) + "\n")
        monkeypatch.setenv("GP_SSH_KNOWN_HOSTS", str(known))
        expected = r"127\.0\.0\.1.*not found in known_hosts"
    monkeypatch.setenv("GP_REMOTE_HOSTS", f"{bad},{good}")
    monkeypatch.setenv("GP_LOAD_BALANCING_ALGORITHM", "round-robin")
    kernel_name = ssh_kernelspec.any_hosts_kernel_name

    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failed:
        await ssh_kernelspec.start(kernel_name)
    assert time.monotonic() - started < 5
    message = str(failed.value)
    assert f"cannot reach host {bad} over ssh" in message
    assert re.search(expected, message), message
    assert ssh_host_selector.is_cooling(bad)
    assert ssh_host_selector.live_kernels(bad) == 0

    managers = [await ssh_kernelspec.start(kernel_name) for _ in range(2)]
    try:
        assert [provisioner_of(m, DistributedProvisioner).assigned_host for m in managers] == [
            good,
            good,
        ]
    finally:
        await asyncio.gather(*(m.shutdown_kernel() for m in managers))


async def test_host_down_mid_run(
    ssh_kernelspec: SshKernelspec, ssh_host_selector: HostSelector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop one host's sshd and kill its kernels: each of them is reported dead by its first
    poll; the others live on; new kernels go to the other hosts; shutdown does not hang."""
    cluster = ssh_kernelspec.cluster
    monkeypatch.setenv("GP_LOAD_BALANCING_ALGORITHM", "round-robin")
    managers = list(await asyncio.gather(*(ssh_kernelspec.start() for _ in range(6))))
    down = ssh_kernelspec.entry("127.0.0.3")
    on_down = [
        m for m in managers if provisioner_of(m, DistributedProvisioner).assigned_host == down
    ]
    others = [m for m in managers if m not in on_down]
    assert len(on_down) == 2
    all_ids = [m.kernel_id for m in managers]
    # Their files stay on the host that went away (nobody can reach it to remove them).
    stranded = [
        os.path.dirname(provisioner_of(m, DistributedProvisioner).remote_log) for m in on_down
    ]
    try:
        cluster.stop_host("127.0.0.3")
        for manager in on_down:
            os.killpg(provisioner_of(manager, DistributedProvisioner).launcher_pgid, signal.SIGKILL)
        for manager in on_down:
            polled = time.monotonic()
            assert await provisioner_of(manager, DistributedProvisioner).poll() is not None
            assert time.monotonic() - polled < 5
            assert not await manager.is_alive()
        assert ssh_host_selector.is_cooling(down)
        for manager in others:
            assert await provisioner_of(manager, DistributedProvisioner).poll() is None

        more = list(await asyncio.gather(*(ssh_kernelspec.start() for _ in range(4))))
        managers += more
        all_ids += [m.kernel_id for m in more]
        assert down not in {provisioner_of(m, DistributedProvisioner).assigned_host for m in more}
        outputs = await asyncio.gather(*(ssh_kernelspec.execute(m, "print('up')") for m in more))
        assert [o.strip() for o in outputs] == ["up"] * 4
    finally:
        stopping = time.monotonic()
        await asyncio.gather(*(m.shutdown_kernel() for m in managers), return_exceptions=True)
        shutdown_seconds = time.monotonic() - stopping
        cluster.start_host("127.0.0.3")
    assert shutdown_seconds < 30
    assert await ssh_kernelspec.wait_no_processes(all_ids) == []
    for run_dir in stranded:
        assert os.path.isdir(run_dir)
        shutil.rmtree(run_dir)
    assert [p for p in os.listdir("/tmp") if any(k in p for k in all_ids)] == []


async def test_launch_timeout_says_what_the_remote_launcher_wrote(
    ssh_kernelspec: SshKernelspec,
) -> None:
    host = ssh_kernelspec.entry("127.0.0.3")
    name = "gp_ssh_silent"
    folder = ssh_kernelspec.jupyter_path / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    code = "import time; print('waiting on purpose', flush=True); time.sleep(120)"
    spec = {
        "argv": [sys.executable, "-c", code, "--kernel-id", "{kernel_id}"],
        "display_name": "silent",
        "language": "python",
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": "distributed-provisioner",
                "config": {"remote_hosts": [host], "launch_timeout": 3},
            }
        },
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    manager = AsyncKernelManager(kernel_name=name)
    with pytest.raises(LaunchTimeoutError) as failed:
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice"))
    message = str(failed.value)
    assert "phase 'connection-info-received'" in message
    assert f"The launcher on {host} still runs" in message
    assert "waiting on purpose" in message
    assert await ssh_kernelspec.wait_no_processes([manager.kernel_id]) == []
