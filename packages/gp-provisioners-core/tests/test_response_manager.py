"""The response manager over real TCP on loopback: what it accepts, what it refuses, and that
nothing a client sends can disturb a pending launch."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Iterator

import pytest
from traitlets import TraitError
from traitlets.config import Config

from gp_provisioners_core.protocol import seal_v1, seal_v2
from gp_provisioners_core.response_manager import ResponseManager, ResponseManagerConfigError
from gp_provisioners_core.testing import loop_ticks

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
    return await send_to((host.strip("[]"), int(port)), payload, newline=newline)


async def send_to(
    address: tuple[str, int], payload: bytes, *, newline: bool = True
) -> dict[str, str]:
    reader, writer = await asyncio.open_connection(*address)
    writer.write(payload + (b"\n" if newline else b""))
    if not newline:
        writer.write_eof()
    await writer.drain()
    reply = await asyncio.wait_for(reader.readline(), timeout=5)
    writer.close()
    return json.loads(reply) if reply else {}


@pytest.mark.asyncio
async def test_v2_message_with_the_launch_secret_is_accepted(
    manager: tuple[ResponseManager, Recorder],
) -> None:
    rm, _ = manager
    rm.register_event(KERNEL_ID, "the-secret")
    reply = await send(rm, seal_v2(rm.public_key, KERNEL_ID, "the-secret", conn_info()))
    assert reply == {"status": "accepted"}
    received = await asyncio.wait_for(rm.get_connection_info(KERNEL_ID), timeout=5)
    assert received["shell_port"] == 50001
    assert received["pid"] == 1234


@pytest.mark.asyncio
async def test_wrong_secret_unknown_kernel_and_replay_are_refused(
    manager: tuple[ResponseManager, Recorder],
) -> None:
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
async def test_v1_payload_needs_legacy_opt_in(manager: tuple[ResponseManager, Recorder]) -> None:
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
async def test_a_message_for_another_key_is_undecryptable(
    manager: tuple[ResponseManager, Recorder],
) -> None:
    rm, _ = manager
    rm.register_event(KERNEL_ID, "the-secret")
    stranger = ResponseManager(response_ip="127.0.0.1", response_port=0, key_size=2048)
    try:
        message = seal_v2(stranger.public_key, KERNEL_ID, "the-secret", conn_info())
    finally:
        stranger.stop_response_manager()
    assert await send(rm, message) == {"status": "rejected", "reason": "undecryptable"}


@pytest.mark.asyncio
async def test_garbage_oversize_and_idle_clients_do_not_delay_a_launch(
    manager: tuple[ResponseManager, Recorder],
) -> None:
    rm, recorder = manager
    rm.register_event(KERNEL_ID, "the-secret")
    before = rm.rejected_count
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
    await asyncio.sleep(rm.read_timeout + 0.5)  # the idle ones are closed or time out
    assert rm.rejected_count - before == 50 + 3
    # Counted one by one, logged once per reason (the rest go into a summary line later).
    timeouts = [m for m in recorder.messages if "(timeout)" in m or "(empty)" in m]
    assert 1 <= len(timeouts) <= 2


@pytest.mark.asyncio
async def test_rejections_are_summed_up_per_reason_and_interval(
    manager: tuple[ResponseManager, Recorder],
) -> None:
    rm, recorder = manager
    rm.rejection_log_interval = 0.5
    for _ in range(30):
        await send(rm, b"garbage!")
    await send(rm, base64.b64encode(b'{"version": 7}'))
    await asyncio.sleep(1.6)  # the interval ends; the periodic flush writes the summary
    malformed = [m for m in recorder.messages if "(malformed)" in m]
    # the first refusal with its detail, then summaries: one per interval the sends spanned
    # (one on an idle machine; a loaded one may spread the 30 sends over a few intervals)
    first, *summaries = malformed
    assert "more connection(s)" not in first
    counted = [re.search(r"refused (\d+) more connection\(s\) \(malformed\)", m) for m in summaries]
    assert all(counted), summaries
    assert sum(int(m.group(1)) for m in counted if m) == 29
    assert len(summaries) <= 5, summaries  # summed up, not a line per connection
    assert sum("(unsupported-version)" in m for m in recorder.messages) == 1
    assert rm.rejected_count >= 31


@pytest.mark.asyncio
async def test_a_crafted_kernel_id_cannot_forge_a_log_line(
    manager: tuple[ResponseManager, Recorder],
) -> None:
    rm, recorder = manager
    forged = "k\nWARNING root: kernel admin started" + "x" * 5000
    envelope = {"version": 2, "kernel_id": forged, "key": "", "nonce": "", "conn_info": ""}
    reply = await send(rm, base64.b64encode(json.dumps(envelope).encode()))
    assert reply == {"status": "rejected", "reason": "malformed"}
    line = next(m for m in recorder.messages if "(malformed)" in m)
    assert "\n" not in line  # on one line,
    assert "\\n" in line  # with the newline escaped
    assert len(line) < 400
    assert "chars)" in line  # and says it was cut


@pytest.mark.asyncio
async def test_one_peer_cannot_take_every_connection(
    manager: tuple[ResponseManager, Recorder],
) -> None:
    rm, recorder = manager
    rm.max_connections_per_peer = 5
    rm.register_event(KERNEL_ID, "the-secret")
    host, port = rm.response_address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(5)]
    try:
        await asyncio.sleep(0.2)
        try:  # the sixth connection from this address is closed at once
            crowded = await send(rm, b"x")
        except ConnectionError:
            crowded = {}
        assert crowded == {}
        assert any("too many connections" in m for m in recorder.messages)
    finally:
        for sock in idle:
            sock.close()
    await asyncio.sleep(0.2)
    accepted = await send(rm, seal_v2(rm.public_key, KERNEL_ID, "the-secret", conn_info()))
    assert accepted == {"status": "accepted"}


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 50_000,
        base64.b64encode(b"[" * 40_000),
        base64.b64encode(b"\xff\xfe\x00garbage"),
        base64.b64encode(json.dumps({"version": 2, "kernel_id": 5}).encode()),
        base64.b64encode(json.dumps({"version": [2]}).encode()),
        base64.b64encode(json.dumps({"version": 1, "key": {}, "conn_info": []}).encode()),
    ],
    ids=["nested", "nested-json", "not-utf8", "id-not-a-string", "version-list", "v1-types"],
)
@pytest.mark.asyncio
async def test_any_input_gets_a_status_reply(
    manager: tuple[ResponseManager, Recorder], payload: bytes
) -> None:
    rm, _ = manager
    rm.register_event(KERNEL_ID, "s", allow_legacy=True)
    reply = await send(rm, payload)
    assert reply["status"] == "rejected"
    assert reply["reason"] in ("malformed", "unsupported-version", "too-large")


def test_bound_to_all_interfaces_advertising_a_name_receives_a_launch() -> None:
    rm = ResponseManager(
        response_ip="localhost", response_bind_ip="*", response_port=0, key_size=2048
    )
    try:
        rm.register_event(KERNEL_ID, "s7")
        assert rm.response_address.startswith("localhost:")
        assert rm.bound_address[0] == ""
        port = rm.bound_address[1]
        # A launcher resolves the advertised name; any local address reaches the server.
        addresses = ["127.0.0.1", "127.0.0.2"]
        if _has_ipv6_loopback():
            addresses.append("::1")  # one dual-stack socket: the same port over IPv6
        for address in addresses:
            other = asyncio.run(send_to((address, port), b"not base64!"))
            assert other == {"status": "rejected", "reason": "malformed"}
        reply = asyncio.run(send(rm, seal_v2(rm.public_key, KERNEL_ID, "s7", conn_info())))
        assert reply == {"status": "accepted"}
    finally:
        rm.stop_response_manager()


def test_bind_address_differs_from_the_advertised_one() -> None:
    rm = ResponseManager(
        response_ip="10.255.255.1", response_bind_ip="127.0.0.1", response_port=0, key_size=2048
    )
    try:
        rm.register_event(KERNEL_ID, "s8")
        assert rm.response_address.startswith("10.255.255.1:")
        message = seal_v2(rm.public_key, KERNEL_ID, "s8", conn_info())
        assert asyncio.run(send_to(("127.0.0.1", rm.bound_address[1]), message)) == {
            "status": "accepted"
        }
    finally:
        rm.stop_response_manager()


@pytest.mark.asyncio
async def test_start_async_makes_the_key_off_the_callers_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gp_provisioners_core import protocol

    threads: list[str] = []
    generate = protocol.ServerKeyPair.generate  # the real one, bound before it is patched

    def spy(cls: type[protocol.ServerKeyPair], key_size: int) -> protocol.ServerKeyPair:
        threads.append(threading.current_thread().name)
        return generate(key_size)

    monkeypatch.setattr(protocol.ServerKeyPair, "generate", classmethod(spy))
    rm = ResponseManager(response_ip="127.0.0.1", response_port=0, key_size=2048)
    try:
        async with loop_ticks(0.001) as ticks:
            await rm.start_async()
        assert threads == ["gp-response-manager"]
        assert ticks.count > 0
    finally:
        rm.stop_response_manager()


def test_traitlets_configuration_reaches_the_response_manager() -> None:
    from traitlets.config import Config

    config = Config()
    config.ResponseManager.response_port = 0
    config.ResponseManager.key_size = 2048
    config.ResponseManager.read_timeout = 1.5
    config.ResponseManager.max_connections = 7
    config.ResponseManager.response_ip = "127.0.0.1"
    rm = ResponseManager(config=config)
    assert (rm.key_size, rm.read_timeout, rm.max_connections) == (2048, 1.5, 7)


@pytest.fixture
def no_shared_manager() -> Iterator[None]:
    """No process-wide response manager before or after the test."""
    ResponseManager.clear_instance()
    yield
    if ResponseManager.initialized():
        ResponseManager.instance().stop_response_manager()
    ResponseManager.clear_instance()


def _config(**settings: object) -> Config:
    config = Config()
    for name, value in settings.items():
        setattr(config.ResponseManager, name, value)
    return config


@pytest.mark.usefixtures("no_shared_manager")
def test_the_shared_manager_is_made_from_the_first_config_and_kept() -> None:
    first = ResponseManager.shared(_config(response_port=0, read_timeout=1.5))
    assert first.read_timeout == 1.5
    # the same settings again, or a config that sets nothing for it: the same manager
    assert ResponseManager.shared(_config(response_port=0, read_timeout=1.5)) is first
    assert ResponseManager.shared(_config()) is first
    assert ResponseManager.shared() is first


@pytest.mark.usefixtures("no_shared_manager")
def test_a_conflicting_second_config_is_an_error_naming_setting_and_values() -> None:
    ResponseManager.shared(_config(response_port=0, read_timeout=1.5))
    with pytest.raises(ResponseManagerConfigError) as conflict:
        ResponseManager.shared(_config(response_port=0, read_timeout=9.0, max_connections=3))
    message = str(conflict.value)
    assert "read_timeout=9.0 asked, 1.5 in use" in message
    assert "max_connections=3 asked" in message
    assert "once, in the server's configuration" in message
    assert ResponseManager.instance().read_timeout == 1.5  # nothing changed


@pytest.mark.usefixtures("no_shared_manager")
def test_a_second_config_may_name_the_value_in_use() -> None:
    ResponseManager.shared(_config(response_port=0))
    in_use = ResponseManager.instance().read_timeout
    assert ResponseManager.shared(_config(read_timeout=in_use)) is ResponseManager.instance()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GP_RESPONSE_PORT", "abc"),
        ("GP_RESPONSE_PORT", "70000"),
        ("GP_RESPONSE_READ_TIMEOUT", "soon"),
        ("GP_RESPONSE_KEY_SIZE", "1024"),
        ("GP_RESPONSE_IP", "not an address!"),
        ("GP_RESPONSE_BIND_IP", "example.com"),
    ],
)
def test_bad_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises((ValueError, TraitError)) as caught:
        ResponseManager()  # at start-up, not at first use
    assert variable in str(caught.value)


def test_port_taken_moves_to_the_next_and_says_so() -> None:
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


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv6_loopback_is_served() -> None:
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


def test_bad_response_ip_names_the_value() -> None:
    with pytest.raises(TraitError, match=r"GP_RESPONSE_IP.*'not an ip'"):
        ResponseManager(response_ip="not an ip")
