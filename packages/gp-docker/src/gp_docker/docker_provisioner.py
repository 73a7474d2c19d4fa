"""DockerProvisioner (``docker-provisioner``): each kernel in its own container.

The container runs the kernelspec's argv (the launcher inside the image) on the configured
network, labelled with the kernel id.  Its state comes from the shared events watcher; the
SDK is called only to create, start, signal and remove it, and for the logs of a failure.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from docker.errors import APIError, ImageNotFound, NotFound

from .base import REMOVAL_TIMEOUT, DockerProvisionerBase
from .builders import (
    KernelContainer,
    container_create_args,
    host_config_args,
    resource_name,
)
from .docker_api import docker_client, run_sdk
from .events import ContainerState


def missing_image_reason(image: str, host: str) -> str:
    return (
        f"image {image!r} is not present on the Docker host {host}; build it or `docker load` "
        "it there (the provisioner never pulls from a registry)"
    )


class DockerProvisioner(DockerProvisionerBase):
    """Kernels in plain Docker containers."""

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *DockerProvisionerBase.persisted_fields,
        "container_id",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.container_id = ""

    def get_initial_states(self) -> set[str]:
        return {"created", "restarting"}

    def get_error_states(self) -> set[str]:
        return {"exited", "dead", "removing", "removed"}

    def get_container_status(self) -> str:
        state = self.events.container(self.container_id) if self.container_id else None
        return state.status if state is not None else ""

    def describe_resource(self) -> str:
        return f"container {self.container_name}"

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Create and start the kernel's container.  Called by ``launch_kernel``."""
        spec = self.kernel_container(cmd, env)
        self.container_id = ""  # a restart reuses the provisioner
        client = await self.connect()
        self.container_name = spec.name
        self.submitted = True
        try:
            self.container_id = await run_sdk(self._create, client, spec)
        except ImageNotFound:
            self.fail_launch(
                missing_image_reason(spec.image, self.docker_host),
                failure_reason="image-unavailable",
            )
        except APIError as err:
            self.fail_launch(f"Docker refused to create container {spec.name}: {_reason(err)}")
        try:
            await run_sdk(client.api.start, self.container_id)
        except APIError as err:
            self.fail_launch(
                f"container {spec.name} (image {spec.image}) could not start: {_reason(err)}"
            )

    def _create(self, client: Any, spec: KernelContainer) -> str:
        """Create the container (on an SDK thread) and record it in the watcher at once."""
        host_config = client.api.create_host_config(**host_config_args(spec))
        created = client.api.create_container(
            **container_create_args(spec), host_config=host_config
        )
        container_id = str(created["Id"])
        kernel_id = str(self.kernel_id)
        self.events.expect(
            ContainerState(container_id, spec.name, kernel_id, "", "created", None, False, _now())
        )
        return container_id

    async def relabel_backend(self, kernel_id: str) -> None:
        """A claimed pooled kernel (``gp_provisioners_core.pool``): its container is renamed
        for the new id (names are mutable, labels are not: they keep the launch id, which the
        records carry as ``launch_kernel_id``).  A failed rename is logged; the kernel runs on."""
        if not self.container_id:
            return
        name = resource_name(kernel_id)
        try:
            client = await run_sdk(docker_client)
            await run_sdk(client.api.rename, self.container_id, name)
            self.container_name = name
        except APIError as err:
            self.log.warning("Kernel %s: container not renamed: %s", kernel_id, _reason(err))

    async def collect_failure_detail(self) -> str:
        state = self.events.container(self.container_id)
        parts = []
        if state is not None and state.exit_code is not None:
            parts.append(f"exit code {state.exit_code}")
        if state is not None and state.oom_killed:
            parts.append("killed for lack of memory")
        parts.append(await self.container_logs(self.container_id))
        return "; ".join(parts)

    async def send_signal(self, signum: int) -> None:
        """The launcher's comm port first; else ``docker kill --signal`` (9 and 15 remove the
        container)."""
        if await self.signal_through_channel(signum) or not signum or not self.container_id:
            return
        if signum in (9, 15):
            await self.terminate_container_resources()
            return
        try:
            client = await run_sdk(docker_client)
            await run_sdk(client.api.kill, self.container_id, signal=signum)
        except APIError as err:
            self.log.warning("Kernel %s: docker kill -s %s: %s", self.kernel_id, signum, err)

    async def terminate_container_resources(self, restart: bool = False) -> None:
        """Remove the container (forcefully: ``kill``/``terminate`` mean it).  Idempotent."""
        container_id = self.container_id
        if not container_id:
            return
        state = self.events.container(container_id)
        if state is not None and state.status == "removed":
            return
        try:
            client = await run_sdk(docker_client)
            await run_sdk(client.api.remove_container, container_id, force=True)
        except NotFound:
            pass
        except APIError as err:
            if "already in progress" not in str(err):
                raise
        removed = await self.events.wait_until(
            lambda: _is_removed(self.events.container(container_id)), REMOVAL_TIMEOUT
        )
        if not removed:
            self.events.mark_removed(container_id)

    def forget_resources(self) -> None:
        if self.container_id:
            self.events.forget([self.container_id])


def _is_removed(state: ContainerState | None) -> bool:
    return state is None or state.status == "removed"


def _reason(err: APIError) -> str:
    return str(err.explanation or err)


def _now() -> float:
    return time.monotonic()
