#!/usr/bin/env python3
"""Regenerate ``v2-vectors.json``, the launch-protocol test vectors (see ``docs/protocol.md``).

Usage::

    python docs/protocol-vectors/make_vectors.py           # write v2-vectors.json
    python docs/protocol-vectors/make_vectors.py --check   # exit 1 if the file is out of date

Everything is deterministic except the RSA key pair and the two RSA-wrapped AES keys (RSA-OAEP
and PKCS#1 v1.5 encryption are randomized).  When ``v2-vectors.json`` already exists its RSA key
is reused, and so are its wrapped keys as long as they still unwrap to the fixed AES keys, so a
rerun changes nothing unless the fixed inputs below change.

This script deliberately uses ``cryptography`` directly and imports neither
``gp_provisioners_core`` nor the
launcher: it is a third, independent implementation that both are checked against.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "v2-vectors.json"
KEY_SIZE = 3072

# -- fixed inputs ------------------------------------------------------------------------------

KERNEL_ID = "3f8a2c1e-5b7d-4e9a-9c0f-1d2e3f4a5b6c"
LAUNCH_SECRET = "TEST-ONLY_launch-secret_0123456789abcdefABCD"  # noqa: S105 - a test vector
CONNECTION_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
AES_KEY = bytes(range(32))  # 00 01 02 ... 1f
GCM_NONCE = bytes.fromhex("cafebabefacedbaddecaf888")

# Insertion order is part of the vector: it is the order the Python launcher builds the dict in.
CONN_INFO: dict[str, Any] = {
    "shell_port": 40001,
    "iopub_port": 40002,
    "stdin_port": 40003,
    "hb_port": 40004,
    "control_port": 40005,
    "ip": "10.1.2.3",
    "key": CONNECTION_KEY,
    "transport": "tcp",
    "signature_scheme": "hmac-sha256",
    "kernel_name": "",
    # A real CurveZMQ pair (test only).  Z85 uses '&', '/', '<', '{', '[' ...: the vector checks
    # that a launcher's JSON encoder does not escape them.
    "curve_publickey": "CEFX?K#^ZY*6&1AleoFljs2@ntYy@RfNtt3A/Pm8",
    "curve_secretkey": "V?7lf66Apcbeg^w*Nu0{*({4[QwxWtg.&ZOb[?g@",
    "pid": 4242,
    "pgid": 4242,
    "kernel_pid": 4243,
    "comm_port": 40006,
    "kernel_id": KERNEL_ID,
}

V1_KERNEL_ID = "0b6a4f2e-legacy-v1-kernel"
V1_AES_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
# What a gateway_provisioners (v1) launcher sends: jupyter_client's connection file plus
# pid, pgid, comm_port and kernel_id; no kernel_pid.
V1_CONN_INFO: dict[str, Any] = {
    "shell_port": 50001,
    "iopub_port": 50002,
    "stdin_port": 50003,
    "control_port": 50005,
    "hb_port": 50004,
    "ip": "0.0.0.0",  # noqa: S104 - what v1 launchers report
    "key": "5c2f1a9e-8d7b-4c3a-9f1e-2d3c4b5a6978",
    "transport": "tcp",
    "signature_scheme": "hmac-sha256",
    "kernel_name": "",
    "pid": 777,
    "pgid": 777,
    "comm_port": 50006,
    "kernel_id": V1_KERNEL_ID,
}

COMM_TS = 1767225600000  # 2026-01-01T00:00:00Z in milliseconds
COMM_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("interrupt", {"signum": 2}, "00112233445566778899aabbccddeeff"),
    ("poll", {"signum": 0}, "ffeeddccbbaa99887766554433221100"),
    ("shutdown", {"shutdown": 1}, "0123456789abcdef0123456789abcdef"),
    # Not a request a server sends: pins the sorting of keys inside "request".
    ("canonical-order", {"signum": 15, "reason": "a/b & <c>"}, "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"),
]
MAX_SKEW_MS = 30_000


# -- the protocol, written out independently ----------------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def oaep() -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def body_json(launch_secret: str, conn_info: dict[str, Any]) -> str:
    # The pinned serialization: Python's json.dumps defaults (", " and ": ", ASCII-only).
    return json.dumps({"launch_secret": launch_secret, "conn_info": conn_info})


def envelope_message(envelope: dict[str, Any]) -> str:
    return b64(json.dumps(envelope).encode())


def signing_input(kernel_id: str, request: dict[str, Any], ts: int, nonce: str) -> str:
    canonical = {"kernel_id": kernel_id, "nonce": nonce, "request": request, "ts": ts}
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"))


def sign(key: str, text: str) -> str:
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_message(key: str, kernel_id: str, request: dict[str, Any], ts: int, nonce: str) -> dict:
    return {
        "version": 2,
        "kernel_id": kernel_id,
        "request": request,
        "ts": ts,
        "nonce": nonce,
        "signature": sign(key, signing_input(kernel_id, request, ts, nonce)),
    }


# -- keeping the randomized parts ---------------------------------------------------------------


def load_previous() -> dict[str, Any] | None:
    if not VECTORS.exists():
        return None
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def private_key_from(previous: dict[str, Any] | None) -> rsa.RSAPrivateKey:
    if previous is not None:
        key = serialization.load_pem_private_key(
            previous["rsa"]["private_key_pem"].encode(), password=None
        )
        assert isinstance(key, rsa.RSAPrivateKey)
        return key
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)


def previous_wrapped(previous: dict[str, Any] | None, section: str) -> bytes | None:
    if previous is None:
        return None
    try:
        envelope = json.loads(base64.b64decode(previous[section]["sample_message"]))
        return base64.b64decode(envelope["key"])
    except (KeyError, ValueError):
        return None


def wrapped_key(
    private_key: rsa.RSAPrivateKey, old: bytes | None, aes_key: bytes, scheme: Any
) -> bytes:
    if old is not None:
        try:
            if private_key.decrypt(old, scheme) == aes_key:
                return old
        except ValueError:
            pass
    return private_key.public_key().encrypt(aes_key, scheme)


# -- the vectors --------------------------------------------------------------------------------


def build(previous: dict[str, Any] | None) -> dict[str, Any]:
    private_key = private_key_from(previous)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    # v2 launch message
    ad = f"gp-launch:v2:{KERNEL_ID}"
    body = body_json(LAUNCH_SECRET, CONN_INFO)
    ciphertext = AESGCM(AES_KEY).encrypt(GCM_NONCE, body.encode(), ad.encode())
    wrapped = wrapped_key(private_key, previous_wrapped(previous, "launch"), AES_KEY, oaep())
    envelope = {
        "version": 2,
        "kernel_id": KERNEL_ID,
        "key": b64(wrapped),
        "nonce": b64(GCM_NONCE),
        "conn_info": b64(ciphertext),
    }
    sample = envelope_message(envelope)

    def variant(**changes: Any) -> str:
        return envelope_message({**envelope, **changes})

    rejections = [
        {
            "name": "kernel-id-swapped",
            "comment": "envelope kernel_id changed: the associated data no longer matches",
            "message": variant(kernel_id="00000000-0000-0000-0000-000000000000"),
            "reason": "undecryptable",
        },
        {
            "name": "ciphertext-bit-flipped",
            "comment": "one bit of the GCM tag flipped",
            "message": variant(conn_info=b64(ciphertext[:-1] + bytes([ciphertext[-1] ^ 1]))),
            "reason": "undecryptable",
        },
        {
            "name": "short-nonce",
            "comment": "an 8-byte nonce",
            "message": variant(nonce=b64(GCM_NONCE[:8])),
            "reason": "malformed",
        },
        {
            "name": "unknown-version",
            "comment": "version 3",
            "message": variant(version=3),
            "reason": "unsupported-version",
        },
        {
            "name": "not-base64",
            "comment": "the message is not base64",
            "message": "this is not base64!",
            "reason": "malformed",
        },
        {
            "name": "kernel-id-trailing-newline",
            "comment": "a kernel id is checked as a whole string: a trailing newline is refused",
            "message": variant(kernel_id=KERNEL_ID + "\n"),
            "reason": "malformed",
        },
        {
            "name": "deeply-nested-json",
            "comment": "5,000 nested arrays: refused as malformed, not an internal error",
            "message": base64.b64encode(b"[" * 5000).decode(),
            "reason": "malformed",
        },
    ]

    # v1 (legacy) launch message, as gateway_provisioners launchers make it
    v1_plain = json.dumps(V1_CONN_INFO)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(v1_plain.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(V1_AES_KEY), modes.ECB()).encryptor()  # noqa: S305 - v1
    v1_ciphertext = encryptor.update(padded) + encryptor.finalize()
    v1_wrapped = wrapped_key(
        private_key, previous_wrapped(previous, "legacy_v1"), V1_AES_KEY, padding.PKCS1v15()
    )
    v1_envelope = {"version": 1, "key": b64(v1_wrapped), "conn_info": b64(v1_ciphertext)}

    # comm-port requests
    requests = []
    for name, request, nonce in COMM_REQUESTS:
        text = signing_input(KERNEL_ID, request, COMM_TS, nonce)
        message = signed_message(CONNECTION_KEY, KERNEL_ID, request, COMM_TS, nonce)
        requests.append(
            {
                "name": name,
                "key": CONNECTION_KEY,
                "kernel_id": KERNEL_ID,
                "request": request,
                "ts": COMM_TS,
                "nonce": nonce,
                "signing_input": text,
                "signature": message["signature"],
                "message": message,
                "line": json.dumps(message) + "\n",
            }
        )
    good = requests[0]["message"]
    flipped = good["signature"][:-1] + ("0" if good["signature"][-1] != "0" else "1")
    other_kernel = "99999999-other-kernel"
    refusals = [
        {"name": "bad-signature", "message": {**good, "signature": flipped}, "now_ms": COMM_TS},
        {
            "name": "tampered-request",
            "message": {**good, "request": {"signum": 9}},
            "now_ms": COMM_TS,
        },
        {"name": "stale", "message": good, "now_ms": COMM_TS + MAX_SKEW_MS + 1000},
        {"name": "from-the-future", "message": good, "now_ms": COMM_TS - MAX_SKEW_MS - 1000},
        {
            "name": "another-kernel",
            "comment": "validly signed with the same key, but for another kernel id",
            "message": signed_message(
                CONNECTION_KEY,
                other_kernel,
                {"signum": 2},
                COMM_TS,
                "abababababababababababababababab",
            ),
            "now_ms": COMM_TS,
        },
        {"name": "unsigned", "message": {"signum": 2}, "now_ms": COMM_TS},
        {
            "name": "no-signature",
            "message": {k: v for k, v in good.items() if k != "signature"},
            "now_ms": COMM_TS,
        },
        {"name": "float-ts", "message": {**good, "ts": float(COMM_TS)}, "now_ms": COMM_TS},
        {"name": "string-ts", "message": {**good, "ts": str(COMM_TS)}, "now_ms": COMM_TS},
    ]

    return {
        "description": (
            "Test vectors for the Gateway Provisioners launch protocol v2 (and legacy v1). "
            "Normative spec: docs/protocol.md. Regenerate with make_vectors.py."
        ),
        "protocol_version": 2,
        "rsa": {
            "comment": "TEST ONLY. This key is public: never use it outside these vectors.",
            "key_size": KEY_SIZE,
            "private_key_pem": pem,
            "public_key_b64": b64(public_der),
        },
        "launch": {
            "comment": (
                "RSA-OAEP is randomized: ciphertext_b64 is reproducible from aes_key/nonce/"
                "associated_data/body_json; sample_message holds one wrapping of aes_key made "
                "with the test key and must open to conn_info."
            ),
            "kernel_id": KERNEL_ID,
            "launch_secret": LAUNCH_SECRET,
            "conn_info": CONN_INFO,
            "aes_key_hex": AES_KEY.hex(),
            "nonce_hex": GCM_NONCE.hex(),
            "associated_data": ad,
            "body_json": body,
            "ciphertext_b64": b64(ciphertext),
            "tag_hex": ciphertext[-16:].hex(),
            "sample_message": sample,
            "rejections": rejections,
        },
        "legacy_v1": {
            "comment": (
                "Opens only when legacy launchers are allowed; AES-128-ECB/PKCS#7 with "
                "an RSA PKCS#1 v1.5 wrapped key, as gateway_provisioners launchers send it."
            ),
            "kernel_id": V1_KERNEL_ID,
            "conn_info": V1_CONN_INFO,
            "aes_key_hex": V1_AES_KEY.hex(),
            "plaintext_json": v1_plain,
            "ciphertext_b64": b64(v1_ciphertext),
            "sample_message": envelope_message(v1_envelope),
        },
        "comm": {
            "max_skew_ms": MAX_SKEW_MS,
            "requests": requests,
            "refusals": refusals,
        },
    }


def render(vectors: dict[str, Any]) -> str:
    return json.dumps(vectors, indent=2, ensure_ascii=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    previous = load_previous()
    text = render(build(previous))
    if args.check:
        current = VECTORS.read_text(encoding="utf-8") if VECTORS.exists() else ""
        if current != text:
            print(f"{VECTORS} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    VECTORS.write_text(text, encoding="utf-8")
    print(f"wrote {VECTORS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
