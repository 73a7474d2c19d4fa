"""gateway_provisioners' ``GP_*`` variables that our provisioners no longer read.

Each one is either honoured, by setting the variable of ours that replaces it (only when ours is
unset, so an explicit setting wins), or warned about, naming what replaces it.  Each variable is
reported once per process.  :func:`apply_legacy_environment` is called by
``RemoteProvisionerBase.__init__`` before the provisioner's settings read their defaults.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _negate_bool(name: str, value: str) -> str:
    word = value.strip().lower()
    if word not in _TRUE + _FALSE:
        raise ValueError(f"{name}={value!r} is not true or false")
    return "false" if word in _TRUE else "true"


@dataclass(frozen=True)
class DroppedVariable:
    """One of gateway_provisioners' variables: what replaces it, and the variable of ours it
    sets (``maps_to``, through ``translate``) when it can be honoured."""

    name: str
    replacement: str
    maps_to: str = ""
    translate: Callable[[str, str], str] | None = None
    secret: bool = False  # never put the value in a message


DROPPED: tuple[DroppedVariable, ...] = (
    DroppedVariable(
        "GP_SHARED_NAMESPACE",
        "GP_CREATE_KERNEL_NAMESPACE (its opposite); shared kernels run in GP_NAMESPACE "
        "(default 'default'), not necessarily the server's namespace",
        maps_to="GP_CREATE_KERNEL_NAMESPACE",
        translate=_negate_bool,
    ),
    DroppedVariable(
        "GP_REMOTE_USER",
        "GP_SSH_USER (or c.DistributedProvisioner.ssh_user)",
        maps_to="GP_SSH_USER",
        translate=lambda name, value: value,
    ),
    DroppedVariable(
        "GP_RESPONSE_ADDR_ANY",
        "the response manager's address settings (GP_RESPONSE_IP, see docs/migration.md)",
    ),
    DroppedVariable(
        "GP_REMOTE_PWD",
        "nothing: password logins are not supported; use a key (GP_SSH_KEY_FILE) or an ssh "
        "agent, and remove the password from the environment",
        secret=True,
    ),
    DroppedVariable(
        "GP_REMOTE_GSS_SSH",
        "nothing: GSS-API (Kerberos) ssh logins are not supported; use a key (GP_SSH_KEY_FILE) "
        "or an ssh agent",
    ),
    DroppedVariable(
        "GP_ENABLE_TUNNELING",
        "nothing: kernel ports are not tunnelled through ssh; the server must reach the kernel "
        "host's ports (narrow them with port_range / GP_PORT_RANGE)",
    ),
    DroppedVariable(
        "GP_MIRROR_WORKING_DIRS",
        "nothing to switch on: gp-k8s applies a client's KERNEL_WORKING_DIR as the pod's "
        "workingDir; gp-docker does not mirror working directories",
    ),
    DroppedVariable(
        "GP_USE_INCLUSTER_CONFIG",
        "GP_KUBECONFIG or KUBECONFIG: with neither set, gp-k8s uses the in-cluster configuration",
    ),
    DroppedVariable(
        "GP_POLL_INTERVAL",
        "shared watches, tuned per backend: GP_YARN_STATUS_INTERVAL, GP_SLURM_STATUS_INTERVAL, "
        "GP_SSH_LAUNCH_CHECK_INTERVAL (Kubernetes and Docker watch, they do not poll)",
    ),
    DroppedVariable(
        "GP_SOCKET_TIMEOUT",
        "nothing: the response server applies its own per-connection read deadline",
    ),
    DroppedVariable(
        "GP_YARN_SHUTDOWN_WAIT_TIME",
        "c.KernelManager.shutdown_wait_time (jupyter_client), which every provisioner honours",
    ),
)

_reported: set[str] = set()


def apply_legacy_environment(
    environ: MutableMapping[str, str] | None = None, log: logging.Logger | None = None
) -> list[str]:
    """Honour or warn about each dropped variable set in ``environ`` (default ``os.environ``),
    once per process; return the messages logged.  Called by
    ``RemoteProvisionerBase.__init__``."""
    env = os.environ if environ is None else environ
    logger = log or logging.getLogger("gp_provisioners_core")
    said: list[str] = []
    for item in DROPPED:
        if item.name not in env or item.name in _reported:
            continue
        _reported.add(item.name)
        value = env[item.name]
        shown = "<hidden>" if item.secret else repr(value)
        if item.maps_to and item.translate is not None:
            if item.maps_to in env:
                message = (
                    f"{item.name}={shown} (gateway_provisioners) is ignored: {item.maps_to} "
                    f"is set and replaces it"
                )
            else:
                try:
                    env[item.maps_to] = item.translate(item.name, value)
                except ValueError as err:
                    message = f"{err}: ignored; set {item.replacement} instead"
                else:
                    message = (
                        f"{item.name}={shown} (gateway_provisioners) is honoured as "
                        f"{item.maps_to}={env[item.maps_to]!r}; set {item.replacement} instead"
                    )
        else:
            message = (
                f"{item.name}={shown} (gateway_provisioners) is no longer read; replaced by "
                f"{item.replacement}"
            )
        logger.warning(message)
        said.append(message)
    return said
