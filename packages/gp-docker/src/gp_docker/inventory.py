"""What gp-docker created on a daemon, for gp-server's orphan sweep.

Kernel containers carry the ``gp.kernel-id`` label (Swarm task containers too, and their
services carry it as well); a gp-server launch also puts ``KERNEL_GP_SERVER_STORE=<store id>``
into the kernel's environment, which is how one store's kernels are told from another's.
Listing costs one ``containers`` and one ``services`` call plus one ``inspect`` per kernel
container; every call runs on the SDK threads.
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from docker.errors import APIError, NotFound

from gp_provisioners_core.inventory import STORE_ID_VARIABLE, BackendResource

from .builders import KERNEL_ID_LABEL
from .docker_api import docker_client, run_sdk


def _epoch(created: Any) -> float | None:
    """Docker's ``Created``: epoch seconds in listings, RFC 3339 text in inspect/services."""
    if isinstance(created, int | float):
        return float(created)
    if isinstance(created, str) and len(created) >= 19:
        try:
            return float(calendar.timegm(time.strptime(created[:19], "%Y-%m-%dT%H:%M:%S")))
        except ValueError:
            return None
    return None


class DockerContainerInventory:
    """Kernel containers and Swarm services of one store on the daemon ``DOCKER_HOST`` names."""

    name = "docker"

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id

    async def list_resources(self) -> list[BackendResource]:
        return await run_sdk(self._list)

    def _list(self) -> list[BackendResource]:
        client: Any = docker_client()  # the SDK's low-level API is untyped
        marker = f"{STORE_ID_VARIABLE}={self.store_id}"
        found: list[BackendResource] = []
        listing = client.api.containers(all=True, filters={"label": [KERNEL_ID_LABEL]})
        for entry in listing:
            try:
                details = client.api.inspect_container(entry["Id"])
            except NotFound:
                continue
            if marker not in (details.get("Config", {}).get("Env") or []):
                continue
            labels = entry.get("Labels") or {}
            if "com.docker.swarm.service.id" in labels:
                continue  # a task container: its service is listed (and removed) instead
            name = str((entry.get("Names") or [entry["Id"]])[0]).lstrip("/")
            found.append(
                BackendResource(
                    "docker", "container", name, labels[KERNEL_ID_LABEL], _epoch(entry["Created"])
                )
            )
        try:
            services = client.api.services(filters={"label": KERNEL_ID_LABEL})
        except APIError:
            services = []  # not a Swarm manager
        for service in services:
            spec = service.get("Spec", {})
            env = spec.get("TaskTemplate", {}).get("ContainerSpec", {}).get("Env") or []
            if marker not in env:
                continue
            found.append(
                BackendResource(
                    "docker",
                    "service",
                    str(spec.get("Name") or service["ID"]),
                    str(spec.get("Labels", {}).get(KERNEL_ID_LABEL, "")),
                    _epoch(service.get("CreatedAt")),
                )
            )
        return found

    async def remove(self, resource: Any) -> None:
        await run_sdk(self._remove, resource.kind, resource.name)

    @staticmethod
    def _remove(kind: str, name: str) -> None:
        client: Any = docker_client()
        try:
            if kind == "service":
                client.api.remove_service(name)
            else:
                client.api.remove_container(name, force=True)
        except NotFound:
            pass
