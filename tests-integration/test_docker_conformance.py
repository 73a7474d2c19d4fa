"""The conformance suite for both gp-docker provisioners, against a real dockerd and Swarm.

Real ipykernel kernels in containers of the kernel image built from docker-images/, started by
the launcher inside them, answering the response manager on 127.0.0.1 (host networking).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from backends import dockerd
from backends.dockerd import DockerKernelspecs

from gp_provisioners_core.testing.conformance import ConformanceBackend, ProvisionerConformance

docker_backend = dockerd.docker_backend  # the session's private dockerd + Swarm (fixtures)
docker_kernelspecs = dockerd.docker_kernelspecs


def _client(base_url: str) -> Any:
    import docker

    return docker.DockerClient(base_url=base_url, timeout=30)


@dataclass
class DockerContainerBackend(ConformanceBackend):
    base_url: str = ""

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        client = _client(self.base_url)
        await asyncio.to_thread(client.api.kill, provisioner_info["container_id"])

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        from docker.errors import NotFound

        client = _client(self.base_url)
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
        client = _client(self.base_url)
        label = f"com.docker.swarm.service.id={service_id}"
        return list(client.containers.list(all=True, filters={"label": label}))

    async def kill_kernel_hard(self, provisioner_info: dict[str, Any]) -> None:
        containers = await asyncio.to_thread(self.task_containers, provisioner_info["service_id"])
        assert containers, "the service has no task container to kill"
        for container in containers:
            await asyncio.to_thread(container.kill)

    async def leftovers(self, provisioner_info: dict[str, Any]) -> list[str]:
        from docker.errors import NotFound

        client = _client(self.base_url)
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


class TestDockerConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, docker_kernelspecs: DockerKernelspecs) -> ConformanceBackend:
        return DockerContainerBackend(
            kernel_name=docker_kernelspecs.docker, base_url=docker_kernelspecs.backend.base_url
        )


class TestSwarmConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, docker_kernelspecs: DockerKernelspecs) -> ConformanceBackend:
        return SwarmServiceBackend(
            kernel_name=docker_kernelspecs.swarm, base_url=docker_kernelspecs.backend.base_url
        )
