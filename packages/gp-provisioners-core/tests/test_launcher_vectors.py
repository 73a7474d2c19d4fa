"""The Python launcher's side of the launch protocol against docs/protocol-vectors/v2-vectors.json,
and against gp_provisioners_core's server side (spec: docs/protocol.md)."""

from __future__ import annotations

import asyncio
import base64
import copy
import importlib.util
import json
import signal
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from gp_provisioners_core import protocol
from gp_provisioners_core.channel import KernelChannel, KernelChannelError
from gp_provisioners_core.launchers import python_launcher
from gp_provisioners_core.protocol import ProtocolError, ServerKeyPair, open_message

VECTORS_DIR = Path(__file__).resolve().parents[3] / "docs" / "protocol-vectors"


@pytest.fixture(scope="module")
def vectors() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        (VECTORS_DIR / "v2-vectors.json").read_text(encoding="utf-8")
    )
    return loaded


@pytest.fixture(scope="module")
def key_pair(vectors: dict[str, Any]) -> ServerKeyPair:
    return ServerKeyPair.from_pem(vectors["rsa"]["private_key_pem"].encode())


@pytest.fixture(scope="module")
def launcher() -> ModuleType:
    path = python_launcher()
    spec = importlib.util.spec_from_file_location("gp_vector_launch_ipykernel", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def envelope_of(message: bytes | str) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(base64.b64decode(message, validate=True))
    return envelope


# -- sealing --------------------------------------------------------------------------------------


def test_launcher_constants_match_the_server(launcher: ModuleType) -> None:
    assert launcher.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION == 2
    assert launcher.LAUNCH_SECRET_ENV == protocol.LAUNCH_SECRET_ENV == "GP_LAUNCH_SECRET"
    assert launcher.COMM_REQUEST_MAX_SKEW_MS == protocol.COMM_REQUEST_MAX_SKEW_MS == 30_000


def test_launcher_associated_data(vectors: dict[str, Any], launcher: ModuleType) -> None:
    launch = vectors["launch"]
    assert launcher.associated_data(launch["kernel_id"]) == launch["associated_data"].encode()


def test_launcher_seal_v2_reproduces_the_ciphertext(
    vectors: dict[str, Any], launcher: ModuleType, key_pair: ServerKeyPair
) -> None:
    launch = vectors["launch"]
    aes_key = bytes.fromhex(launch["aes_key_hex"])
    message = launcher.seal_v2(
        vectors["rsa"]["public_key_b64"],
        launch["kernel_id"],
        launch["launch_secret"],
        copy.deepcopy(launch["conn_info"]),
        aes_key=aes_key,
        nonce=bytes.fromhex(launch["nonce_hex"]),
    )
    assert isinstance(message, bytes)
    assert b"\n" not in message
    envelope = envelope_of(message)
    assert set(envelope) == {"version", "kernel_id", "key", "nonce", "conn_info"}
    assert envelope["version"] == 2
    assert envelope["kernel_id"] == launch["kernel_id"]
    assert base64.b64decode(envelope["nonce"]).hex() == launch["nonce_hex"]
    assert envelope["conn_info"] == launch["ciphertext_b64"]
    assert key_pair.unwrap_oaep(base64.b64decode(envelope["key"])) == aes_key

    opened = open_message(message + b"\n", key_pair, allow_legacy=False)
    assert opened.version == 2
    assert opened.kernel_id == launch["kernel_id"]
    assert opened.launch_secret == launch["launch_secret"]
    assert opened.conn_info == launch["conn_info"]


def test_launcher_seal_v2_with_fresh_randomness_opens(
    vectors: dict[str, Any], launcher: ModuleType, key_pair: ServerKeyPair
) -> None:
    launch = vectors["launch"]
    first, second = (
        launcher.seal_v2(
            vectors["rsa"]["public_key_b64"],
            launch["kernel_id"],
            launch["launch_secret"],
            launch["conn_info"],
        )
        for _ in range(2)
    )
    assert envelope_of(first)["nonce"] != envelope_of(second)["nonce"]
    for message in (first, second):
        assert open_message(message, key_pair, allow_legacy=False).conn_info == launch["conn_info"]


def test_launcher_seal_v1_opens_only_with_legacy(
    vectors: dict[str, Any], launcher: ModuleType, key_pair: ServerKeyPair
) -> None:
    legacy = vectors["legacy_v1"]
    message = launcher.seal_v1(vectors["rsa"]["public_key_b64"], legacy["conn_info"])
    assert set(envelope_of(message)) == {"version", "key", "conn_info"}
    opened = open_message(message, key_pair, allow_legacy=True)
    assert opened.version == 1
    assert opened.conn_info == legacy["conn_info"]
    with pytest.raises(ProtocolError) as caught:
        open_message(message, key_pair, allow_legacy=False)
    assert caught.value.reason == "legacy-refused"


# -- comm-port requests ----------------------------------------------------------------------------


def test_launcher_comm_signing_input(vectors: dict[str, Any], launcher: ModuleType) -> None:
    for case in vectors["comm"]["requests"]:
        text = launcher.comm_signing_input(
            case["kernel_id"], case["request"], case["ts"], case["nonce"]
        )
        assert text == case["signing_input"].encode(), case["name"]


def test_verifier_accepts_the_vector_requests(
    vectors: dict[str, Any], launcher: ModuleType
) -> None:
    for case in vectors["comm"]["requests"]:
        verifier = launcher.CommRequestVerifier(case["key"], case["kernel_id"])
        message = json.loads(case["line"])
        assert verifier.verify(message, now_ms=case["ts"]) == case["request"], case["name"]


@pytest.mark.parametrize("offset", [-30_000, 30_000])
def test_verifier_accepts_the_edges_of_the_window(
    vectors: dict[str, Any], launcher: ModuleType, offset: int
) -> None:
    case = vectors["comm"]["requests"][0]
    verifier = launcher.CommRequestVerifier(case["key"], case["kernel_id"])
    assert verifier.verify(case["message"], now_ms=case["ts"] + offset) == case["request"]


def test_verifier_refusal_vectors(vectors: dict[str, Any], launcher: ModuleType) -> None:
    case = vectors["comm"]["requests"][0]
    refusals = {r["name"]: r for r in vectors["comm"]["refusals"]}
    assert {"bad-signature", "stale", "another-kernel", "unsigned"} <= set(refusals)
    assert refusals["stale"]["now_ms"] == case["ts"] + 31_000
    assert refusals["unsigned"]["message"] == {"signum": 2}
    for name, refusal in refusals.items():
        verifier = launcher.CommRequestVerifier(case["key"], case["kernel_id"])
        try:
            verifier.verify(refusal["message"], now_ms=refusal["now_ms"])
        except ValueError:
            continue
        pytest.fail(f"refusal vector {name} was accepted")


def test_verifier_refuses_a_replayed_nonce(vectors: dict[str, Any], launcher: ModuleType) -> None:
    case = vectors["comm"]["requests"][0]
    verifier = launcher.CommRequestVerifier(case["key"], case["kernel_id"])
    assert verifier.verify(case["message"], now_ms=case["ts"]) == case["request"]
    with pytest.raises(ValueError, match="replayed"):
        verifier.verify(case["message"], now_ms=case["ts"] + 1)
    # A fresh nonce is still welcome.
    other = protocol.sign_comm_request(
        case["key"], case["kernel_id"], case["request"], ts_ms=case["ts"] + 5, nonce="fresh"
    )
    assert verifier.verify(other, now_ms=case["ts"] + 10) == case["request"]


def test_verifier_refuses_another_kernels_key(
    vectors: dict[str, Any], launcher: ModuleType
) -> None:
    case = vectors["comm"]["requests"][0]
    verifier = launcher.CommRequestVerifier("another-key", case["kernel_id"])
    with pytest.raises(ValueError, match="bad signature"):
        verifier.verify(case["message"], now_ms=case["ts"])


def test_verifier_accepts_what_gp_provisioners_core_signs(
    vectors: dict[str, Any], launcher: ModuleType
) -> None:
    case = vectors["comm"]["requests"][0]
    verifier = launcher.CommRequestVerifier(case["key"], case["kernel_id"])
    for request in ({"signum": 2}, {"signum": 0}, {"shutdown": 1}):
        signed = protocol.sign_comm_request(case["key"], case["kernel_id"], request)
        assert verifier.verify(json.loads(json.dumps(signed))) == request


# -- the comm port end to end: gp_provisioners_core's KernelChannel against the launcher's handler -


class FakeKernel:
    pid = 4243

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)

    def terminate(self) -> None:
        self.returncode = -signal.SIGTERM

    def kill(self) -> None:
        self.returncode = -signal.SIGKILL


async def serve_comm(
    launcher: ModuleType, key: str, kernel_id: str, version: int
) -> tuple[asyncio.Server, FakeKernel, int]:
    instance = launcher.Launcher.__new__(launcher.Launcher)
    instance.args = SimpleNamespace(protocol_version=version)
    instance.kernel = FakeKernel()
    instance.kernel_id = kernel_id
    verifier = launcher.CommRequestVerifier(key, kernel_id)
    server = await asyncio.start_server(
        lambda r, w: instance._handle_comm(r, w, verifier), host="127.0.0.1", port=0
    )
    return server, instance.kernel, server.sockets[0].getsockname()[1]


async def test_kernel_channel_talks_to_the_launcher(
    vectors: dict[str, Any], launcher: ModuleType
) -> None:
    case = vectors["comm"]["requests"][0]
    key, kernel_id = case["key"], case["kernel_id"]
    server, kernel, port = await serve_comm(launcher, key, kernel_id, 2)
    try:
        channel = KernelChannel(kernel_id, "127.0.0.1", port, key, timeout=5)
        assert await channel.request({"signum": 0}) == {"ok": True, "alive": True}
        await channel.send_signal(2)
        assert kernel.signals == [2]
        assert await channel.is_alive() is True

        wrong = KernelChannel(kernel_id, "127.0.0.1", port, "not-the-key", timeout=5)
        with pytest.raises(KernelChannelError, match="refused"):
            await wrong.send_signal(9)
        assert kernel.signals == [2]

        await channel.shutdown()
        for _ in range(100):
            if kernel.poll() is not None:
                break
            await asyncio.sleep(0.01)
        assert kernel.poll() is not None
        assert await channel.request({"signum": 0}) == {"ok": True, "alive": False}
    finally:
        server.close()


async def test_launcher_reply_lines(vectors: dict[str, Any], launcher: ModuleType) -> None:
    case = vectors["comm"]["requests"][0]
    server, kernel, port = await serve_comm(launcher, case["key"], case["kernel_id"], 2)
    fresh = protocol.sign_comm_request(case["key"], case["kernel_id"], {"signum": 2})
    try:
        for payload, expect_ok in (
            (b'{"signum": 2}\n', False),  # unsigned
            (case["line"].encode(), False),  # the vector's ts is long past: stale
            (json.dumps(fresh).encode() + b"\n", True),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # Split the request across two writes: the launcher must read up to the newline.
            writer.write(payload[:7])
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.write(payload[7:])
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            writer.close()
            assert line.endswith(b"\n")
            reply = json.loads(line)
            assert reply["ok"] is expect_ok, reply
            if expect_ok:
                assert reply == {"ok": True, "alive": True}
        assert kernel.signals == [2]
    finally:
        server.close()


async def test_legacy_channel_talks_to_a_v1_launcher(
    vectors: dict[str, Any], launcher: ModuleType
) -> None:
    case = vectors["comm"]["requests"][0]
    server, kernel, port = await serve_comm(launcher, case["key"], case["kernel_id"], 1)
    try:
        channel = KernelChannel(
            case["kernel_id"], "127.0.0.1", port, case["key"], legacy=True, timeout=5
        )
        assert await channel.request({"signum": 2}) == {}
        for _ in range(100):
            if kernel.signals:
                break
            await asyncio.sleep(0.01)
        assert kernel.signals == [2]
    finally:
        server.close()


async def _exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), timeout=5)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_a_comm_port_flood_is_refused_with_short_reasons_and_logged_per_reason(
    vectors: dict[str, Any], launcher: ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    case = vectors["comm"]["requests"][0]
    server, kernel, port = await serve_comm(launcher, case["key"], case["kernel_id"], 2)
    hostile = [
        b"\xff\xfe not utf-8\n",
        b"[" * 30_000 + b"\n",
        b'{"signum": 9}\n',
        json.dumps({**case["message"], "signature": "0" * 64}).encode() + b"\n",
        json.dumps({**case["message"], "request": {"signum": "9"}}).encode() + b"\n",
    ]
    try:
        with caplog.at_level("WARNING", logger="gp-launcher"):
            replies = [await _exchange(port, payload) for payload in hostile * 10]
        assert kernel.signals == []
        for reply in replies:
            decoded = json.loads(reply)
            assert decoded["ok"] is False
            assert len(decoded["error"]) < 60  # a short reason, not the request echoed back
        refusals = [r for r in caplog.records if r.name == "gp-launcher"]
        assert 1 <= len(refusals) <= len({json.loads(r)["error"] for r in replies})
    finally:
        server.close()


async def test_one_peer_cannot_hold_every_comm_connection(
    vectors: dict[str, Any], launcher: ModuleType
) -> None:
    case = vectors["comm"]["requests"][0]
    server, _kernel, port = await serve_comm(launcher, case["key"], case["kernel_id"], 2)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(8)]
    try:
        await asyncio.sleep(0.1)
        crowded = await _exchange(port, case["line"].encode())
        assert crowded == b""  # closed at once: this address has 8 open already
    finally:
        for _, writer in idle:
            writer.close()
    await asyncio.sleep(0.1)
    channel = KernelChannel(case["kernel_id"], "127.0.0.1", port, case["key"], timeout=5)
    assert await channel.is_alive() is True
    server.close()


async def test_the_connection_file_goes_once_the_kernel_has_read_it(
    launcher: ModuleType, tmp_path: Path
) -> None:
    # A launcher killed with SIGKILL runs no cleanup: the key must not wait for it on disk.
    instance = launcher.Launcher.__new__(launcher.Launcher)
    instance.args = SimpleNamespace(kernel_language="python")
    instance.port_range = (0, 0)  # the kernel picked its ports: it has read the file
    instance.workdir = str(tmp_path / "gp-kernel-x")
    Path(instance.workdir).mkdir()
    instance.connection_file = str(Path(instance.workdir) / "kernel-x.json")
    Path(instance.connection_file).write_text('{"key": "secret"}')
    await instance.forget_connection_file()
    assert not Path(instance.workdir).exists()


async def test_with_fixed_ports_the_file_goes_when_the_kernel_listens(
    launcher: ModuleType, tmp_path: Path
) -> None:
    instance = launcher.Launcher.__new__(launcher.Launcher)
    instance.args = SimpleNamespace(kernel_language="python")
    instance.port_range = (40000, 41000)
    listener = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    instance.ip = "127.0.0.1"
    instance.conn_info = {"shell_port": listener.sockets[0].getsockname()[1]}
    instance.workdir = str(tmp_path / "gp-kernel-y")
    Path(instance.workdir).mkdir()
    instance.connection_file = str(Path(instance.workdir) / "kernel-y.json")
    Path(instance.connection_file).write_text('{"key": "secret"}')
    try:
        await asyncio.wait_for(instance.forget_connection_file(), timeout=10)
    finally:
        listener.close()
    assert not Path(instance.connection_file).exists()
