"""DockerProvisionerBase: what the Docker and Swarm provisioners share.

Settings (traitlets with ``GP_*`` defaults), the per-kernel choices made in ``pre_launch``
(image, user, env), the shared watchers, launch failure reports with the container's exit code
and last log lines, and cleanup.  Subclasses create and remove their container or service.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, ClassVar

from traitlets import Bool, Dict, Set, TraitError, Unicode, default, validate

from gp_provisioners_core import ContainerProvisionerBase
from gp_provisioners_core.config import env_bool, env_set
from gp_provisioners_core.deprecated_settings import deprecated_alias
from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.resources import ResourceSettings
from gp_provisioners_core.watch import BackendWatch

from .builders import (
    KernelContainer,
    check_network,
    container_env,
    kernel_labels,
    kernel_user,
    resource_name,
    select_image,
)
from .docker_api import docker_client, docker_host, run_sdk
from .events import DockerEventsWatcher
from .resources import ContainerResources, ResourceLimits, mount_sources, resolve_resources

LOG_LINES = 20
SYNC_TIMEOUT = 15.0
REMOVAL_TIMEOUT = 15.0


class DockerProvisionerBase(ResourceSettings, ContainerProvisionerBase):  # type: ignore[metaclass]
    """Shared base of ``DockerProvisioner`` and ``DockerSwarmProvisioner``.

    ``default_cpus``, ``max_cpus``, ``default_memory``, ``max_memory`` and ``max_gpus`` (limits
    of the container; ``max_gpus`` plain Docker only) come from the core's
    :class:`~gp_provisioners_core.resources.ResourceSettings`, as on Kubernetes."""

    docker_network = Unicode(
        config=True,
        help="""The network kernels join (GP_DOCKER_NETWORK, default host): host, none,
        bridge, or the name of a network.  With host networking the launcher answers the
        response manager and binds the kernel's ports on the Docker host.  The kernel sees
        the same value as GP_DOCKER_NETWORK.""",
    )

    @default("docker_network")
    def _docker_network_default(self) -> str:
        return os.getenv("GP_DOCKER_NETWORK", "host") or "host"

    @validate("docker_network")
    def _validate_docker_network(self, proposal: dict[str, Any]) -> str:
        return check_network(str(proposal["value"]))

    allowed_images = Set(
        Unicode(),
        config=True,
        help="""Images a start request may ask for with KERNEL_IMAGE, as fnmatch patterns
        (GP_ALLOWED_IMAGES, comma-separated, default none: only image_name runs).""",
    )

    @default("allowed_images")
    def _allowed_images_default(self) -> set[str]:
        return env_set("GP_ALLOWED_IMAGES", "")

    renamed_env_allowlist_variables = ("GP_REMOTE_ENV_ALLOWLIST",)
    remote_env_allowlist = deprecated_alias("env_allowlist", Set(Unicode()))

    allow_root_kernels = Bool(
        config=True,
        help="""Accept KERNEL_UID / KERNEL_GID 0 (GP_ALLOW_ROOT_KERNELS, default false).
        Without it a request for id 0, however spelled ("0", "00"), is refused.""",
    )

    @default("allow_root_kernels")
    def _allow_root_kernels_default(self) -> bool:
        return env_bool("GP_ALLOW_ROOT_KERNELS", False)

    allowed_mounts = Dict(
        config=True,
        help="""Mounts KERNEL_MOUNTS may pick, by name: {"datasets": {"source": "/srv/data",
        "type": "bind", "read_only": true}} (type bind or volume).  Users choose a name and a
        target path, never a source.""",
    )

    @validate("allowed_mounts")
    def _validate_allowed_mounts(self, proposal: dict[str, Any]) -> dict[str, Any]:
        try:
            mount_sources(proposal["value"])
        except ValueError as err:
            raise TraitError(str(err)) from None
        return dict(proposal["value"])

    supports_gpus: ClassVar[bool] = True
    """Whether KERNEL_GPUS can be honoured (not by Swarm services)."""

    persisted_fields: ClassVar[tuple[str, ...]] = (
        *ContainerProvisionerBase.persisted_fields,
        "kernel_image",
        "docker_host",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kernel_image = ""
        self.kernel_user: str | None = None
        self.kernel_resources = ContainerResources()
        self.docker_host = ""
        self._failure_detail = ""

    # -- launch --------------------------------------------------------------------------------

    async def validate_launch(self, env: dict[str, str]) -> None:
        """Refuse a bad image, user or variable.  Called by the core's ``pre_launch`` after
        authorisation, before anything is registered or started."""
        kernel_id = str(self.kernel_id)
        self.kernel_image = select_image(
            self.image_name, env.get("KERNEL_IMAGE", ""), self.allowed_images, kernel_id
        )
        self.kernel_user = kernel_user(env, kernel_id, self.allow_root_kernels)
        self.kernel_resources = resolve_resources(env, self.resource_limits(), kernel_id)
        self._container_env(dict(env))  # refuses what cannot travel before anything starts

    def resource_limits(self) -> ResourceLimits:
        """The operator's bounds of KERNEL_CPUS/MEMORY/GPUS/MOUNTS, as plain data."""
        return ResourceLimits(
            **asdict(self.resource_bounds()),
            allowed_mounts=mount_sources(self.allowed_mounts),
            gpus_supported=self.supports_gpus,
        )

    def _container_env(self, env: dict[str, str]) -> dict[str, str]:
        spec_env = getattr(self.kernel_spec, "env", None) or {}
        if self.executor_image_name:
            env = {**env, "KERNEL_EXECUTOR_IMAGE": self.executor_image_name}
        try:
            return container_env(env, {*self.env_allowlist, *spec_env}, self.docker_network)
        except ValueError as err:
            raise InvalidLaunchParameterError(
                f"Kernel {self.kernel_id}: {err}; remove it from the start request",
                kernel_id=str(self.kernel_id),
            ) from None

    def kernel_container(self, cmd: list[str], env: dict[str, str]) -> KernelContainer:
        """The container this launch runs, as data (argv as given, env filtered)."""
        self._failure_detail = ""
        kernel_id = str(self.kernel_id)
        return KernelContainer(
            name=resource_name(kernel_id),
            image=self.kernel_image,
            command=tuple(cmd),
            env=self._container_env(env),
            labels=kernel_labels(kernel_id, self.kernel_username),
            network=self.docker_network,
            user=self.kernel_user,
            resources=self.kernel_resources,
        )

    async def connect(self) -> Any:
        """The shared client, with the events watcher synced; fails the launch when the
        daemon cannot be reached."""
        self.docker_host = docker_host()
        try:
            client = await run_sdk(docker_client)
        except Exception as err:  # noqa: BLE001 - reported as the launch failure
            self.fail_launch(f"the Docker daemon at {self.docker_host} is not reachable: {err}")
        if not await self.events.wait_synced(SYNC_TIMEOUT):
            self.fail_launch(
                f"the events stream of the Docker daemon at {self.docker_host} did not start "
                f"within {SYNC_TIMEOUT:g}s: {self.events.last_error or 'no answer'}"
            )
        return client

    def log_kernel_launch(self, cmd: list[str]) -> None:
        self.log.info(
            "Kernel %s: %s submitted to %s with image %s, network %s, user %s",
            self.kernel_id,
            self.describe_resource(),
            self.docker_host,
            self.kernel_image,
            self.docker_network,
            self.kernel_user or "(the image's)",
        )

    @property
    def events(self) -> DockerEventsWatcher:
        return DockerEventsWatcher.shared(
            self.docker_host or docker_host(), lambda: docker_client("events")
        )

    def launch_watches(self) -> Sequence[BackendWatch]:
        """The daemon's events watcher: a container that exits wakes the launch check."""
        return (self.events,)

    # -- failures --------------------------------------------------------------------------------

    async def detect_launch_failure(self) -> None:
        """Fail the launch at once when the container (or task) ended or was refused, with
        the exit code and the last log lines.  The check reads the watchers' caches; only a
        failure costs API calls (for the logs)."""
        status = self.get_container_status()
        if status in self.get_error_states():
            self._failure_detail = await self.collect_failure_detail()
            self.fail_launch(f"{self.describe_resource()} is {status}: {self.describe_failure()}")

    def describe_failure(self) -> str:
        return self._failure_detail or "no further detail from Docker"

    @abstractmethod
    def describe_resource(self) -> str:
        """``container NAME`` or ``service NAME``, for messages."""

    @abstractmethod
    async def collect_failure_detail(self) -> str:
        """The backend's account of a failed launch (exit code, error, last log lines)."""

    async def container_logs(self, container_id: str) -> str:
        """The last ``LOG_LINES`` lines a container wrote, indented, for an error message."""
        try:
            client = await run_sdk(docker_client)
            raw = await run_sdk(
                client.api.logs, container_id, stdout=True, stderr=True, tail=LOG_LINES
            )
        except Exception as err:  # noqa: BLE001 - the failure report must not fail
            return f"(its logs are unavailable: {err})"
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        lines = text.rstrip().splitlines()[-LOG_LINES:]
        if not lines:
            return "(it wrote no log lines)"
        return f"last {len(lines)} log lines:\n" + "\n".join(f"    {line}" for line in lines)

    # -- life ------------------------------------------------------------------------------------

    async def cleanup(self, restart: bool = False) -> None:
        """Remove what is left (a kernel that exited by itself is still there), forget it."""
        try:
            await self.terminate_container_resources(restart)
        except Exception as err:  # noqa: BLE001 - cleanup goes on
            self.log.warning("Kernel %s: removing its resources: %s", self.kernel_id, err)
        self.forget_resources()
        await super().cleanup(restart)

    @abstractmethod
    def forget_resources(self) -> None:
        """Drop this kernel's entries from the shared caches (after removal)."""

    async def poll(self) -> int | None:
        """None ("still running, as far as anyone knows") while the events stream is not
        synced and the cache does not know the kernel's container: the daemon has not
        answered, which says nothing about the kernel.  A re-attach during a daemon stall must
        never report a live kernel dead; once the stream is back, the listing decides."""
        if not self.events.synced and self.get_container_status() in ("", "new"):
            return None
        return await super().poll()

    def liveness_known(self) -> bool:
        """False while the events stream has not synced and the cache does not know the
        kernel's container (the daemon has not answered since the re-attach)."""
        return self.events.synced or self.get_container_status() not in ("", "new")

    async def load_provisioner_info(self, provisioner_info: dict[str, Any]) -> None:
        """Restore the saved ids, then make sure the watcher knows the kernel's container."""
        await super().load_provisioner_info(provisioner_info)
        if not await self.events.wait_synced(SYNC_TIMEOUT):
            self.log.warning(
                "Kernel %s: the Docker events stream is not synced: %s",
                self.kernel_id,
                self.events.last_error,
            )
