"""Many kernels at once on a real dockerd, and what polling them costs in Docker API calls.

20 containers launched concurrently: all ready, all run code, all shut down, nothing left.
Polling every kernel is answered from the shared events cache, so the API calls made while
polling 20 kernels are no more than while polling one (the bench prints the same figure over a
minute with ``gp_docker.measure_poll_api_calls``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import pytest
from backends.dockerd import KERNEL_LABEL, DockerKernelspecs
from jupyter_client.manager import AsyncKernelManager

from gp_docker import measure_poll_api_calls, run_poll_bench
from gp_provisioners_core.testing.kernels import execute

CONTAINER_KERNELS = 20
SERVICE_KERNELS = 6
POLL_WINDOW = 3.0
POLL_INTERVAL = 0.1


async def run_code(manager: AsyncKernelManager, code: str) -> str:
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=120)
        return (await execute(client, code, timeout=120)).stdout.strip()
    finally:
        client.stop_channels()


def labelled(base_url: str) -> list[str]:
    import docker

    client = docker.DockerClient(base_url=base_url, timeout=30)
    services = [f"service {s.name}" for s in client.services.list(filters={"label": KERNEL_LABEL})]
    containers = client.containers.list(all=True, filters={"label": KERNEL_LABEL})
    return services + [f"container {c.name} ({c.status})" for c in containers]


async def many_kernels(specs: DockerKernelspecs, kernel_name: str, count: int) -> dict[str, Any]:
    managers = [AsyncKernelManager(kernel_name=kernel_name) for _ in range(count)]
    env = dict(os.environ, KERNEL_USERNAME="alice")
    started = time.monotonic()
    results = await asyncio.gather(
        *(m.start_kernel(env=env) for m in managers), return_exceptions=True
    )
    try:
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"{len(failures)} of {count} launches failed: {failures[0]}"
        launched = time.monotonic() - started
        codes = [run_code(m, f"print({i} * 2)") for i, m in enumerate(managers)]
        outputs = await asyncio.gather(*codes)
        assert outputs == [str(i * 2) for i in range(count)]
        provisioners = [m.provisioner for m in managers]
        one = await measure_poll_api_calls(provisioners[:1], POLL_WINDOW, POLL_INTERVAL)
        every = await measure_poll_api_calls(provisioners, POLL_WINDOW, POLL_INTERVAL)
        print(f"\n{count} kernels launched in {launched:.1f}s")
        print(f"poll window, 1 kernel:   {one.summary()}")
        print(f"poll window, {count} kernels: {every.summary()}")
        assert every.alive == count
        assert every.polls >= count * 10
        return {"one": one, "every": every}
    finally:
        await asyncio.gather(
            *(m.shutdown_kernel() for m in managers if m.has_kernel),
            return_exceptions=True,
        )
        assert labelled(specs.backend.base_url) == []


@pytest.mark.asyncio
async def test_twenty_containers_at_once_and_polling_costs_no_api_call(
    docker_kernelspecs: DockerKernelspecs,
) -> None:
    figures = await many_kernels(docker_kernelspecs, docker_kernelspecs.docker, CONTAINER_KERNELS)
    one, every = figures["one"], figures["every"]
    # Polling containers is answered from the events cache: no container call at all (a
    # Swarm task query of another suite's leftover service would be the only possible call).
    for window in (one, every):
        assert [e for e in window.by_endpoint if "tasks" not in e] == [], window.summary()
    assert every.api_calls <= one.api_calls + 1


@pytest.mark.asyncio
async def test_swarm_polling_calls_stay_flat_as_services_grow(
    docker_kernelspecs: DockerKernelspecs,
) -> None:
    """Through the bench's own function: 1 service, then 6 at once."""
    windows = await run_poll_bench(
        docker_kernelspecs.swarm, (1, SERVICE_KERNELS), POLL_WINDOW, POLL_INTERVAL
    )
    for window in windows:
        print(f"\nswarm poll window: {window.summary()}")
    one, every = windows
    assert (one.alive, every.alive) == (1, SERVICE_KERNELS)
    # One batched task query per interval for all services, whatever their number.
    assert every.api_calls <= one.api_calls + 1
    assert every.api_calls <= POLL_WINDOW / 3.0 + 2
    assert labelled(docker_kernelspecs.backend.base_url) == []
