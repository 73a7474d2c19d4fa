"""DistributedProvisioner's ssh settings and its ssh failure path, without any sshd.

A host entry naming a closed port on 127.0.0.1 is refused at once by the real paramiko, so the
fail-fast, the error text and the cool-down are checked end to end; the next launch then goes
to ``localhost`` (the local path) and runs a real kernel.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from gp_distributed.cli import SshSpecInstaller
from gp_distributed.load_balancing import HostSelector
from gp_distributed.provisioner import DistributedProvisioner
from gp_distributed.ssh import SshSettings
from gp_provisioners_core import KernelSpecConfigError, LaunchFailedError
from gp_provisioners_core.testing import execute, isolated_jupyter_paths, provisioner_of

SPEC = "gp_ssh_unit"


@pytest.fixture(scope="module")
def jupyter_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with isolated_jupyter_paths(tmp_path_factory.mktemp("jupyter")) as root:
        SshSpecInstaller().main(["install", "--prefix", str(root), "--kernel-name", SPEC])
        yield root


@pytest.fixture(autouse=True)
def selector(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostSelector]:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    for name in list(os.environ):
        if name.startswith(("GP_SSH_", "GP_REMOTE_")):
            monkeypatch.delenv(name)
    yield HostSelector.reset_shared()
    HostSelector.reset_shared()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_settings_come_from_gp_ssh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_SSH_USER", "svc")
    monkeypatch.setenv("GP_SSH_PORT", "2200")
    monkeypatch.setenv("GP_SSH_KEY_FILE", "/keys/gp")
    monkeypatch.setenv("GP_SSH_KNOWN_HOSTS", "/kh")
    monkeypatch.setenv("GP_SSH_HOST_KEY_POLICY", "warn")
    monkeypatch.setenv("GP_SSH_CONFIG_FILE", "")
    monkeypatch.setenv("GP_SSH_ALLOW_AGENT", "false")
    monkeypatch.setenv("GP_REMOTE_ENV_ALLOWLIST", "LANG, TZ")
    provisioner = DistributedProvisioner()
    assert provisioner.ssh_settings() == SshSettings(
        user="svc",
        port=2200,
        key_file="/keys/gp",
        known_hosts="/kh",
        host_key_policy="warn",
        config_file="",
        connect_timeout=10.0,
        allow_agent=False,
        max_sessions=8,
    )
    # gateway-era name of GP_ENV_ALLOWLIST: still read (with a warning) while the new one is unset
    assert provisioner.env_allowlist == {"LANG", "TZ"}
    assert provisioner.ssh_kernel_ip_from_connection is True


def test_defaults_behave_like_openssh() -> None:
    provisioner = DistributedProvisioner()
    settings = provisioner.ssh_settings()
    assert (settings.user, settings.port, settings.key_file, settings.known_hosts) == (
        "",
        0,
        "",
        "",
    )
    assert settings.host_key_policy == "reject"
    assert settings.config_file == "~/.ssh/config"
    assert provisioner.env_allowlist == set()


def test_bad_settings_name_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_SSH_HOST_KEY_POLICY", "yolo")
    with pytest.raises(ValueError, match="GP_SSH_HOST_KEY_POLICY='yolo' is unknown"):
        DistributedProvisioner().ssh_settings()
    with pytest.raises(KernelSpecConfigError, match="'yolo' is unknown"):
        DistributedProvisioner(ssh_host_key_policy="yolo")
    monkeypatch.delenv("GP_SSH_HOST_KEY_POLICY")
    with pytest.raises(KernelSpecConfigError, match="'node 1' has no host, or white space"):
        DistributedProvisioner(remote_hosts=["node 1"])
    with pytest.raises(KernelSpecConfigError, match="ssh_port 70000 is not a TCP port"):
        DistributedProvisioner(ssh_port=70000)


def test_which_hosts_use_ssh() -> None:
    provisioner = DistributedProvisioner()
    assert not provisioner.uses_ssh("localhost")
    assert not provisioner.uses_ssh("127.0.0.1")
    assert provisioner.uses_ssh("127.0.0.1:2222")
    assert provisioner.uses_ssh("alice@localhost")
    assert provisioner.uses_ssh("127.0.0.2")  # not an address of this machine's interfaces
    assert provisioner.uses_ssh("node1.example")
    assert DistributedProvisioner(ssh_local_hosts=True).uses_ssh("localhost")


async def test_kernelspec_override_of_an_ssh_setting_is_checked(jupyter_root: Path) -> None:
    spec_dir = jupyter_root / "share" / "jupyter" / "kernels" / "gp_ssh_bad"
    SshSpecInstaller().main(
        [
            "install",
            "--prefix",
            str(jupyter_root),
            "--kernel-name",
            "gp_ssh_bad",
            "--remote-hosts",
            "127.0.0.1:1",
        ]
    )
    kernel_json = spec_dir / "kernel.json"
    text = kernel_json.read_text().replace('"config": {', '"config": {"ssh_port": -5, ', 1)
    kernel_json.write_text(text)
    manager = AsyncKernelManager(kernel_name="gp_ssh_bad")
    with pytest.raises(KernelSpecConfigError, match="ssh_port=-5"):
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice"))


async def test_refused_host_fails_fast_cools_down_and_the_next_launch_goes_elsewhere(
    jupyter_root: Path, monkeypatch: pytest.MonkeyPatch, selector: HostSelector
) -> None:
    refused = f"gp@127.0.0.1:{closed_port()}"
    monkeypatch.setenv("GP_REMOTE_HOSTS", f"{refused},localhost")
    monkeypatch.setenv("GP_SSH_CONFIG_FILE", "")
    env = dict(os.environ, KERNEL_USERNAME="alice")

    manager = AsyncKernelManager(kernel_name=SPEC)
    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failed:
        await manager.start_kernel(env=env)
    assert time.monotonic() - started < 5
    message = str(failed.value)
    assert f"cannot reach host {refused} over ssh" in message
    assert "Unable to connect" in message
    assert "phase 'submitted'" in message
    assert selector.is_cooling(refused)
    assert selector.live_kernels(refused) == 0

    manager = AsyncKernelManager(kernel_name=SPEC)
    await manager.start_kernel(env=env)
    try:
        assert provisioner_of(manager, DistributedProvisioner).assigned_host == "localhost"
        client = manager.client()
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        assert (await execute(client, "print(1 + 1)")).stdout.strip() == "2"
        client.stop_channels()
    finally:
        await manager.shutdown_kernel()
    assert selector.live_kernels("localhost") == 0
