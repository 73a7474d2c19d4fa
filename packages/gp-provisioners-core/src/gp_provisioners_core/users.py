"""Who a kernel runs for, when the start request does not say.

:func:`kernel_username` picks the kernel's user: ``KERNEL_USERNAME`` of the start request;
else the operator's ``default_kernel_username``; else, under JupyterHub, the Hub's user (the
``JUPYTERHUB_USER`` of the single-user server's own process, never of the request, which a
client could set); else the server process's owner.  :func:`root_refusal_hint` is the advice an
``UnauthorizedUserError`` for root carries.  Pure but for reading the process's environment and
owner.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass

HUB_USER_ENV = "JUPYTERHUB_USER"
"""Set by JupyterHub's spawners in every single-user server's environment."""

FROM_REQUEST = "the start request's KERNEL_USERNAME"
FROM_SETTING = "default_kernel_username"
FROM_HUB = "JupyterHub's user (JUPYTERHUB_USER)"
FROM_PROCESS = "the server process's owner"


@dataclass(frozen=True)
class KernelUser:
    """The kernel's user and where the name came from (one of the ``FROM_*`` texts)."""

    name: str
    source: str


def kernel_username(
    request_env: Mapping[str, str],
    default_username: str = "",
    process_env: Mapping[str, str] | None = None,
) -> KernelUser:
    """The kernel's user for a start request whose environment is ``request_env``.

    Called by ``RemoteProvisionerBase.requested_user`` before authorization.
    ``process_env`` is the server's own environment (``os.environ`` when None).
    """
    requested = request_env.get("KERNEL_USERNAME", "")
    if requested:
        return KernelUser(requested, FROM_REQUEST)
    if default_username:
        return KernelUser(default_username, FROM_SETTING)
    hub_user = (os.environ if process_env is None else process_env).get(HUB_USER_ENV, "")
    if hub_user:
        return KernelUser(hub_user, FROM_HUB)
    return KernelUser(process_owner(), FROM_PROCESS)


def process_owner() -> str:
    """This process's user name; ``uid-<n>`` for a uid without a name (a container run with
    an arbitrary ``--user`` or ``runAsUser``, where ``getpass.getuser()`` raises)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def root_refusal_hint(user: KernelUser, config_class: str) -> str:
    """What to set when ``user`` (root, refused by ``unauthorized_users``) cannot start a kernel;
    ``config_class`` is the provisioner's class, the section its settings are configured in."""
    ways = []
    if user.source == FROM_PROCESS:
        ways.append(
            "run Jupyter Server as a non-root user (docs/operators/non-root.md), e.g. "
            "`docker run --user 1000:100` or `securityContext.runAsUser: 1000` in Kubernetes"
        )
    if user.source != FROM_REQUEST:
        ways.append(
            f"name the kernel's user: c.{config_class}.default_kernel_username = 'jovyan' "
            "(GP_DEFAULT_KERNEL_USERNAME=jovyan), or KERNEL_USERNAME in the start request"
        )
    else:
        ways.append("start it with another KERNEL_USERNAME")
    ways.append(
        f"or allow root kernels: c.{config_class}.unauthorized_users = set() "
        "(GP_UNAUTHORIZED_USERS set and empty) -- only where the kernel runs isolated"
    )
    return f"The user {user.name!r} came from {user.source}; to start kernels, " + "; ".join(ways)


__all__ = [
    "FROM_HUB",
    "FROM_PROCESS",
    "FROM_REQUEST",
    "FROM_SETTING",
    "HUB_USER_ENV",
    "KernelUser",
    "kernel_username",
    "process_owner",
    "root_refusal_hint",
]
