"""Connection keys are sealed in the store under the operator's key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from gp_server.sealing import (
    StoreKeyError,
    load_store_key,
    open_connection,
    parse_keys,
    seal_connection,
)

CONNECTION = {"ip": "10.0.0.5", "shell_port": 5000, "key": b"s3cret-key", "transport": "tcp"}


def test_sealed_connection_keeps_the_key_out_of_the_clear_part() -> None:
    fernet = parse_keys(Fernet.generate_key().decode(), "test")
    public, token = seal_connection(fernet, CONNECTION)
    assert public == {"ip": "10.0.0.5", "shell_port": 5000, "transport": "tcp"}
    assert "s3cret" not in token
    opened = open_connection(fernet, public, token, "k-1")
    assert opened == {**public, "key": "s3cret-key"}


def test_a_rotated_key_still_opens_old_records() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    public, token = seal_connection(parse_keys(old, "old"), CONNECTION)
    rotated = parse_keys(f"{new},{old}", "rotated")
    assert open_connection(rotated, public, token, "k-1")["key"] == "s3cret-key"
    with pytest.raises(StoreKeyError, match="cannot decrypt the record of kernel k-1"):
        open_connection(parse_keys(new, "new"), public, token, "k-1")


def test_a_malformed_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreKeyError, match="key 2 in GP_SERVER_STORE_KEY is not a Fernet key"):
        parse_keys(f"{Fernet.generate_key().decode()},not-a-key", "GP_SERVER_STORE_KEY")


def test_the_key_comes_from_the_environment_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GP_SERVER_STORE_KEY", Fernet.generate_key().decode())
    _, origin = load_store_key(str(tmp_path / "none.key"), generate_if_missing=False)
    assert origin == "GP_SERVER_STORE_KEY"


def test_a_missing_key_is_generated_private_or_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GP_SERVER_STORE_KEY", raising=False)
    path = tmp_path / "run" / "store.key"
    with pytest.raises(StoreKeyError, match="no store key: set GP_SERVER_STORE_KEY or create"):
        load_store_key(str(path), generate_if_missing=False)
    _, origin = load_store_key(str(path), generate_if_missing=True)
    assert origin.endswith("(generated)")
    assert (path.stat().st_mode & 0o777) == 0o600
    _, again = load_store_key(str(path), generate_if_missing=True)
    assert again == str(path)


def test_a_key_file_others_can_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GP_SERVER_STORE_KEY", raising=False)
    path = tmp_path / "store.key"
    path.write_text(Fernet.generate_key().decode())
    os.chmod(path, 0o644)
    with pytest.raises(StoreKeyError, match=r"readable by others \(mode 644\); run `chmod 600"):
        load_store_key(str(path), generate_if_missing=False)
