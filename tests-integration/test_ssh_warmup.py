"""A real Jupyter Server warms its ssh connections at start (gp-distributed's server extension).

The server runs as a subprocess with the ssh kernelspecs of the suite (three real sshd on
127.0.0.1-3) and one kernelspec whose only host is a closed port.  Before any kernel is asked
for, each sshd has accepted one connection from the server and runs one idle remote shell for
it (seen from the sshd side: its log and its process tree, and from the server side: ``ss``);
the first kernel then runs a cell over those same connections, and the unreachable host is one
warning while the server serves.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from backends.ssh_fixtures import SshKernelspec
from jupyter_server_helpers import (
    Server,
    new_kernel,
    run,
    start_server,
    stop_server,
    wait_for_log,
)

READY = "ssh warm-up: connection and an idle remote shell ready on"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepted(log: Path) -> int:
    """Connections the sshd of ``log`` authenticated so far."""
    return len(re.findall(r"^.*Accepted publickey for ", log.read_text(), re.MULTILINE))


def _descendants(root: int) -> dict[int, list[str]]:
    """argv of every process below ``root``."""
    parents: dict[int, int] = {}
    argv: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if stat[0] != "Z":
            parents[int(entry)] = int(stat[1])
            argv[int(entry)] = cmdline.decode(errors="replace").split("\0")[:-1]
    found = {}
    for pid in parents:
        ancestor = parents[pid]
        while ancestor > 1 and ancestor != root:
            ancestor = parents.get(ancestor, 0)
        if ancestor == root:
            found[pid] = argv[pid]
    return found


def _remote_shells(listener: int) -> int:
    """The ``/bin/sh -s`` sessions the sshd ``listener`` runs (busy or idle)."""
    return sum(1 for argv in _descendants(listener).values() if argv[-2:] == ["/bin/sh", "-s"])


def _server_connections(server: Server, port: int) -> set[tuple[str, str]]:
    """(local, peer) of the server process's established TCP connections to ``port``."""
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        (fields[2], fields[3])
        for line in listing.splitlines()
        if f"pid={server.process.pid}," in line and len(fields := line.split()) >= 4
    }


async def test_the_server_warms_each_ssh_host_before_its_first_kernel(
    ssh_kernelspec: SshKernelspec, tmp_path: Path
) -> None:
    cluster = ssh_kernelspec.cluster
    down = f"127.0.0.1:{_closed_port()}"  # an entry with a port always means ssh
    extra = tmp_path / "extra"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("jupyter-ssh-spec")),
            "install",
            "--prefix",
            str(extra),
            "--kernel-name",
            "gp_ssh_down",
            f"--remote-hosts={down}",
        ],
        check=True,
        capture_output=True,
    )
    jupyter_path = f"{ssh_kernelspec.jupyter_path}{os.pathsep}{extra / 'share' / 'jupyter'}"
    hosts = list(cluster.hosts.values())
    accepted = {h.address: _accepted(h.log) for h in hosts}
    shells = {h.address: _remote_shells(h.pid) for h in hosts}

    server = start_server(tmp_path, tmp_path / "server.log", env={"JUPYTER_PATH": jupyter_path})
    try:
        for host in hosts:
            assert await wait_for_log(server, f"{READY} {cluster.user}@{host.address}:"), (
                server.log_text()[-3000:]
            )
        assert await wait_for_log(server, f"host {down} (kernelspec gp_ssh_down)")
        log = server.log_text()
        assert log.count(f"host {down} (kernelspec gp_ssh_down)") == 1
        assert "gp_ssh_test" in log.split(f"{READY} {cluster.user}@127.0.0.1:")[1].split("\n")[0]

        # The sshd side, before any kernel was asked for: one new authenticated connection
        # and one more /bin/sh session per host; the server side: one connection per host.
        code, kernels = await server.call("GET", "/api/kernels")
        assert (code, kernels) == (200, [])
        for host in hosts:
            assert _accepted(host.log) == accepted[host.address] + 1, host.address
            assert _remote_shells(host.pid) == shells[host.address] + 1, host.address
        warm = _server_connections(server, cluster.port)
        assert sorted(peer for _, peer in warm) == sorted(h.entry for h in hosts)

        # The first kernel runs a cell over the warm connection: nothing new connects.
        code, specs = await server.call("GET", "/api/kernelspecs")
        assert code == 200
        assert {"gp_ssh_test", "gp_ssh_down"} <= set(specs["kernelspecs"])
        kernel_id = await new_kernel(server, ssh_kernelspec.kernel_name)
        assert (await run(server, kernel_id, "print(6 * 7)"))["stdout"].strip() == "42"
        for host in hosts:
            assert _accepted(host.log) == accepted[host.address] + 1, host.address
        assert _server_connections(server, cluster.port) == warm
        code, _ = await server.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await ssh_kernelspec.wait_no_processes([kernel_id]) == []

        # The warm connections drop while idle (sshd restarted its sessions): the next kernel
        # connects again on its own.
        for host in hosts:
            for pid in _direct_children(host.pid):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _server_connections(server, cluster.port) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        kernel_id = await new_kernel(server, ssh_kernelspec.kernel_name)
        assert (await run(server, kernel_id, "print('again')"))["stdout"].strip() == "again"
        code, _ = await server.call("DELETE", f"/api/kernels/{kernel_id}")
        assert code == 204
        assert await ssh_kernelspec.wait_no_processes([kernel_id]) == []
    finally:
        stop_server(server)


def _direct_children(parent: int) -> list[int]:
    return [pid for pid, _ in _descendants(parent).items() if _parent_of(pid) == parent]


def _parent_of(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError):
        return 0


async def test_warm_up_off_opens_nothing_at_start(
    ssh_kernelspec: SshKernelspec, tmp_path: Path
) -> None:
    """``GP_SSH_WARM_AT_START=false``: the server starts without touching the hosts."""
    hosts = list(ssh_kernelspec.cluster.hosts.values())
    accepted = {h.address: _accepted(h.log) for h in hosts}
    server = start_server(tmp_path, tmp_path / "server.log", env={"GP_SSH_WARM_AT_START": "false"})
    try:
        assert await wait_for_log(server, "ssh warm-up at start off")
        code, _ = await server.call("GET", "/api/kernelspecs")
        assert code == 200
        await asyncio.sleep(1.0)
        assert {h.address: _accepted(h.log) for h in hosts} == accepted
        assert READY not in server.log_text()
    finally:
        stop_server(server)
