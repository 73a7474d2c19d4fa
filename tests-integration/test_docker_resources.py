"""cpu, memory and GPU limits and allow-listed mounts of Docker and Swarm kernels, on the
suite's real dockerd (and its one-node Swarm): each lands in the container or service as asked
and in the running kernel, and a value outside its bound or allow-list is refused before
anything starts, naming the variable.  This machine has no GPU: a GPU request is shown to
reach dockerd (which then refuses it for want of a GPU driver, and the launch fails naming it)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from backends.dockerd import DockerKernelspecs
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.errors import InvalidLaunchParameterError, LaunchFailedError
from gp_provisioners_core.testing.kernels import execute

KINDS = ("docker", "swarm")
ASKED = {"KERNEL_CPUS": "0.5", "KERNEL_MEMORY": "256Mi", "KERNEL_MOUNTS": "data=/data"}


def _client(base_url: str) -> Any:
    import docker

    return docker.DockerClient(base_url=base_url, timeout=30)


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gp-docker-data")
    (folder / "hello.txt").write_text("hello from the host\n")
    folder.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def specs(docker_kernelspecs: DockerKernelspecs, shared_dir: Path) -> dict[str, str]:
    names = {}
    for kind in KINDS:
        name = names[kind] = f"gp_{kind}_resources"
        folder = docker_kernelspecs.install(name, *(["--swarm"] if kind == "swarm" else []))
        path = folder / "kernel.json"
        spec = json.loads(path.read_text())
        spec["metadata"]["kernel_provisioner"]["config"].update(
            max_cpus=2,
            max_memory="1Gi",
            max_gpus=1,
            allowed_mounts={"data": {"source": str(shared_dir), "read_only": True}},
        )
        path.write_text(json.dumps(spec))
    return names


async def _start(name: str, **env: str) -> AsyncKernelManager:
    manager = AsyncKernelManager(kernel_name=name)
    await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice", **env))
    return manager


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_limits_and_mounts_land_in_the_container(
    kind: str, specs: dict[str, str], docker_kernelspecs: DockerKernelspecs, shared_dir: Path
) -> None:
    manager = await _start(specs[kind], **ASKED)
    provisioner: Any = manager.provisioner
    api = _client(docker_kernelspecs.backend.base_url).api
    try:
        if kind == "docker":
            host = api.inspect_container(provisioner.container_id)["HostConfig"]
            assert host["NanoCpus"] == 500_000_000
            assert host["Memory"] == 256 * 1024**2
            mounts = host["Mounts"]
        else:
            task = api.inspect_service(provisioner.container_name)["Spec"]["TaskTemplate"]
            assert task["Resources"]["Limits"] == {
                "NanoCPUs": 500_000_000,
                "MemoryBytes": 256 * 1024**2,
            }
            mounts = task["ContainerSpec"]["Mounts"]
        assert [(m["Source"], m["Target"], m.get("ReadOnly")) for m in mounts] == [
            (str(shared_dir), "/data", True)
        ]
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=60)
            code = (
                "import pathlib\nprint(pathlib.Path('/data/hello.txt').read_text().strip())\n"
                "try:\n    pathlib.Path('/data/new').write_text('x')\n    print('writable')\n"
                "except OSError as err:\n    print('read-only', err.errno)"
            )
            lines = (await execute(client, code)).stdout.split("\n")
        finally:
            client.stop_channels()
        assert lines[0] == "hello from the host"
        assert lines[1].startswith("read-only")
    finally:
        await manager.shutdown_kernel(now=True)


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KERNEL_CPUS", "3"),
        ("KERNEL_CPUS", "-1"),
        ("KERNEL_MEMORY", "2Gi"),
        ("KERNEL_MEMORY", "lots"),
        ("KERNEL_GPUS", "2"),
        ("KERNEL_MOUNTS", "root=/host"),
        ("KERNEL_MOUNTS", "data=relative"),
        ("KERNEL_MOUNTS", "data=/a/../etc"),
    ],
)
async def test_out_of_bounds_refused_before_anything_starts(
    kind: str,
    variable: str,
    value: str,
    specs: dict[str, str],
    docker_kernelspecs: DockerKernelspecs,
) -> None:
    manager = AsyncKernelManager(kernel_name=specs[kind])
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await manager.start_kernel(
            env=dict(os.environ, KERNEL_USERNAME="alice", **{variable: value})
        )
    assert f"{variable}=" in str(refused.value)
    assert str(manager.kernel_id) in str(refused.value)
    client = _client(docker_kernelspecs.backend.base_url)
    label = f"gp.kernel-id={manager.kernel_id}"
    assert client.containers.list(all=True, filters={"label": label}) == []
    assert client.services.list(filters={"label": label}) == []


@pytest.mark.asyncio
async def test_swarm_refuses_gpus_naming_the_variable(specs: dict[str, str]) -> None:
    manager = AsyncKernelManager(kernel_name=specs["swarm"])
    with pytest.raises(InvalidLaunchParameterError, match=r"KERNEL_GPUS='1'.*Swarm"):
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice", KERNEL_GPUS="1"))


@pytest.mark.asyncio
async def test_gpu_request_reaches_dockerd(specs: dict[str, str]) -> None:
    manager = AsyncKernelManager(kernel_name=specs["docker"])
    with pytest.raises(LaunchFailedError) as failed:
        await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice", KERNEL_GPUS="1"))
    # dockerd got the device request and has no driver for it on this GPU-less machine.
    assert "could not select device driver" in str(failed.value)
    assert "gpu" in str(failed.value)
