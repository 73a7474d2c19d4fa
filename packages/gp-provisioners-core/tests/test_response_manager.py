"""The response manager over real TCP on loopback: what it accepts, what it refuses, and that
nothing a client sends can disturb a pending launch."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Iterator

import pytest

from gp_provisioners_core.protocol import seal_v1, seal_v2
from gp_provisioners_core.response_manager import ResponseManager

KERNEL_ID = "0f0e0d0c-aaaa-bbbb-cccc-000000000001"


def conn_info(kernel_id: str = KERNEL_ID) -> dict[str, object]:
    return {
        "shell_port": 50001,
        "iopub_port": 50002,
        "stdin_port": 50003,
        "hb_port": 50004,
        "control_port": 50005,
        "ip": "127.0.0.1",
        "key": "session-key",
        "transport": "tcp",
        "signature_scheme": "hmac-sha256",
        "kernel_name": "",
        "pid": 1234,
        "pgid": 1234,
        "comm_port": 50006,
        "kernel_id": kernel_id,
    }


class Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def manager() -> Iterator[tuple[ResponseManager, Recorder]]:
    logger = logging.getLogger(f"test-response-manager-{os.getpid()}")
    recorder = Recorder()
    logger.addHandler(recorder)
    logger.setLevel(logging.DEBUG)
    rm = ResponseManager(response_ip="127.0.0.1", response_port=0, key_size=2048, log=logger)
    rm.read_timeout = 1.0
    rm.start()
    yield rm, recorder
    rm.stop_response_manager()
    logger.removeHandler(recorder)


async def send(rm: ResponseManager, payload: bytes, *, newline: bool = True) -> dict[str, str]:
    host, port = rm.response_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    writer.write(payload + (b"\n" if newline else b""))
    if not newline:
        writer.write_eof()
    await writer.drain()
    reply = await asyncio.wait_for(reader.readline(), timeout=5)
    writer.close()
    return json.loads(reply) if reply else {}


@pytest.mark.asyncio
async def test_v2_message_with_the_launch_secret_is_accepted(manager):
    rm, _ = manager
    rm.register_event(KERNEL_ID, "the-secret")
    reply = await send(rm, seal_v2(rm.public_key, KERNEL_ID, "the-secret", conn_info()))
    assert reply == {"status": "accepted"}
    received = await asyncio.wait_for(rm.get_connection_info(KERNEL_ID), timeout=5)
    assert received["shell_port"] == 50001
    assert received["pid"] == 1234


@pytest.mark.asyncio
async def test_wrong_secret_unknown_kernel_and_replay_are_refused(manager):
    rm, recorder = manager
    rm.register_event(KERNEL_ID, "the-secret")
    forged = await send(rm, seal_v2(rm.public_key, KERNEL_ID, "guessed", conn_info()))
    other = "0f0e0d0c-aaaa-bbbb-cccc-000000000002"
    unknown = await send(rm, seal_v2(rm.public_key, other, "x", conn_info(other)))
    genuine = seal_v2(rm.public_key, KERNEL_ID, "the-secret", conn_info())
    accepted = await send(rm, genuine)
    replayed = await send(rm, genuine)
    assert forged == {"status": "rejected", "reason": "bad-secret"}
    assert unknown == {"status": "rejected", "reason": "unknown-kernel"}
    assert accepted == {"status": "accepted"}
    assert replayed == {"status": "rejected", "reason": "replayed"}
    assert (await rm.get_connection_info(KERNEL_ID))["pid"] == 1234
    assert len([m for m in recorder.messages if "refused" in m]) == 3
    assert not any("the-secret" in m or "guessed" in m for m in recorder.messages)


@pytest.mark.asyncio
async def test_v1_payload_needs_legacy_opt_in(manager):
    rm, recorder = manager
    rm.register_event(KERNEL_ID, "the-secret", allow_legacy=False)
    refused = await send(rm, seal_v1(rm.public_key, conn_info()), newline=False)
    assert refused == {"status": "rejected", "reason": "legacy-refused"}
    rm.register_event(KERNEL_ID, "the-secret", allow_legacy=True)
    accepted = await send(rm, seal_v1(rm.public_key, conn_info()), newline=False)
    assert accepted == {"status": "accepted"}
    assert (await rm.get_launch_message(KERNEL_ID)).version == 1
    assert any("legacy v1 protocol" in m for m in recorder.messages)


@pytest.mark.asyncio
async def test_a_message_for_another_key_is_undecryptable(manager):
    rm, _ = manager
    rm.register_event(KERNEL_ID, "the-secret")
    stranger = ResponseManager(response_ip="127.0.0.1", response_port=0, key_size=2048)
    try:
        message = seal_v2(stranger.public_key, KERNEL_ID, "the-secret", conn_info())
    finally:
        stranger.stop_response_manager()
    assert await send(rm, message) == {"status": "rejected", "reason": "undecryptable"}


@pytest.mark.asyncio
async def test_garbage_oversize_and_idle_clients_do_not_delay_a_launch(manager):
    rm, recorder = manager
    rm.register_event(KERNEL_ID, "the-secret")
    host, port = rm.response_address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(50)]
    try:
        garbage = await send(rm, os.urandom(2048).replace(b"\n", b"x"))
        try:  # the server stops reading at the cap, so the sender may see a reset
            huge = await send(rm, b"A" * (10 * 1024 * 1024), newline=False)
        except ConnectionError:
            huge = {"status": "rejected", "reason": "too-large"}
        not_json = await send(rm, b"aGVsbG8=")
        started = asyncio.get_running_loop().time()
        accepted = await send(rm, seal_v2(rm.public_key, KERNEL_ID, "the-secret", conn_info()))
        took = asyncio.get_running_loop().time() - started
    finally:
        for sock in idle:
            sock.close()
    assert garbage["status"] == huge["status"] == not_json["status"] == "rejected"
    assert huge["reason"] == "too-large"
    assert sum("(too-large)" in m for m in recorder.messages) == 1
    assert accepted == {"status": "accepted"}
    assert took < rm.read_timeout, "idle clients must not hold up a genuine launcher"
    await asyncio.sleep(rm.read_timeout + 0.5)  # the idle ones time out, each logged once
    timeouts = [m for m in recorder.messages if "(timeout)" in m or "(empty)" in m]
    assert len(timeouts) == 50


def test_port_taken_moves_to_the_next_and_says_so():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    logger = logging.getLogger("test-port-taken")
    recorder = Recorder()
    logger.addHandler(recorder)
    rm = ResponseManager(response_ip="127.0.0.1", response_port=taken, key_size=2048, log=logger)
    try:
        rm.start()
        assert int(rm.response_address.rsplit(":", 1)[1]) != taken
        assert any(f"port {taken}" in m and "instead" in m for m in recorder.messages)
    finally:
        rm.stop_response_manager()
        blocker.close()


def test_ipv6_loopback_is_served():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 is not configured here")
    rm = ResponseManager(response_ip="::1", response_port=0, key_size=2048)
    try:
        rm.register_event(KERNEL_ID, "s6")
        assert rm.response_address.startswith("[::1]:")
        reply = asyncio.run(send(rm, seal_v2(rm.public_key, KERNEL_ID, "s6", conn_info())))
        assert reply == {"status": "accepted"}
    finally:
        rm.stop_response_manager()


def test_bad_response_ip_names_the_value():
    with pytest.raises(Exception, match="not-an-ip"):
        ResponseManager(response_ip="not-an-ip")
