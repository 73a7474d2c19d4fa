"""Pure builders: the container and service a kernel runs in, as plain data.

Nothing here talks to Docker.  User values (``KERNEL_*`` from the start request) go in as
data: into an argv element, an env value or a label value, never into text that something
parses.  Errors name the variable, the value and the kernel id.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gp_provisioners_core.argv import travelling_env
from gp_provisioners_core.errors import InvalidLaunchParameterError, KernelSpecConfigError
from gp_provisioners_core.protocol import LAUNCH_SECRET_ENV

from .resources import ContainerResources, host_config_resources, service_resources

KERNEL_ID_LABEL = "gp.kernel-id"
KERNEL_USERNAME_LABEL = "gp.kernel-username"
COMPONENT_LABEL = "gp.component"
COMPONENT = "kernel"
SWARM_SERVICE_ID_LABEL = "com.docker.swarm.service.id"
NETWORK_ENV = "GP_DOCKER_NETWORK"
"""The network setting's variable, on the server (its default) and in the kernel's env."""
LAUNCHER_ENV = (LAUNCH_SECRET_ENV, "GP_TRANSPORT_ENCRYPTION")
DEFAULT_GID = 100
"""The group of a kernel whose request names KERNEL_UID but no KERNEL_GID ("users")."""
MAX_ID = 2**31 - 1
NAME_PREFIX = "gp-"

_DIGITS = re.compile(r"[0-9]{1,10}")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}")
_NETWORK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")


@dataclass(frozen=True)
class KernelContainer:
    """What one kernel's container (or Swarm service) is made of."""

    name: str
    image: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    labels: Mapping[str, str]
    network: str = "host"
    user: str | None = None
    init: bool = True
    extra_host_config: Mapping[str, Any] = field(default_factory=dict)
    resources: ContainerResources = field(default_factory=ContainerResources)
    """cpu, memory and GPU limits and mounts (see :mod:`gp_docker.resources`)."""


def kernel_labels(kernel_id: str, username: str) -> dict[str, str]:
    """The labels that find a kernel's container or service again, in any process."""
    return {KERNEL_ID_LABEL: kernel_id, KERNEL_USERNAME_LABEL: username, COMPONENT_LABEL: COMPONENT}


def resource_name(kernel_id: str) -> str:
    """The container or service name of a kernel (kernel ids are already name-safe)."""
    return f"{NAME_PREFIX}{kernel_id}"


def select_image(configured: str, requested: str, allowed: Iterable[str], kernel_id: str) -> str:
    """The image to run: ``requested`` (KERNEL_IMAGE) when it is allowed, else ``configured``.

    ``allowed`` holds ``fnmatch`` patterns set by the operator (``*`` also matches ``/``).
    """
    requested = requested.strip()
    if not requested or requested == configured:
        if not configured:
            raise KernelSpecConfigError(
                f"Kernel {kernel_id}: no image is configured; set image_name in the kernelspec's "
                "metadata.kernel_provisioner.config (or GP_IMAGE_NAME)",
                kernel_id=kernel_id,
            )
        return configured
    patterns = sorted(p for p in allowed if p)
    if not _IMAGE.fullmatch(requested) or not any(
        fnmatch.fnmatchcase(requested, p) for p in patterns
    ):
        allowed_text = ", ".join(patterns) if patterns else "none"
        raise InvalidLaunchParameterError(
            f"KERNEL_IMAGE={requested!r} for kernel {kernel_id} is not an allowed image "
            f"(allowed patterns: {allowed_text}); omit it to use {configured!r}, or ask the "
            "operator to allow it (allowed_images, GP_ALLOWED_IMAGES)",
            kernel_id=kernel_id,
        )
    return requested


def parse_numeric_id(name: str, raw: str | None, kernel_id: str) -> int | None:
    """``raw`` (from ``name``) as an integer id; None when absent or empty.

    Only ASCII digits are accepted (no sign, space, underscore or other numerals), and the
    value is the number they spell: ``"00"`` is 0.
    """
    if raw is None or raw.strip() == "":
        return None
    text = raw.strip()
    if not _DIGITS.fullmatch(text) or int(text) > MAX_ID:
        raise InvalidLaunchParameterError(
            f"{name}={raw!r} for kernel {kernel_id} is not a numeric id (digits only, 0..{MAX_ID})",
            kernel_id=kernel_id,
        )
    return int(text)


def kernel_user(env: Mapping[str, str], kernel_id: str, allow_root: bool) -> str | None:
    """The ``uid:gid`` to run the kernel as, from KERNEL_UID / KERNEL_GID; None for the
    image's own user.  Id 0 (however it is spelled) is refused unless ``allow_root``."""
    uid = parse_numeric_id("KERNEL_UID", env.get("KERNEL_UID"), kernel_id)
    gid = parse_numeric_id("KERNEL_GID", env.get("KERNEL_GID"), kernel_id)
    for name, value in (("KERNEL_UID", uid), ("KERNEL_GID", gid)):
        if value == 0 and not allow_root:
            raise InvalidLaunchParameterError(
                f"{name}={env[name]!r} for kernel {kernel_id} is root (id 0), which this server "
                "does not allow; use another id, or ask the operator to set allow_root_kernels "
                "(GP_ALLOW_ROOT_KERNELS)",
                kernel_id=kernel_id,
            )
    if uid is None and gid is None:
        return None
    if uid is None:
        raise InvalidLaunchParameterError(
            f"KERNEL_GID={env['KERNEL_GID']!r} for kernel {kernel_id} needs KERNEL_UID too",
            kernel_id=kernel_id,
        )
    return f"{uid}:{gid if gid is not None else DEFAULT_GID}"


def check_network(network: str) -> str:
    """The network setting (``host``, ``none``, ``bridge`` or a network name), checked."""
    if not _NETWORK.fullmatch(network):
        raise ValueError(f"docker network {network!r} is not a network mode or name")
    return network


def container_env(env: Mapping[str, str], allowed: Iterable[str], network: str) -> dict[str, str]:
    """The kernel's environment: ``KERNEL_*``, the ``allowed`` names, what the launcher
    needs (launch secret, transport encryption) and the network setting.  Raises
    ``ValueError`` naming a variable that cannot be passed as data (see
    :func:`gp_provisioners_core.argv.travelling_env`)."""
    result = travelling_env(env, {*allowed, *LAUNCHER_ENV})
    result[NETWORK_ENV] = network
    return dict(sorted(result.items()))


def container_create_args(spec: KernelContainer) -> dict[str, Any]:
    """Keyword arguments of ``APIClient.create_container`` (``host_config`` apart)."""
    args: dict[str, Any] = {
        "image": spec.image,
        "command": list(spec.command),
        "name": spec.name,
        "environment": dict(spec.env),
        "labels": dict(spec.labels),
        "detach": True,
    }
    if spec.user is not None:
        args["user"] = spec.user
    return args


def host_config_args(spec: KernelContainer) -> dict[str, Any]:
    """Keyword arguments of ``APIClient.create_host_config``."""
    return {
        "network_mode": spec.network,
        "init": spec.init,
        **host_config_resources(spec.resources),
        **spec.extra_host_config,
    }


def service_create_args(spec: KernelContainer) -> dict[str, Any]:
    """Keyword arguments of ``APIClient.create_service``: one replica that is never restarted
    (a kernel that ends stays ended), on ``spec.network``, labelled on the service and on its
    task's container.  The image is used as given: nothing resolves it against a registry."""
    container_spec: dict[str, Any] = {
        "Image": spec.image,
        "Args": list(spec.command),
        "Env": [f"{name}={value}" for name, value in spec.env.items()],
        "Labels": dict(spec.labels),
        "Init": spec.init,
    }
    if spec.user is not None:
        container_spec["User"] = spec.user
    resources, mounts = service_resources(spec.resources)
    if mounts:
        container_spec["Mounts"] = mounts
    task_template: dict[str, Any] = {
        "ContainerSpec": container_spec,
        "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
        "Networks": [{"Target": spec.network}],
    }
    if resources:
        task_template["Resources"] = resources
    return {"task_template": task_template, "name": spec.name, "labels": dict(spec.labels)}
