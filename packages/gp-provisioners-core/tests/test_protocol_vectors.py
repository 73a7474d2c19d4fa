"""The server side of the launch protocol (gp_provisioners_core.protocol, ResponseManager) against
the
vectors in docs/protocol-vectors/v2-vectors.json (spec: docs/protocol.md)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gp_provisioners_core import protocol
from gp_provisioners_core.protocol import ProtocolError, ServerKeyPair, open_message
from gp_provisioners_core.response_manager import ResponseManager

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


def envelope_of(message: bytes | str) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(base64.b64decode(message, validate=True))
    return envelope


# -- key pair -------------------------------------------------------------------------------


def test_public_key_is_base64_der_spki_of_the_test_key(
    vectors: dict[str, Any], key_pair: ServerKeyPair
) -> None:
    assert key_pair.public_key_b64 == vectors["rsa"]["public_key_b64"]
    assert protocol.load_public_key(key_pair.public_key_b64).key_size == 3072
    assert vectors["rsa"]["key_size"] == protocol.DEFAULT_KEY_SIZE


def test_key_pair_refuses_small_keys() -> None:
    with pytest.raises(ValueError, match="at least 2048"):
        ServerKeyPair.generate(1024)


# -- the vector is self-consistent -------------------------------------------------------------


def test_vector_body_and_ciphertext_are_consistent(vectors: dict[str, Any]) -> None:
    launch = vectors["launch"]
    body = json.dumps({"launch_secret": launch["launch_secret"], "conn_info": launch["conn_info"]})
    assert body == launch["body_json"]
    plaintext = AESGCM(bytes.fromhex(launch["aes_key_hex"])).decrypt(
        bytes.fromhex(launch["nonce_hex"]),
        base64.b64decode(launch["ciphertext_b64"]),
        launch["associated_data"].encode(),
    )
    assert plaintext == launch["body_json"].encode()
    assert base64.b64decode(launch["ciphertext_b64"])[-16:].hex() == launch["tag_hex"]


# -- v2 sealing and opening ---------------------------------------------------------------------


def test_associated_data(vectors: dict[str, Any]) -> None:
    launch = vectors["launch"]
    assert protocol.associated_data(launch["kernel_id"]) == launch["associated_data"].encode()
    assert launch["associated_data"] == f"gp-launch:v2:{launch['kernel_id']}"


def test_seal_v2_reproduces_the_ciphertext(
    vectors: dict[str, Any], key_pair: ServerKeyPair
) -> None:
    launch = vectors["launch"]
    aes_key = bytes.fromhex(launch["aes_key_hex"])
    message = protocol.seal_v2(
        vectors["rsa"]["public_key_b64"],
        launch["kernel_id"],
        launch["launch_secret"],
        launch["conn_info"],
        aes_key=aes_key,
        nonce=bytes.fromhex(launch["nonce_hex"]),
    )
    envelope = envelope_of(message)
    assert set(envelope) == {"version", "kernel_id", "key", "nonce", "conn_info"}
    assert envelope["version"] == 2
    assert envelope["kernel_id"] == launch["kernel_id"]
    assert envelope["nonce"] == base64.b64encode(bytes.fromhex(launch["nonce_hex"])).decode()
    assert envelope["conn_info"] == launch["ciphertext_b64"]
    assert key_pair.unwrap_oaep(base64.b64decode(envelope["key"])) == aes_key
    assert b"\n" not in message


def test_sample_message_opens_to_the_conn_info(
    vectors: dict[str, Any], key_pair: ServerKeyPair
) -> None:
    launch = vectors["launch"]
    envelope = envelope_of(launch["sample_message"])
    assert envelope["conn_info"] == launch["ciphertext_b64"]
    assert key_pair.unwrap_oaep(base64.b64decode(envelope["key"])).hex() == launch["aes_key_hex"]
    for framed in (launch["sample_message"], launch["sample_message"] + "\n"):
        opened = open_message(framed.encode(), key_pair, allow_legacy=False)
        assert opened.version == 2
        assert opened.kernel_id == launch["kernel_id"]
        assert opened.launch_secret == launch["launch_secret"]
        assert opened.conn_info == launch["conn_info"]
        assert list(opened.conn_info) == list(launch["conn_info"])


def test_sample_message_does_not_open_with_another_key(vectors: dict[str, Any]) -> None:
    other = ServerKeyPair.generate(2048)
    with pytest.raises(ProtocolError) as caught:
        open_message(vectors["launch"]["sample_message"].encode(), other, allow_legacy=True)
    assert caught.value.reason == "undecryptable"


def test_rejection_vectors(vectors: dict[str, Any], key_pair: ServerKeyPair) -> None:
    rejections = vectors["launch"]["rejections"]
    assert {r["reason"] for r in rejections} >= {"undecryptable", "malformed"}
    for case in rejections:
        with pytest.raises(ProtocolError) as caught:
            open_message(case["message"].encode(), key_pair, allow_legacy=True)
        assert caught.value.reason == case["reason"], case["name"]


@pytest.mark.parametrize("version", [True, 2.0, "2", None])
def test_version_must_be_an_integer(
    vectors: dict[str, Any], key_pair: ServerKeyPair, version: object
) -> None:
    envelope = envelope_of(vectors["launch"]["sample_message"])
    envelope["version"] = version
    message = base64.b64encode(json.dumps(envelope).encode())
    with pytest.raises(ProtocolError) as caught:
        open_message(message, key_pair, allow_legacy=True)
    assert caught.value.reason == "unsupported-version"


def test_conn_info_naming_another_kernel_is_malformed(
    vectors: dict[str, Any], key_pair: ServerKeyPair
) -> None:
    launch = vectors["launch"]
    conn_info = dict(launch["conn_info"], kernel_id="someone-else")
    message = protocol.seal_v2(
        vectors["rsa"]["public_key_b64"], launch["kernel_id"], "s", conn_info
    )
    with pytest.raises(ProtocolError) as caught:
        open_message(message, key_pair, allow_legacy=False)
    assert caught.value.reason == "malformed"


# -- v1 -----------------------------------------------------------------------------------------


def test_v1_sample_is_refused_without_legacy(
    vectors: dict[str, Any], key_pair: ServerKeyPair
) -> None:
    legacy = vectors["legacy_v1"]
    with pytest.raises(ProtocolError) as caught:
        open_message(legacy["sample_message"].encode(), key_pair, allow_legacy=False)
    assert caught.value.reason == "legacy-refused"
    assert caught.value.kernel_id is None  # refused unread: nothing was decrypted


def test_v1_sample_opens_with_legacy(vectors: dict[str, Any], key_pair: ServerKeyPair) -> None:
    legacy = vectors["legacy_v1"]
    envelope = envelope_of(legacy["sample_message"])
    assert set(envelope) == {"version", "key", "conn_info"}
    assert envelope["conn_info"] == legacy["ciphertext_b64"]
    wrapped = base64.b64decode(envelope["key"])
    assert key_pair.unwrap_pkcs1v15(wrapped).hex() == legacy["aes_key_hex"]
    opened = open_message(legacy["sample_message"].encode(), key_pair, allow_legacy=True)
    assert opened.version == 1
    assert opened.kernel_id == legacy["kernel_id"]
    assert opened.launch_secret is None
    assert opened.conn_info == legacy["conn_info"]


def test_seal_v1_opens_only_with_legacy(vectors: dict[str, Any], key_pair: ServerKeyPair) -> None:
    legacy = vectors["legacy_v1"]
    message = protocol.seal_v1(vectors["rsa"]["public_key_b64"], legacy["conn_info"])
    assert open_message(message, key_pair, allow_legacy=True).conn_info == legacy["conn_info"]
    with pytest.raises(ProtocolError, match="legacy-refused"):
        open_message(message, key_pair, allow_legacy=False)


# -- comm-port requests ---------------------------------------------------------------------------


def test_comm_signing_input_and_signature(vectors: dict[str, Any]) -> None:
    requests = vectors["comm"]["requests"]
    assert requests
    for case in requests:
        text = protocol.comm_signing_input(
            case["kernel_id"], case["request"], case["ts"], case["nonce"]
        )
        assert text == case["signing_input"].encode(), case["name"]
        signed = protocol.sign_comm_request(
            case["key"], case["kernel_id"], case["request"], ts_ms=case["ts"], nonce=case["nonce"]
        )
        assert signed == case["message"], case["name"]
        assert signed["signature"] == case["signature"]
        # KernelChannel sends exactly this line.
        assert json.dumps(signed) + "\n" == case["line"]


def test_signature_depends_on_every_field(vectors: dict[str, Any]) -> None:
    case = vectors["comm"]["requests"][0]
    args = (case["key"], case["kernel_id"], case["request"])
    base = protocol.sign_comm_request(*args, ts_ms=case["ts"], nonce=case["nonce"])["signature"]
    variants = [
        protocol.sign_comm_request(*args, ts_ms=case["ts"] + 1, nonce=case["nonce"]),
        protocol.sign_comm_request(*args, ts_ms=case["ts"], nonce=case["nonce"] + "0"),
        protocol.sign_comm_request(
            case["key"], case["kernel_id"], {"signum": 9}, ts_ms=case["ts"], nonce=case["nonce"]
        ),
        protocol.sign_comm_request(
            case["key"] + "x", case["kernel_id"], case["request"], ts_ms=case["ts"], nonce="n"
        ),
    ]
    assert all(v["signature"] != base for v in variants)


# -- acknowledgements from a running response server ----------------------------------------


@pytest.fixture
def manager(key_pair: ServerKeyPair, monkeypatch: pytest.MonkeyPatch) -> Iterator[ResponseManager]:
    monkeypatch.setattr(ServerKeyPair, "generate", classmethod(lambda cls, size=0: key_pair))
    rm = ResponseManager(response_ip="127.0.0.1", response_port=0, log_rejections=False)
    rm.start()
    yield rm
    rm.stop_response_manager()


async def exchange(manager: ResponseManager, payload: bytes, eof: bool = False) -> bytes:
    host, port = manager.response_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(payload)
    if eof:
        writer.write_eof()
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    return reply


ACCEPTED = b'{"status": "accepted"}\n'


def rejected(reason: str) -> bytes:
    return b'{"status": "rejected", "reason": "' + reason.encode() + b'"}\n'


async def test_server_acknowledgements(vectors: dict[str, Any], manager: ResponseManager) -> None:
    launch, legacy = vectors["launch"], vectors["legacy_v1"]
    kernel_id, sample = launch["kernel_id"], launch["sample_message"].encode()
    assert manager.public_key == vectors["rsa"]["public_key_b64"]

    assert await exchange(manager, sample + b"\n") == rejected("unknown-kernel")

    manager.register_event(kernel_id, "not-the-secret")
    assert await exchange(manager, sample + b"\n") == rejected("bad-secret")

    manager.register_event(kernel_id, launch["launch_secret"])
    assert await exchange(manager, sample + b"\n") == ACCEPTED
    conn_info = await asyncio.wait_for(manager.get_connection_info(kernel_id), timeout=5)
    assert conn_info == launch["conn_info"]
    assert await exchange(manager, sample + b"\n") == rejected("replayed")

    assert await exchange(manager, b"!!!\n") == rejected("malformed")
    bad = launch["rejections"][0]["message"].encode()
    assert await exchange(manager, bad + b"\n") == rejected("undecryptable")

    v1 = legacy["sample_message"].encode()
    manager.register_event(legacy["kernel_id"], "", allow_legacy=False)
    assert await exchange(manager, v1, eof=True) == rejected("legacy-refused")
    manager.register_event(legacy["kernel_id"], "", allow_legacy=True)
    assert await exchange(manager, v1, eof=True) == ACCEPTED
    message = await asyncio.wait_for(manager.get_launch_message(legacy["kernel_id"]), timeout=5)
    assert message.version == 1
    assert message.conn_info == legacy["conn_info"]


async def test_server_refuses_oversized_messages(manager: ResponseManager) -> None:
    manager.max_message_bytes = 1024
    assert await exchange(manager, b"A" * 4096 + b"\n") == rejected("too-large")


async def test_rejection_does_not_disturb_a_pending_launch(
    vectors: dict[str, Any], manager: ResponseManager
) -> None:
    launch = vectors["launch"]
    manager.register_event(launch["kernel_id"], launch["launch_secret"])
    forged = protocol.seal_v2(
        vectors["rsa"]["public_key_b64"], launch["kernel_id"], "forged", launch["conn_info"]
    )
    assert await exchange(manager, forged + b"\n") == rejected("bad-secret")
    assert await exchange(manager, launch["sample_message"].encode() + b"\n") == ACCEPTED
    conn_info = await asyncio.wait_for(manager.get_connection_info(launch["kernel_id"]), 5)
    assert conn_info == launch["conn_info"]
