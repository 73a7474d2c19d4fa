"""PersistentKernelManager's settings and what it keeps of a launch (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from traitlets import TraitError

from gp_server import PersistentKernelManager
from gp_server.manager import _persistable_launch_args


def test_a_restart_after_re_attach_keeps_only_kernel_variables_and_scalars() -> None:
    kept = _persistable_launch_args(
        {
            "cwd": "/home/alice",
            "kernel_id": "k-1",
            "env": {"KERNEL_USERNAME": "alice", "PATH": "/usr/bin", "AWS_SECRET": "x"},
            "extra_arguments": ["--debug"],
        }
    )
    assert kept == {"cwd": "/home/alice", "env": {"KERNEL_USERNAME": "alice"}}


def test_a_malformed_store_url_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(TraitError, match=r"store_url 'redis://x' is not a store .* sqlite:///"):
        PersistentKernelManager(store_url="redis://x", connection_dir=str(tmp_path))


def test_a_renew_interval_at_or_past_the_lease_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TraitError, match="lease_renew_interval 30 must be > 0 and below"):
        PersistentKernelManager(
            lease_seconds=30, lease_renew_interval=30, connection_dir=str(tmp_path)
        )


def test_the_store_id_names_the_store_not_its_password(tmp_path: Path) -> None:
    one = PersistentKernelManager(
        store_url="postgresql://jupyter:pw1@db:5432/k", connection_dir=str(tmp_path)
    )
    other = PersistentKernelManager(
        store_url="postgresql://jupyter:pw2@db:5432/k", connection_dir=str(tmp_path)
    )
    assert one.store_id == other.store_id
    assert len(one.store_id) == 16
    local = PersistentKernelManager(connection_dir=str(tmp_path))
    assert local.store_id != one.store_id
