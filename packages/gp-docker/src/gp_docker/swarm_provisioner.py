"""DockerSwarmProvisioner (``docker-swarm-provisioner``): each kernel as a Swarm service.

One replica, restart policy ``none`` (a kernel that ends stays ended), the image used as given
(no registry lookup; dockerd should run with ``DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1`` so its
executor does not pull either).  The kernel is found again through its task's container: the
events watcher knows every container labelled with a kernel id, and Swarm labels a task's
container with its service id.  Task states (for tasks that never got a container, or run on
another node) come from one batched task query per interval for all services.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from docker.errors import APIError, NotFound

from gp_provisioners_core.watch import BackendWatch
from gp_provisioners_core.watcher import BatchedStatusWatcher

from .base import REMOVAL_TIMEOUT, DockerProvisionerBase
from .builders import service_create_args
from .docker_api import docker_client, docker_host, run_sdk
from .events import ContainerState
from .tasks import TaskStatus, shared_task_watcher

TASK_INITIAL_STATES = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting"}
TASK_ERROR_STATES = {"complete", "failed", "rejected", "shutdown", "orphaned", "remove"}
CONTAINER_ERROR_STATES = {"exited", "dead", "removing", "removed"}


class DockerSwarmProvisioner(DockerProvisionerBase):
    """Kernels as Docker Swarm services."""

    backend_label: ClassVar[str] = "swarm"
    supports_gpus: ClassVar[bool] = False

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *DockerProvisionerBase.persisted_fields,
        "service_id",
        "service_name",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service_id = ""
        self.service_name = ""
        self._service_removed = False

    @property
    def tasks(self) -> BatchedStatusWatcher[TaskStatus]:
        return shared_task_watcher(self.docker_host or docker_host(), docker_client)

    def launch_watches(self) -> Sequence[BackendWatch]:
        """The task watcher and the events watcher (the task's container)."""
        return (self.tasks, self.events)

    def get_initial_states(self) -> set[str]:
        return {*TASK_INITIAL_STATES, "created"}

    def get_error_states(self) -> set[str]:
        return TASK_ERROR_STATES | CONTAINER_ERROR_STATES

    def task_containers(self) -> list[ContainerState]:
        return self.events.containers_of_service(self.service_id) if self.service_id else []

    def get_container_status(self) -> str:
        """The task container's status when this node has it, else the task's state."""
        if not self.service_id:
            return ""
        if self._service_removed:
            return "removed"
        containers = self.task_containers()
        if any(c.status == "running" for c in containers):
            return "running"
        if containers:
            return containers[-1].status
        observed = self.tasks.observe(self.service_id)
        if observed is None:
            return "new"  # submitted, not queried yet
        if observed.status is None:
            return "removed"  # the service is gone
        return observed.status.state

    def describe_resource(self) -> str:
        return f"service {self.service_name}"

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        """Create the kernel's service.  Called by ``launch_kernel``."""
        spec = self.kernel_container(cmd, env)
        self.service_id, self._service_removed = "", False  # a restart reuses the provisioner
        client = await self.connect()
        self.service_name = self.container_name = spec.name
        self.submitted = True
        try:
            created = await run_sdk(client.api.create_service, **service_create_args(spec))
        except APIError as err:
            self.fail_launch(
                f"Swarm refused to create service {spec.name}: {err.explanation or err}"
            )
        self.service_id = str(created["ID"])
        self.tasks.watch(self.service_id, launching=True)

    async def confirm_remote_startup(self) -> None:
        await super().confirm_remote_startup()
        self.tasks.launched(self.service_id)

    async def collect_failure_detail(self) -> str:
        """Swarm's task error, the exit code (the container's, from its die event, else the
        failed task's) and the task container's last log lines when this node has it."""
        observed = self.tasks.observe(self.service_id)
        task = observed.status if observed is not None else None
        containers = self.task_containers()
        container = containers[-1] if containers else None
        parts = []
        if task is not None:
            if "No such image" in task.error:
                parts.append(f"image {self.kernel_image!r} is not present on the node")
            if container is None:
                parts.append(f"task {task.task_id[:12]} {task.state}")
            if task.error:
                parts.append(f"error: {task.error}")
        exit_code = container.exit_code if container is not None else None
        if exit_code is None and task is not None and task.state in ("failed", "complete"):
            exit_code = task.exit_code
        if exit_code is not None:
            parts.append(f"exit code {exit_code}")
        if container is not None:
            parts.append(await self.container_logs(container.container_id))
        return "; ".join(parts) or "no task or container is known"

    async def send_signal(self, signum: int) -> None:
        """The launcher's comm port first; else signal the task container on this node (9
        and 15 remove the service)."""
        if await self.signal_through_channel(signum) or not signum or not self.service_id:
            return
        if signum in (9, 15):
            await self.terminate_container_resources()
            return
        client = await run_sdk(docker_client)
        for container in self.task_containers():
            if container.status == "running":
                try:
                    await run_sdk(client.api.kill, container.container_id, signal=signum)
                except APIError as err:
                    self.log.warning("Kernel %s: signal %s: %s", self.kernel_id, signum, err)

    async def terminate_container_resources(self, restart: bool = False) -> None:
        """Remove the service, then its lingering task container (on this node), and wait
        until the watcher saw it go.  Idempotent."""
        if not self.service_id:
            return
        client = await run_sdk(docker_client)
        try:
            await run_sdk(client.api.remove_service, self.service_id)
        except NotFound:
            pass
        self._service_removed = True
        for container in self.task_containers():
            if container.status == "removed":
                continue
            try:
                await run_sdk(client.api.remove_container, container.container_id, force=True)
            except NotFound:
                self.events.mark_removed(container.container_id)
            except APIError as err:
                self.log.debug("Kernel %s: removing task container: %s", self.kernel_id, err)
        gone = await self.events.wait_until(
            lambda: all(c.status == "removed" for c in self.task_containers()), REMOVAL_TIMEOUT
        )
        if not gone:
            self.log.warning(
                "Kernel %s: the task container of service %s was not removed within %gs",
                self.kernel_id,
                self.service_name,
                REMOVAL_TIMEOUT,
            )

    def forget_resources(self) -> None:
        if self.service_id:
            self.tasks.unwatch(self.service_id)
            self.events.forget(c.container_id for c in self.task_containers())

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Restore the service, and find its task container again (watcher and tasks).  When
        the events stream did not sync (the daemon does not answer), the task query is left to
        the watcher instead of waiting for it too: the kernel's state is unknown meanwhile."""
        await super().load_provisioner_info(provisioner_info)
        if self.service_id:
            self.tasks.watch(self.service_id, launching=False)
            if self.events.synced:
                await run_sdk(self.tasks.refresh)
