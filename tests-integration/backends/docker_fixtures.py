"""pytest fixtures of the Docker and Swarm suites (gp-docker): a private dockerd, a single-node
Swarm manager, the kernel image, and the two kernelspecs of ``jupyter docker-spec install``.

Registered for every suite by ``pytest_plugins`` in ``tests-integration/conftest.py``; the
bring-up itself is ``backends/dockerd.py`` (``python -m backends.dockerd`` runs it by hand).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from backends.dockerd import (
    BackendUnavailable,
    DockerBackend,
    DockerKernelspecs,
    dockerd_available,
    kernelspecs_installed,
    shared_docker_backend,
    stop_shared_docker_backend,
)
from backends.system_packages import cannot_run
from gp_provisioners_core.testing import ConformanceBackend


@pytest.fixture(scope="session")
def docker_backend() -> Iterator[DockerBackend]:
    """A private dockerd (Swarm manager) with the kernel image; fails when that cannot be."""
    reason = dockerd_available()
    if reason:
        cannot_run(f"docker suites need a private dockerd: {reason}")
    try:
        backend = shared_docker_backend()
    except BackendUnavailable as err:
        cannot_run(f"docker suites cannot run: {err}")
    yield backend
    stop_shared_docker_backend()


@pytest.fixture(scope="session")
def docker_kernelspecs(
    docker_backend: DockerBackend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerKernelspecs]:
    """The two kernelspecs and the docker suites' settings, for the session."""
    with kernelspecs_installed(docker_backend, tmp_path_factory.mktemp("docker-jupyter")) as specs:
        yield specs


def docker_client(base_url: str) -> Any:
    """A docker SDK client of the private daemon (imported late: the SDK is a test-only
    dependency)."""
    import docker

    return docker.DockerClient(base_url=base_url, timeout=30)


@dataclass
class DockerContainerBackend(ConformanceBackend):
    base_url: str = ""

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        client = docker_client(self.base_url)
        await asyncio.to_thread(client.api.kill, provisioner_info["container_id"])

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        from docker.errors import NotFound

        client = docker_client(self.base_url)
        try:
            state = await asyncio.to_thread(
                client.api.inspect_container, provisioner_info["container_id"]
            )
        except NotFound:
            return []
        return [f"container {state['Name']} is {state['State']['Status']}"]


@dataclass
class SwarmServiceBackend(ConformanceBackend):
    base_url: str = ""

    def task_containers(self, service_id: str) -> list[Any]:
        client = docker_client(self.base_url)
        label = f"com.docker.swarm.service.id={service_id}"
        return list(client.containers.list(all=True, filters={"label": label}))

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        containers = await asyncio.to_thread(self.task_containers, provisioner_info["service_id"])
        assert containers, "the service has no task container to kill"
        for container in containers:
            await asyncio.to_thread(container.kill)

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        from docker.errors import NotFound

        client = docker_client(self.base_url)
        service_id = provisioner_info["service_id"]
        found = []
        try:
            await asyncio.to_thread(client.api.inspect_service, service_id)
            found.append(f"service {provisioner_info['service_name']}")
        except NotFound:
            pass
        containers = await asyncio.to_thread(self.task_containers, service_id)
        found += [f"task container {c.name} ({c.status})" for c in containers]
        return found
