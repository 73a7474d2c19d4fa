"""A real kernel launch while the response port is attacked.

Idle connections, random bytes, a 10 MB body, a forged payload for the pending kernel id (sealed
with the server's public key but without the launch secret), a v1 payload with legacy
launchers off and a kernel id crafted to forge a log line, from two other addresses (loopback
aliases) than the launcher's: the launch still succeeds, none of it is accepted, the idle
address is capped at max_connections_per_peer, each connection is counted, and the log holds one
line per reason, not one per connection.
(gateway-provisioners 0.5.0 timed out a concurrent launch under such a flood.)

Also: a response manager bound to all interfaces that advertises a host name receives a launch.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator

import pytest
from jupyter_client.manager import AsyncKernelManager

from gp_distributed.cli import main as install_spec
from gp_provisioners_core import ResponseManager
from gp_provisioners_core.protocol import seal_v1, seal_v2
from gp_provisioners_core.testing import execute, isolated_jupyter_paths

KERNEL_NAME = "gp_hostile"
IDLE_CONNECTIONS = 100  # more than max_connections_per_peer (64): the rest are closed at once
GARBAGE_MESSAGES = 20
# The attackers are other hosts than the launcher (127.0.0.1): loopback aliases.
IDLE_SOURCE = ("127.0.0.2", 0)
ATTACK_SOURCE = ("127.0.0.3", 0)


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with isolated_jupyter_paths(tmp_path_factory.mktemp("jupyter")) as prefix:
        install_spec(["install", "--kernel-name", KERNEL_NAME, "--prefix", str(prefix)])
        yield KERNEL_NAME


@pytest.fixture
def response_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ResponseManager, Recorder]]:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    manager = ResponseManager.instance()
    manager.start()
    recorder = Recorder()
    manager.log.addHandler(recorder)
    saved_timeout = manager.read_timeout
    manager.read_timeout = 2.0
    yield manager, recorder
    manager.read_timeout = saved_timeout
    manager.log.removeHandler(recorder)


def conn_info(kernel_id: str) -> dict[str, object]:
    ports = dict(shell_port=1, iopub_port=2, stdin_port=3, hb_port=4, control_port=5)
    return {**ports, "ip": "127.0.0.1", "key": "k", "kernel_id": kernel_id, "pid": 1}


async def exchange(address: tuple[str, int], payload: bytes, newline: bool = True) -> bytes:
    try:
        reader, writer = await asyncio.open_connection(*address, local_addr=ATTACK_SOURCE)
        writer.write(payload + (b"\n" if newline else b""))
        if not newline:
            writer.write_eof()
        await writer.drain()
        reply = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
        return reply
    except (ConnectionError, OSError):  # the server stops reading at the size cap
        return b"reset"


@pytest.mark.asyncio
async def test_launch_succeeds_under_a_flood_and_nothing_hostile_is_accepted(
    kernelspec: str, response_manager: tuple[ResponseManager, Recorder]
) -> None:
    manager, recorder = response_manager
    host, port = manager.response_address.rsplit(":", 1)
    address = (host, int(port))
    kernel_id = str(uuid.uuid4())
    rejected_before = manager.rejected_count

    idle = [
        socket.create_connection(address, source_address=IDLE_SOURCE)
        for _ in range(IDLE_CONNECTIONS)
    ]
    km = AsyncKernelManager(kernel_name=kernelspec)
    env = dict(os.environ, KERNEL_USERNAME="alice")
    launch = asyncio.ensure_future(km.start_kernel(kernel_id=kernel_id, env=env))
    attacks = [
        exchange(address, os.urandom(512).replace(b"\n", b"-")) for _ in range(GARBAGE_MESSAGES)
    ]
    attacks.append(exchange(address, b"B" * (10 * 1024 * 1024), newline=False))
    attacks.append(
        exchange(address, seal_v2(manager.public_key, kernel_id, "forged", conn_info(kernel_id)))
    )
    attacks.append(
        exchange(address, seal_v1(manager.public_key, conn_info(kernel_id)), newline=False)
    )
    forged_id = "x\nERROR kernel started for admin" + "y" * 2000
    forged = {"version": 2, "kernel_id": forged_id, "key": "", "nonce": "", "conn_info": ""}
    attacks.append(exchange(address, base64.b64encode(json.dumps(forged).encode())))
    try:
        replies = await asyncio.gather(*attacks)
        await asyncio.wait_for(launch, timeout=60)
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        result = await execute(client, "print(6 * 7)")
        client.stop_channels()
        assert result.stdout.strip() == "42"
        assert km.provisioner is not None
        assert km.provisioner.connection_info["shell_port"] != 1  # the launcher's, not forged
    finally:
        for sock in idle:
            sock.close()
        if km.has_kernel:
            await km.shutdown_kernel(now=True)

    assert all(reply == b"reset" or b'"rejected"' in reply for reply in replies)
    await asyncio.sleep(manager.read_timeout + 1)  # idle clients hit the read deadline
    hostile = GARBAGE_MESSAGES + 4 + IDLE_CONNECTIONS
    assert manager.rejected_count - rejected_before == hostile
    refusals = [m for m in recorder.messages if "refused" in m]
    # One line per reason (malformed, too-large, bad-secret, legacy-refused,
    # too-many-connections, timeout, empty), not one per connection; the rest are summed up at
    # the end of the interval.
    assert len(refusals) <= 8
    assert sum("(too-many-connections)" in m for m in refusals) == 1
    assert sum("(bad-secret)" in m for m in refusals) == 1
    assert sum("(legacy-refused)" in m for m in refusals) == 1
    assert sum("(too-large)" in m for m in refusals) == 1
    assert not any("ERROR kernel started" in m.split("\n", 1)[-1] for m in refusals if "\n" in m)
    assert all("\n" not in m and len(m) < 600 for m in refusals)


@pytest.mark.asyncio
async def test_bound_to_all_interfaces_advertising_a_name_receives_a_launch(
    kernelspec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = ResponseManager.instance()
    ResponseManager.clear_instance()
    monkeypatch.setenv("GP_RESPONSE_IP", "localhost")  # advertised: a name, as a Service's
    monkeypatch.setenv("GP_RESPONSE_BIND_IP", "*")
    monkeypatch.setenv("GP_RESPONSE_PORT", "0")
    km = AsyncKernelManager(kernel_name=kernelspec)
    try:
        await asyncio.wait_for(
            km.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice")), timeout=60
        )
        manager = ResponseManager.instance()
        assert manager.response_address.startswith("localhost:")
        assert manager.bound_address[0] == ""  # all interfaces
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        assert (await execute(client, "print(6 * 7)")).stdout.strip() == "42"
        client.stop_channels()
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=True)
        ResponseManager.instance().stop_response_manager()
        ResponseManager.clear_instance()
        ResponseManager._instance = saved  # type: ignore[assignment]  # traitlets types it None
