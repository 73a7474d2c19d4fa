"""ContainerProvisionerBase: the shared logic of container backends (Docker, Swarm, k8s, CRDs).

A backend supplies the container's status as a string (from its shared watcher's cache, never
by calling the API per kernel) and says which statuses mean "not started yet" and "failed"; this
base turns them into launch confirmation, fail-fast errors, ``poll`` and clean removal.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from typing import Any, ClassVar

from traitlets import Unicode, default

from .remote_provisioner import RemoteProvisionerBase


class ContainerProvisionerBase(RemoteProvisionerBase):
    """Base of provisioners whose kernel runs in a container the backend schedules."""

    image_name = Unicode(
        config=True,
        help="The kernel image (GP_IMAGE_NAME); kernelspecs usually set it in their config.",
    )

    @default("image_name")
    def _image_name_default(self) -> str:
        return os.getenv("GP_IMAGE_NAME", "")

    executor_image_name = Unicode(
        config=True,
        help="The image of Spark executors, when the kernel starts any (GP_EXECUTOR_IMAGE_NAME).",
    )

    @default("executor_image_name")
    def _executor_image_name_default(self) -> str:
        return os.getenv("GP_EXECUTOR_IMAGE_NAME", "")

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *RemoteProvisionerBase.persisted_fields,
        "container_name",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container_name = ""
        self.submitted = False
        """Whether the kernel's container (pod, service, custom resource) was submitted, or
        re-attached, and not deleted since: a backend sets it in ``submit_kernel`` and clears it
        once its clean-up removed the container."""

    @property
    def has_process(self) -> bool:
        return self.submitted or bool(self.container_name)

    @abstractmethod
    def get_initial_states(self) -> set[str]:
        """Statuses of a container that is not running yet (e.g. ``{"pending", "created"}``)."""

    @abstractmethod
    def get_error_states(self) -> set[str]:
        """Statuses that end a launch at once (e.g. ``{"failed", "exited"}``)."""

    @abstractmethod
    def get_container_status(self) -> str:
        """The container's current status, lower case; ``""`` when it is not (or no longer)
        known.  Must read the shared watcher's cache: it is called on every poll."""

    @abstractmethod
    def describe_failure(self) -> str:
        """The backend's own account of a failure (events, exit code, last log lines)."""

    @abstractmethod
    async def terminate_container_resources(self, restart: bool = False) -> None:
        """Remove everything this kernel created (containers, services, pods, namespaces).

        Called by ``kill``/``terminate``; must be idempotent and run SDK calls off the loop.
        """

    async def confirm_remote_startup(self) -> None:
        await self.receive_connection_info()
        status = self.get_container_status()
        self.confirm_backend(
            self.assigned_ip, f"container {self.container_name} is {status or 'known'}"
        )

    async def detect_launch_failure(self) -> None:
        status = self.get_container_status()
        if status in self.get_error_states():
            self.fail_launch(
                f"container {self.container_name} is {status}: {self.describe_failure()}",
                failure_reason="kernel-exited",
            )

    async def poll(self) -> int | None:
        status = self.get_container_status()
        if not status or status in self.get_error_states():
            return 1 if status else 0
        return None

    async def send_signal(self, signum: int) -> None:
        if not await self.signal_through_channel(signum) and signum in (9, 15):
            await self.terminate_container_resources()

    async def terminate(self, restart: bool = False) -> None:
        await self.shutdown_through_channel()
        await self.terminate_container_resources(restart)

    async def kill(self, restart: bool = False) -> None:
        await self.terminate_container_resources(restart)

    def log_kernel_launch(self, cmd: list[str]) -> None:
        self.log.info(
            "Kernel %s: container %s submitted with image %s",
            self.kernel_id,
            self.container_name,
            self.image_name,
        )
