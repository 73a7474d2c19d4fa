"""The ssh connection pool and worker threads, with a stand-in for paramiko's connection."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gp_distributed import ssh
from gp_distributed.ssh import (
    SshConnectError,
    SshConnectionPool,
    SshSettings,
    resolve_target,
    run_script_async,
)
from gp_provisioners_core.testing import loop_ticks


class FakeTransport:
    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


class FakeClient:
    def __init__(self) -> None:
        self.transport = FakeTransport()
        self.closed = False

    def get_transport(self) -> FakeTransport:
        return self.transport

    def close(self) -> None:
        self.closed = True
        self.transport.active = False


TARGET = resolve_target("node1:2222", SshSettings(config_file="", user="gp"))


def run_threads(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work()
        except Exception as err:
            results[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_one_connection_per_host_shared_by_all_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    connects: list[str] = []

    def connect(target: ssh.SshTarget) -> FakeClient:
        connects.append(target.label)
        time.sleep(0.1)
        return FakeClient()

    monkeypatch.setattr(ssh, "connect_client", connect)
    pool = SshConnectionPool()
    other = resolve_target("node2:2222", SshSettings(config_file="", user="gp"))
    clients = run_threads(20, lambda: pool.client(TARGET))
    assert connects == ["gp@node1:2222"]
    assert all(c is clients[0] for c in clients)
    assert pool.client(other) is not clients[0]
    assert pool.is_connected(TARGET)

    clients[0].transport.active = False  # the host dropped the connection
    assert pool.client(TARGET) is not clients[0]
    assert connects == ["gp@node1:2222", "gp@node2:2222", "gp@node1:2222"]
    pool.close_all()
    assert not pool.is_connected(TARGET)


def test_a_failed_connect_is_shared_by_the_threads_waiting_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[float] = []

    def connect(target: ssh.SshTarget) -> FakeClient:
        attempts.append(time.monotonic())
        time.sleep(0.3)
        raise SshConnectError(f"ssh to {target.label} failed: refused")

    monkeypatch.setattr(ssh, "connect_client", connect)
    pool = SshConnectionPool()
    started = time.monotonic()
    results = run_threads(10, lambda: pool.client(TARGET))
    assert all(isinstance(r, SshConnectError) for r in results)
    assert "gp@node1:2222" in str(results[0])
    assert len(attempts) == 1
    assert time.monotonic() - started < 2  # not ten connect attempts one after the other
    with pytest.raises(SshConnectError):  # a later call tries again
        pool.client(TARGET)
    assert len(attempts) == 2


def test_channels_per_connection_are_bounded() -> None:
    pool = SshConnectionPool()
    target = resolve_target("node3", SshSettings(config_file="", max_sessions=2))
    slot = pool.session_slot(target)
    assert slot.acquire(blocking=False)
    assert slot.acquire(blocking=False)
    assert not slot.acquire(blocking=False)
    slot.release()
    slot.release()


async def test_paramiko_work_runs_in_ssh_worker_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def fake_run_script(target: ssh.SshTarget, script: str, timeout: float) -> ssh.RemoteResult:
        seen.append(threading.current_thread().name)
        time.sleep(0.2)
        return ssh.RemoteResult(0, "ok\n", "")

    monkeypatch.setattr(ssh, "run_script", fake_run_script)
    async with loop_ticks() as ticks:
        results = await asyncio.gather(*(run_script_async(TARGET, "true", 5) for _ in range(10)))
    assert [r.stdout for r in results] == ["ok\n"] * 10
    assert all(name.startswith("gp-ssh") for name in seen)
    assert ticks.count >= 5  # the loop kept running while the ssh work waited


def test_connect_errors_name_the_host_and_reason(tmp_path: Path) -> None:
    """A real (refused) connection attempt through paramiko, no sshd needed."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    known = tmp_path / "known_hosts"
    known.write_text("")
    target = resolve_target(
        f"gp@127.0.0.1:{port}", SshSettings(config_file="", known_hosts=str(known))
    )
    started = time.monotonic()
    with pytest.raises(
        SshConnectError, match=rf"gp@127\.0\.0\.1:{port} failed: .*Unable to connect"
    ):
        ssh.connect_client(target)
    assert time.monotonic() - started < 5
    missing = resolve_target(
        "127.0.0.1:22", SshSettings(config_file="", known_hosts=str(tmp_path / "nope"))
    )
    with pytest.raises(SshConnectError, match=r"known_hosts file .*nope does not exist"):
        ssh.connect_client(missing)
