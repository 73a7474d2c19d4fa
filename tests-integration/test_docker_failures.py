"""Launches that must fail at once with the reason, requests that must be refused before
anything starts, and what a kernel container is given (user, env, image), on a real dockerd."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from backends.dockerd import DockerKernelspecs
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.errors import InvalidLaunchParameterError, LaunchFailedError
from gp_provisioners_core.testing.kernels import execute

KINDS = ("docker", "swarm")
FAIL_FAST_SECONDS = 5.0
NOISY_EXIT = "import sys\nfor i in range(30): print('line', i)\nsys.exit(3)"
MISSING_IMAGE = "gp/does-not-exist:0.1"
ALT_IMAGE = "gp/kernel-py:alt"


def _client(base_url: str) -> Any:
    import docker

    return docker.DockerClient(base_url=base_url, timeout=30)


@pytest.fixture(scope="module")
def specs(docker_kernelspecs: DockerKernelspecs) -> Iterator[dict[str, str]]:
    """Extra kernelspecs: a launcher that exits at once, a missing image, allowed images."""
    names: dict[str, str] = {}
    for kind in KINDS:
        swarm = ["--swarm"] if kind == "swarm" else []
        names[f"{kind}-exits"] = name = f"gp_{kind}_exits"
        docker_kernelspecs.install(name, *swarm)
        docker_kernelspecs.rewrite(name, argv=["python", "-c", NOISY_EXIT])
        names[f"{kind}-no-image"] = name = f"gp_{kind}_no_image"
        docker_kernelspecs.install(name, *swarm)
        docker_kernelspecs.rewrite(
            name, metadata={"kernel_provisioner": _provisioner(kind, image_name=MISSING_IMAGE)}
        )
    names["docker-alt"] = "gp_docker_alt"
    docker_kernelspecs.install("gp_docker_alt", "--allowed-images", "gp/kernel-py:*")
    client = _client(docker_kernelspecs.backend.base_url)
    client.api.tag(docker_kernelspecs.backend.image, ALT_IMAGE)
    yield names
    client.api.remove_image(ALT_IMAGE)


def _provisioner(kind: str, **config: Any) -> dict[str, Any]:
    name = "docker-swarm-provisioner" if kind == "swarm" else "docker-provisioner"
    return {"provisioner_name": name, "config": {"launch_timeout": 90, **config}}


def leftovers(base_url: str, kernel_id: str) -> list[str]:
    client = _client(base_url)
    label = f"gp.kernel-id={kernel_id}"
    found = [f"service {s.name}" for s in client.services.list(filters={"label": label})]
    containers = client.containers.list(all=True, filters={"label": label})
    return found + [f"container {c.name} ({c.status})" for c in containers]


async def start_failing(
    kernel_name: str, **env: str
) -> tuple[AsyncKernelManager, Exception, float]:
    manager = AsyncKernelManager(kernel_name=kernel_name)
    started = time.monotonic()
    launch_env = dict(os.environ, KERNEL_USERNAME="alice", **env)
    with pytest.raises((LaunchFailedError, InvalidLaunchParameterError)) as failed:
        await manager.start_kernel(env=launch_env)
    return manager, failed.value, time.monotonic() - started


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_container_exiting_before_connection_info_fails_at_once(
    kind: str, specs: dict[str, str], docker_kernelspecs: DockerKernelspecs
) -> None:
    manager, error, seconds = await start_failing(specs[f"{kind}-exits"])
    message = str(error)
    assert isinstance(error, LaunchFailedError), message
    assert seconds < FAIL_FAST_SECONDS, f"{seconds:.1f}s: {message}"
    assert "exit code 3" in message
    assert "last 20 log lines" in message
    assert "line 10" in message
    assert "line 29" in message
    assert not re.search(r"\bline 9\b", message)  # only the last 20 lines
    assert leftovers(docker_kernelspecs.backend.base_url, str(manager.kernel_id)) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_missing_image_fails_at_once_naming_it(
    kind: str, specs: dict[str, str], docker_kernelspecs: DockerKernelspecs
) -> None:
    manager, error, seconds = await start_failing(specs[f"{kind}-no-image"])
    message = str(error)
    assert isinstance(error, LaunchFailedError), message
    assert seconds < FAIL_FAST_SECONDS, f"{seconds:.1f}s: {message}"
    assert MISSING_IMAGE in message
    assert "not present" in message
    assert leftovers(docker_kernelspecs.backend.base_url, str(manager.kernel_id)) == []


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KERNEL_UID": "00"}, "KERNEL_UID='00'"),
        ({"KERNEL_UID": "1000", "KERNEL_GID": "0"}, "KERNEL_GID='0'"),
        ({"KERNEL_UID": "10OO"}, "KERNEL_UID='10OO'"),
        ({"KERNEL_IMAGE": "evil/miner:latest"}, "KERNEL_IMAGE='evil/miner:latest'"),
    ],
)
async def test_bad_requests_are_refused_before_anything_starts(
    kind: str, env: dict[str, str], expected: str, docker_kernelspecs: DockerKernelspecs
) -> None:
    name = docker_kernelspecs.swarm if kind == "swarm" else docker_kernelspecs.docker
    manager, error, seconds = await start_failing(name, **env)
    assert isinstance(error, InvalidLaunchParameterError)
    assert error.status_code == 400
    assert expected in str(error)
    assert str(manager.kernel_id) in str(error)
    assert seconds < FAIL_FAST_SECONDS
    assert leftovers(docker_kernelspecs.backend.base_url, str(manager.kernel_id)) == []


@pytest.mark.asyncio
async def test_kernel_gets_its_user_an_allowed_image_and_only_allowed_env(
    specs: dict[str, str], docker_kernelspecs: DockerKernelspecs
) -> None:
    manager = AsyncKernelManager(kernel_name=specs["docker-alt"])
    env = dict(
        os.environ,
        KERNEL_USERNAME="alice",
        KERNEL_UID="1234",
        KERNEL_GID="4321",
        KERNEL_IMAGE=ALT_IMAGE,
        KERNEL_EXTRA="kept",
        GP_TEST_SERVER_SECRET="must-not-travel",
    )
    await manager.start_kernel(env=env)
    kernel_id = str(manager.kernel_id)
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        code = (
            "import json, os; print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), "
            "'env': sorted(os.environ)}))"
        )
        result = await execute(client, code)
    finally:
        client.stop_channels()
    seen = json.loads(result.stdout)
    assert (seen["uid"], seen["gid"]) == (1234, 4321)
    assert "GP_TEST_SERVER_SECRET" not in seen["env"]
    assert "GP_LAUNCH_SECRET" not in seen["env"]  # the launcher keeps it from the kernel
    assert {"KERNEL_ID", "KERNEL_USERNAME", "KERNEL_EXTRA", "GP_DOCKER_NETWORK"} <= set(seen["env"])
    provisioner: Any = manager.provisioner
    inspected = _client(docker_kernelspecs.backend.base_url).api.inspect_container(
        provisioner.container_id
    )
    assert inspected["Config"]["Image"] == ALT_IMAGE
    assert inspected["Config"]["Labels"]["gp.kernel-id"] == kernel_id
    assert inspected["Config"]["User"] == "1234:4321"
    assert inspected["HostConfig"]["NetworkMode"] == "host"
    await manager.shutdown_kernel()
    assert leftovers(docker_kernelspecs.backend.base_url, kernel_id) == []
