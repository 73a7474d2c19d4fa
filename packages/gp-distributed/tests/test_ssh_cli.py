"""``jupyter-ssh-spec install``: every backend flag lands in kernel.json, bad values are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gp_distributed.cli import main
from gp_provisioners_core.installer import InstallerError
from gp_provisioners_core.testing import installed_spec, provisioner_config


def install(tmp_path: Path, *flags: str) -> dict[str, Any]:
    assert main(["install", "--prefix", str(tmp_path), "--kernel-name", "ssh_t", *flags]) == 0
    folder = tmp_path / "share" / "jupyter" / "kernels" / "ssh_t"
    assert (folder / "scripts" / "launch_ipykernel.py").is_file()
    spec = installed_spec(folder)
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == "distributed-provisioner"
    return provisioner_config(spec)


def test_defaults_leave_everything_to_the_server(tmp_path: Path) -> None:
    assert install(tmp_path) == {}


def test_every_ssh_flag(tmp_path: Path) -> None:
    config = install(
        tmp_path,
        "--remote-hosts",
        "alice@node1:2222, node2 ,[::1]:22",
        "--load-balancing-algorithm",
        "least-connection",
        "--ssh-user",
        "svc",
        "--ssh-port",
        "2200",
        "--ssh-key-file",
        "/keys/gp",
        "--ssh-known-hosts",
        "/etc/gp/known_hosts",
        "--ssh-host-key-policy",
        "warn",
    )
    assert config == {
        "remote_hosts": ["alice@node1:2222", "node2", "[::1]:22"],
        "load_balancing_algorithm": "least-connection",
        "ssh_user": "svc",
        "ssh_port": 2200,
        "ssh_key_file": "/keys/gp",
        "ssh_known_hosts": "/etc/gp/known_hosts",
        "ssh_host_key_policy": "warn",
    }


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--remote-hosts", "node1:99999"], "--remote-hosts: host entry 'node1:99999'"),
        (["--ssh-port", "70000"], "--ssh-port 70000"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, flags: list[str], expected: str) -> None:
    with pytest.raises(InstallerError, match=expected):
        install(tmp_path, *flags)


def test_bad_choices_are_refused_by_the_parser(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        install(tmp_path, "--ssh-host-key-policy", "trust-everyone")
