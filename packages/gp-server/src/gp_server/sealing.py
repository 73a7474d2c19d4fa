"""Encryption of the secrets a kernel record holds (connection key, CurveZMQ secret key).

The store keeps everything else in clear so that an operator can read it; the secrets travel
as one Fernet token (AES-128-CBC + HMAC-SHA256) under a key the operator provides, either in
``GP_SERVER_STORE_KEY`` (the urlsafe-base64 text ``Fernet.generate_key()`` prints) or in a file
named by ``GP_SERVER_STORE_KEY_FILE`` / ``PersistentKernelManager.store_key_file``.  Several
keys may be given, newest first, separated by commas or lines: the first encrypts, all decrypt
(key rotation).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# The connection-info fields that never reach the store in clear.
SECRET_FIELDS = ("key", "curve_secretkey")


class StoreKeyError(ValueError):
    """The store key is missing, malformed or cannot decrypt a record."""


def parse_keys(text: str, origin: str) -> MultiFernet:
    """A MultiFernet from ``text`` (keys separated by commas or newlines, newest first)."""
    raw = [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]
    if not raw:
        raise StoreKeyError(
            f"{origin} holds no key. Create one with "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
            ".decode())'` and put it there."
        )
    fernets = []
    for number, key in enumerate(raw, 1):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise StoreKeyError(
                f"key {number} in {origin} is not a Fernet key (32 bytes, urlsafe base64, "
                "44 characters); generate one with Fernet.generate_key()"
            ) from None
    return MultiFernet(fernets)


def load_store_key(key_file: str, generate_if_missing: bool) -> tuple[MultiFernet, str]:
    """The store key, and where it came from.

    Looks at ``GP_SERVER_STORE_KEY`` first, then ``key_file``.  When neither holds a key and
    ``generate_if_missing`` is true, a new key is written to ``key_file`` (mode 0600) — the
    single-server default; replicas must share a key the operator provides.  Called by
    ``PersistentKernelManager`` once, when its store opens.
    """
    text = os.environ.get("GP_SERVER_STORE_KEY", "")
    if text.strip():
        return parse_keys(text, "GP_SERVER_STORE_KEY"), "GP_SERVER_STORE_KEY"
    path = Path(key_file)
    if path.is_file():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise StoreKeyError(
                f"store key file {path} is readable by others (mode {mode:o}); "
                f"run `chmod 600 {path}`"
            )
        return parse_keys(path.read_text(), str(path)), str(path)
    if not generate_if_missing:
        raise StoreKeyError(
            f"no store key: set GP_SERVER_STORE_KEY or create {path} (mode 0600) holding a key "
            "from Fernet.generate_key(); every replica sharing the store needs the same key"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(Fernet.generate_key().decode() + "\n")
    return parse_keys(path.read_text(), str(path)), f"{path} (generated)"


def seal_connection(fernet: MultiFernet, connection: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """``connection`` without its secret fields, and those fields as one encrypted token."""
    public = {k: v for k, v in connection.items() if k not in SECRET_FIELDS}
    hidden = {
        k: (v.decode() if isinstance(v, bytes) else v)
        for k, v in connection.items()
        if k in SECRET_FIELDS
    }
    return public, fernet.encrypt(json.dumps(hidden).encode()).decode()


def open_connection(
    fernet: MultiFernet, public: dict[str, Any], token: str, kernel_id: str
) -> dict[str, Any]:
    """The full connection info from the clear part and the token ``seal_connection`` made."""
    try:
        hidden = json.loads(fernet.decrypt(token.encode()))
    except InvalidToken:
        raise StoreKeyError(
            f"the store key cannot decrypt the record of kernel {kernel_id}: it was written "
            "under another key. Give the old key too (newest first) in GP_SERVER_STORE_KEY or "
            "the key file"
        ) from None
    return {**public, **hidden}
