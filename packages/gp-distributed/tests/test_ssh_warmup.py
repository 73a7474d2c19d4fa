"""The ssh warm-up's target discovery from installed kernelspecs (no sshd), its failure path
against a closed loopback port, and the server extension's wiring.

The kernelspecs are real kernel.json files installed by ``jupyter ssh-spec install`` into
isolated Jupyter paths and read by jupyter_client's real KernelSpecManager; the settings reach
the provisioners through a real traitlets ``Config`` as a server's configuration would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager
from traitlets.config import Config, Configurable

from gp_distributed import jupyter_extension
from gp_distributed.cli import SshSpecInstaller
from gp_distributed.ssh import SshConnectionPool
from gp_distributed.warmup import discover_targets, is_distributed_provisioner, warm_up
from gp_provisioners_core.testing import isolated_jupyter_paths


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("GP_SSH_", "GP_REMOTE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GP_SSH_CONFIG_FILE", "")


@pytest.fixture
def jupyter_root(tmp_path: Path) -> Iterator[Path]:
    with isolated_jupyter_paths(tmp_path) as root:
        yield root


def install(root: Path, name: str, *args: str, **config: Any) -> None:
    """Our kernelspec ``name`` (``args`` to the installer), with ``config`` added to its
    provisioner config."""
    SshSpecInstaller().main(["install", "--prefix", str(root), "--kernel-name", name, *args])
    if config:
        [spec_file] = root.rglob(f"kernels/{name}/kernel.json")
        spec = json.loads(spec_file.read_text())
        spec["metadata"]["kernel_provisioner"]["config"].update(config)
        spec_file.write_text(json.dumps(spec))


def install_other(root: Path, name: str, metadata: dict[str, Any]) -> None:
    folder = root / "share" / "jupyter" / "kernels" / name
    folder.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]}
    (folder / "kernel.json").write_text(
        json.dumps({**spec, "display_name": name, "language": "python", "metadata": metadata})
    )


def server(**settings: Any) -> Configurable:
    """A stand-in for the server application: only its configuration matters here."""
    return Configurable(config=Config(settings))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_targets_are_the_ssh_hosts_of_our_kernelspecs_as_a_launch_resolves_them(
    jupyter_root: Path, tmp_path: Path
) -> None:
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("Host gpu1\n  HostName 10.1.1.1\n  Port 2201\n  User ops\n")
    install(
        jupyter_root,
        "spark",
        "--remote-hosts=carol@h1.example:2222,gpu1,localhost,127.0.0.1",
        ssh_config_file=str(ssh_config),
    )
    install(jupyter_root, "plain", "--remote-hosts=h2.example", ssh_port=2022)
    install(jupyter_root, "twin", "--remote-hosts=h2.example", ssh_port=2022)
    install_other(jupyter_root, "local_python", {})
    install_other(
        jupyter_root,
        "elsewhere",
        {"kernel_provisioner": {"provisioner_name": "local-provisioner", "config": {}}},
    )

    parent = server(DistributedProvisioner={"ssh_user": "svc", "ssh_key_file": "/keys/gp"})
    found = discover_targets(KernelSpecManager(), parent)

    assert found.problems == []
    by_label = {w.target.label: w for w in found.targets}
    # localhost and 127.0.0.1 run launchers locally (no ssh); the entry's user and port win,
    # then the kernelspec's config, then the traitlets config, then ~/.ssh/config.
    assert sorted(by_label) == ["carol@h1.example:2222", "svc@10.1.1.1:2201", "svc@h2.example:2022"]
    assert by_label["svc@h2.example:2022"].kernelspecs == ["plain", "twin"]
    assert by_label["carol@h1.example:2222"].kernelspecs == ["spark"]
    assert all(w.target.key_files == ("/keys/gp",) for w in found.targets)
    assert by_label["svc@10.1.1.1:2201"].target.entry == "gpu1"


def test_a_host_from_gp_remote_hosts_and_the_host_key_policy_reach_the_target(
    jupyter_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GP_REMOTE_HOSTS", "n1.example,n2.example")
    monkeypatch.setenv("GP_SSH_HOST_KEY_POLICY", "warn")
    install(jupyter_root, "any_hosts")
    found = discover_targets(KernelSpecManager(), server(SshConfigMixin={"ssh_port": 2200}))
    assert [(w.target.hostname, w.target.port) for w in found.targets] == [
        ("n1.example", 2200),
        ("n2.example", 2200),
    ]
    assert {w.target.host_key_policy for w in found.targets} == {"warn"}


def test_a_kernelspec_with_bad_settings_is_named_and_the_others_still_found(
    jupyter_root: Path,
) -> None:
    install(jupyter_root, "broken", "--remote-hosts=h1.example", ssh_host_key_policy="trust-me")
    install(jupyter_root, "fine", "--remote-hosts=h2.example")
    found = discover_targets(KernelSpecManager(), server())
    assert [w.target.hostname for w in found.targets] == ["h2.example"]
    [problem] = found.problems
    assert "kernelspec broken" in problem
    assert "'trust-me'" in problem


def test_only_this_packages_provisioner_counts() -> None:
    assert is_distributed_provisioner("distributed-provisioner")
    assert not is_distributed_provisioner("local-provisioner")  # jupyter_client's, not loaded
    assert not is_distributed_provisioner("no-such-provisioner")


async def test_an_unreachable_host_is_one_warning_naming_host_and_kernelspec(
    jupyter_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entry = f"127.0.0.1:{closed_port()}"  # an entry with a port always means ssh
    install(jupyter_root, "down", f"--remote-hosts={entry}")
    install(jupyter_root, "local_only", "--remote-hosts=localhost")
    logger = logging.getLogger("test-warmup")
    with caplog.at_level(logging.INFO, logger="test-warmup"):
        [result] = await warm_up(KernelSpecManager(), server(), logger)
    assert result.error
    assert result.target.kernelspecs == ["down"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert entry in warnings[0]
    assert "kernelspec down" in warnings[0]
    assert not SshConnectionPool.instance().is_connected(result.target.target)


async def test_nothing_to_warm_without_ssh_kernelspecs(jupyter_root: Path) -> None:
    install(jupyter_root, "local_only", "--remote-hosts=localhost")
    assert await warm_up(KernelSpecManager(), server()) == []


class FakeServerApp(Configurable):
    """What the extension reads of a ServerApp: config, log, kernel_spec_manager."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(config=Config(settings))
        self.log = logging.getLogger("fake-server")
        self.kernel_spec_manager = KernelSpecManager()


async def test_the_extension_starts_the_warm_up_in_the_background(
    jupyter_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    install(jupyter_root, "down", f"--remote-hosts=127.0.0.1:{closed_port()}")
    assert jupyter_extension._jupyter_server_extension_points() == [
        {"module": "gp_distributed.jupyter_extension"}
    ]
    app = FakeServerApp()
    with caplog.at_level(logging.INFO, logger="fake-server"):
        jupyter_extension._load_jupyter_server_extension(app)
        await jupyter_extension._start_jupyter_server_extension(app)  # returns at once
        [task] = jupyter_extension._tasks
        await asyncio.wait_for(task, 30)
    messages = [r.getMessage() for r in caplog.records]
    assert "gp-distributed: ssh warm-up at start on (SshWarmUp.enabled)" in messages
    assert any("kernelspec down" in m for m in messages)
    assert not jupyter_extension._tasks


async def test_the_warm_up_is_off_by_config_or_environment(
    jupyter_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install(jupyter_root, "down", f"--remote-hosts=127.0.0.1:{closed_port()}")
    assert jupyter_extension.start_warm_up(FakeServerApp(SshWarmUp={"enabled": False})) is None
    monkeypatch.setenv("GP_SSH_WARM_AT_START", "false")
    assert jupyter_extension.start_warm_up(FakeServerApp()) is None
    monkeypatch.setenv("GP_SSH_WARM_AT_START", "maybe")
    with pytest.raises(ValueError, match="GP_SSH_WARM_AT_START"):
        jupyter_extension._load_jupyter_server_extension(FakeServerApp())


def test_the_installed_package_enables_the_extension() -> None:
    """What pip install put into the environment's Jupyter configuration."""
    config = Path(sys.prefix, "etc", "jupyter", "jupyter_server_config.d", "gp_distributed.json")
    enabled = json.loads(config.read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"gp_distributed.jupyter_extension": True}
