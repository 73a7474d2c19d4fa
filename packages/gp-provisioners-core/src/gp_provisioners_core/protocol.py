"""The launch protocol, server side: pure functions, no I/O.

Launchers seal the kernel's connection info for the server (``seal_v2`` is here for tests, tools
and documentation vectors; real launchers carry their own sealing code and are checked against the
vectors in ``docs/protocol.md``).  The server opens them with :func:`open_message` and signs the
requests it sends to a launcher's comm port with :func:`sign_comm_request`.

Format summary (the spec in ``docs/protocol.md`` is normative):

* A launch message is ``base64(JSON envelope)``, ended by ``\\n`` (v2) or by EOF (v1).
* v2 envelope: ``{"version": 2, "kernel_id", "key", "nonce", "conn_info"}`` where ``key`` is an
  AES-256 key wrapped with RSA-OAEP(SHA-256), and ``conn_info`` is AES-256-GCM over
  ``{"launch_secret", "conn_info"}`` with associated data ``gp-launch:v2:<kernel_id>``.
* v1 envelope: ``{"version": 1, "key", "conn_info"}``: RSA PKCS#1 v1.5 wrapped AES-128 key,
  AES-ECB + PKCS#7 over the connection JSON.  Only opened when the caller allows legacy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .argv import is_valid_kernel_id
from .logsafe import printable

PROTOCOL_VERSION = 2
LEGACY_PROTOCOL_VERSION = 1
DEFAULT_KEY_SIZE = 3072
MINIMUM_KEY_SIZE = 2048
COMM_REQUEST_MAX_SKEW_MS = 30_000
LAUNCH_SECRET_ENV = "GP_LAUNCH_SECRET"  # noqa: S105 - the name of the variable, not a secret

MAX_CONNECTION_KEY_CHARS = 1024
MAX_HOST_CHARS = 253
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?")
PROCESS_ID_FIELDS = ("pid", "pgid", "kernel_pid")
OPTIONAL_STRING_FIELDS = ("transport", "signature_scheme", "kernel_name")

REQUIRED_CONN_INFO_FIELDS = (
    "shell_port",
    "iopub_port",
    "stdin_port",
    "hb_port",
    "control_port",
    "ip",
    "key",
)


class ProtocolError(ValueError):
    """A launch message that cannot be accepted.

    ``reason`` is a short, stable code that is safe to log and to send back to the peer
    (``malformed``, ``unsupported-version``, ``legacy-refused``, ``undecryptable``, ...);
    ``detail`` explains it for the log and never contains secret material.
    """

    def __init__(self, reason: str, detail: str, kernel_id: str | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.kernel_id = kernel_id


@dataclass(frozen=True)
class OpenedMessage:
    """A launch message after decryption; authenticity against a pending launch is checked by
    the response manager, which alone knows the launch secrets."""

    version: int
    kernel_id: str
    launch_secret: str | None
    conn_info: dict[str, Any]


class ServerKeyPair:
    """The ephemeral RSA key pair of one server process.

    Created once by the :class:`~gp_provisioners_core.response_manager.ResponseManager`; the public
    half is
    handed to launchers through the ``{public_key}`` argv placeholder.
    """

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        self._private_key = private_key
        der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_b64: str = base64.b64encode(der).decode("ascii")

    @classmethod
    def generate(cls, key_size: int = DEFAULT_KEY_SIZE) -> ServerKeyPair:
        if key_size < MINIMUM_KEY_SIZE:
            raise ValueError(
                f"RSA key size {key_size} is too small; use at least {MINIMUM_KEY_SIZE} bits"
            )
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=key_size))

    @classmethod
    def from_pem(cls, pem: bytes) -> ServerKeyPair:
        """Load a fixed key (test vectors only: production keys are never stored)."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the PEM does not hold an RSA private key")
        return cls(key)

    def unwrap_oaep(self, wrapped: bytes) -> bytes:
        return self._private_key.decrypt(wrapped, _oaep())

    def unwrap_pkcs1v15(self, wrapped: bytes) -> bytes:
        return self._private_key.decrypt(wrapped, asym_padding.PKCS1v15())


def _oaep() -> asym_padding.OAEP:
    return asym_padding.OAEP(
        mgf=asym_padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
    )


def associated_data(kernel_id: str) -> bytes:
    """The AEAD associated data that binds a v2 payload to its kernel id and version."""
    return f"gp-launch:v{PROTOCOL_VERSION}:{kernel_id}".encode()


def load_public_key(public_key_b64: str) -> rsa.RSAPublicKey:
    key = serialization.load_der_public_key(base64.b64decode(public_key_b64))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the public key is not an RSA key")
    return key


def seal_v2(
    public_key_b64: str,
    kernel_id: str,
    launch_secret: str,
    conn_info: dict[str, Any],
    *,
    aes_key: bytes | None = None,
    nonce: bytes | None = None,
) -> bytes:
    """Build a v2 launch message as a launcher does (without the trailing newline).

    ``aes_key`` and ``nonce`` are fixed only to reproduce test vectors.
    """
    aes_key = aes_key if aes_key is not None else AESGCM.generate_key(bit_length=256)
    nonce = nonce if nonce is not None else secrets.token_bytes(12)
    plaintext = json.dumps({"launch_secret": launch_secret, "conn_info": conn_info}).encode()
    ciphertext = AESGCM(aes_key).encrypt(nonce, plaintext, associated_data(kernel_id))
    wrapped = load_public_key(public_key_b64).encrypt(aes_key, _oaep())
    envelope = {
        "version": PROTOCOL_VERSION,
        "kernel_id": kernel_id,
        "key": _b64(wrapped),
        "nonce": _b64(nonce),
        "conn_info": _b64(ciphertext),
    }
    return base64.b64encode(json.dumps(envelope).encode())


def seal_v1(public_key_b64: str, conn_info: dict[str, Any]) -> bytes:
    """Build a v1 launch message exactly as gateway_provisioners' launchers do (for tests)."""
    aes_key = secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(json.dumps(conn_info).encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).encryptor()  # noqa: S305 - v1 wire
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    wrapped = load_public_key(public_key_b64).encrypt(aes_key, asym_padding.PKCS1v15())
    envelope = {"version": 1, "key": _b64(wrapped), "conn_info": _b64(ciphertext)}
    return base64.b64encode(json.dumps(envelope).encode())


def open_message(data: bytes, key_pair: ServerKeyPair, *, allow_legacy: bool) -> OpenedMessage:
    """Decode, decrypt and validate one launch message.

    Called by the response manager for every message it receives.  Raises :class:`ProtocolError`
    for anything that is not a well-formed message sealed with this server's key.  A v1 message
    raises ``legacy-refused`` unless ``allow_legacy`` is true (the caller decides per kernel).
    Whatever ``data`` holds (deeply nested or non-UTF-8 JSON, wrong types), the only exception
    is :class:`ProtocolError`.
    """
    try:
        return _open_message(data, key_pair, allow_legacy=allow_legacy)
    except ProtocolError:
        raise
    except Exception as err:
        raise ProtocolError(
            "malformed", f"the message could not be read ({type(err).__name__})"
        ) from err


def _open_message(data: bytes, key_pair: ServerKeyPair, *, allow_legacy: bool) -> OpenedMessage:
    envelope = _decode_envelope(data)
    version = envelope.get("version")
    if type(version) is not int:  # not true/false (== 1/0) nor 2.0
        raise ProtocolError("unsupported-version", f"protocol version {version!r} is not supported")
    if version == PROTOCOL_VERSION:
        return _open_v2(envelope, key_pair)
    if version == LEGACY_PROTOCOL_VERSION:
        if not allow_legacy:  # refused unread: no PKCS#1 v1.5 decryption for anyone else
            raise ProtocolError(
                "legacy-refused",
                "a v1 (legacy) launcher answered but allow_legacy_launchers is off",
            )
        return _open_v1(envelope, key_pair)
    raise ProtocolError("unsupported-version", f"protocol version {version!r} is not supported")


def _decode_envelope(data: bytes) -> dict[str, Any]:
    try:
        decoded = base64.b64decode(data.strip(), validate=True)
        envelope = json.loads(decoded)
    except (binascii.Error, ValueError, RecursionError) as err:
        raise ProtocolError("malformed", "the message is not base64-encoded JSON") from err
    if not isinstance(envelope, dict):
        raise ProtocolError("malformed", "the message is not a JSON object")
    return envelope


def _field_bytes(envelope: dict[str, Any], name: str) -> bytes:
    value = envelope.get(name)
    if not isinstance(value, str):
        raise ProtocolError("malformed", f"field {name!r} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as err:
        raise ProtocolError("malformed", f"field {name!r} is not base64") from err


def _open_v2(envelope: dict[str, Any], key_pair: ServerKeyPair) -> OpenedMessage:
    kernel_id = envelope.get("kernel_id")
    if not isinstance(kernel_id, str) or not kernel_id:
        raise ProtocolError("malformed", "field 'kernel_id' is missing")
    if not is_valid_kernel_id(kernel_id):
        raise ProtocolError("malformed", f"kernel id {printable(kernel_id)} is not a kernel id")
    wrapped, nonce, ciphertext = (_field_bytes(envelope, n) for n in ("key", "nonce", "conn_info"))
    if len(nonce) != 12:
        raise ProtocolError("malformed", "the nonce is not 12 bytes", kernel_id)
    try:
        aes_key = key_pair.unwrap_oaep(wrapped)
        plaintext = AESGCM(aes_key).decrypt(nonce, ciphertext, associated_data(kernel_id))
    except (ValueError, InvalidTag) as err:
        raise ProtocolError(
            "undecryptable", "the payload was not sealed for this server and kernel", kernel_id
        ) from err
    try:
        body = json.loads(plaintext)
    except (ValueError, RecursionError) as err:
        raise ProtocolError("malformed", "the sealed body is not JSON", kernel_id) from err
    secret = body.get("launch_secret") if isinstance(body, dict) else None
    if not isinstance(secret, str):
        raise ProtocolError("malformed", "the sealed body has no launch secret", kernel_id)
    conn_info = _validated_conn_info(body.get("conn_info"), kernel_id)
    return OpenedMessage(PROTOCOL_VERSION, kernel_id, secret, conn_info)


def _open_v1(envelope: dict[str, Any], key_pair: ServerKeyPair) -> OpenedMessage:
    wrapped, ciphertext = _field_bytes(envelope, "key"), _field_bytes(envelope, "conn_info")
    try:
        aes_key = key_pair.unwrap_pkcs1v15(wrapped)
        if len(aes_key) not in (16, 24, 32) or len(ciphertext) % 16:
            raise ValueError("bad key or block length")
        decryptor = Cipher(algorithms.AES(aes_key), modes.ECB()).decryptor()  # noqa: S305
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plaintext = unpadder.update(padded) + unpadder.finalize()
        body = json.loads(plaintext)
    except (ValueError, RecursionError) as err:
        raise ProtocolError("undecryptable", "the v1 payload could not be decrypted") from err
    if not isinstance(body, dict) or not isinstance(body.get("kernel_id"), str):
        raise ProtocolError("malformed", "the v1 connection info names no kernel id")
    kernel_id = body["kernel_id"]
    if not is_valid_kernel_id(kernel_id):
        raise ProtocolError("malformed", f"kernel id {printable(kernel_id)} is not a kernel id")
    return OpenedMessage(
        LEGACY_PROTOCOL_VERSION, kernel_id, None, _validated_conn_info(body, kernel_id)
    )


def _validated_conn_info(conn_info: Any, kernel_id: str) -> dict[str, Any]:
    """The connection info, typed: ports are ints in 1..65535, process ids positive ints, the
    address an IP address or host name, the key a bounded string.  These values reach sockets
    and ``kill``, so nothing loosely typed gets through."""
    if not isinstance(conn_info, dict):
        raise ProtocolError("malformed", "the connection info is not an object", kernel_id)
    missing = [name for name in REQUIRED_CONN_INFO_FIELDS if name not in conn_info]
    if missing:
        raise ProtocolError("malformed", f"the connection info lacks {missing}", kernel_id)
    for name in (*REQUIRED_CONN_INFO_FIELDS[:5], "comm_port"):
        port: Any = conn_info.get(name)
        if name == "comm_port" and port is None:
            continue
        if not _is_int(port) or not 0 < port < 65536:
            raise ProtocolError(
                "malformed", f"{name} {printable(port)} is not a TCP port", kernel_id
            )
    for name in PROCESS_ID_FIELDS:
        value: Any = conn_info.get(name)
        if value is not None and (not _is_int(value) or not 0 < value < 2**31):
            raise ProtocolError(
                "malformed", f"{name} {printable(value)} is not a process id", kernel_id
            )
    if not is_host(conn_info["ip"]):
        raise ProtocolError(
            "malformed", f"ip {printable(conn_info['ip'])} is not an address", kernel_id
        )
    key = conn_info["key"]
    if not isinstance(key, str) or not 0 < len(key) <= MAX_CONNECTION_KEY_CHARS:
        raise ProtocolError("malformed", "the connection key is not a short string", kernel_id)
    for name in (*OPTIONAL_STRING_FIELDS, "curve_publickey", "curve_secretkey"):
        value = conn_info.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 256):
            raise ProtocolError("malformed", f"{name} is not a short string", kernel_id)
    if ("curve_publickey" in conn_info) != ("curve_secretkey" in conn_info):
        raise ProtocolError("malformed", "only one of the CurveZMQ keys is present", kernel_id)
    if conn_info.get("kernel_id", kernel_id) != kernel_id:
        raise ProtocolError("malformed", "the connection info names another kernel", kernel_id)
    return conn_info


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_host(value: Any) -> bool:
    """An IP address (IPv4, or IPv6 with or without brackets) or a DNS host name."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_HOST_CHARS:
        return False
    try:
        ipaddress.ip_address(value.removeprefix("[").removesuffix("]"))
    except ValueError:
        return _HOST_NAME.fullmatch(value) is not None
    return True


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# ----------------------------------------------------------------------------------------------
# Comm port requests: server -> launcher, signed with the kernel's connection key.
# ----------------------------------------------------------------------------------------------


def comm_signing_input(kernel_id: str, request: dict[str, Any], ts_ms: int, nonce: str) -> bytes:
    """The exact bytes that are signed: canonical JSON (sorted keys, no spaces)."""
    canonical = {"kernel_id": kernel_id, "nonce": nonce, "request": request, "ts": ts_ms}
    return json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()


def sign_comm_request(
    connection_key: str,
    kernel_id: str,
    request: dict[str, Any],
    *,
    ts_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """Wrap ``request`` (``{"signum": N}`` or ``{"shutdown": 1}``) into a signed v2 comm message.

    Called by :class:`~gp_provisioners_core.channel.KernelChannel`; ``ts_ms`` and ``nonce`` are
    fixed only by
    test vectors.
    """
    ts_ms = ts_ms if ts_ms is not None else int(time.time() * 1000)
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    mac = hmac.new(
        connection_key.encode(),
        comm_signing_input(kernel_id, request, ts_ms, nonce),
        hashlib.sha256,
    )
    return {
        "version": PROTOCOL_VERSION,
        "kernel_id": kernel_id,
        "request": request,
        "ts": ts_ms,
        "nonce": nonce,
        "signature": mac.hexdigest(),
    }
