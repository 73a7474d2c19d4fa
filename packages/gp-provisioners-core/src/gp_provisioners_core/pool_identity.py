"""What a kernel was started with, as the key of a warm pool, and a kernelspec's pool settings.

Pure functions; called by :class:`~gp_provisioners_core.pool.KernelPools` for every start
request.  Two requests may share a pooled kernel only when their :class:`PoolIdentity` digests
are equal: the digest covers the kernelspec, the working directory (when matched) and the whole
start environment (user, uid/gid, namespace, image, resources and anything else that reaches the
kernel) except the per-request variables the operator lists as ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import KernelSpecConfigError

POOL_CONFIG_KEY = "pool"
"""The key of ``metadata.kernel_provisioner.config`` that holds a kernelspec's pool settings."""

USER_VARIABLES = ("KERNEL_USERNAME", "KERNEL_UID", "KERNEL_GID")
"""A request carrying any of these has a user identity (``per-user`` pools only)."""

DEFAULT_IGNORED_ENV = (
    "JPY_SESSION_NAME",
    "JPY_PARENT_PID",
    "KERNEL_ID",
    "KERNEL_LAUNCH_TIMEOUT",
    "PWD",
    "OLDPWD",
    "_",
)
"""Per-request variables that do not change what a kernel runs as."""


@dataclass(frozen=True)
class PoolIdentity:
    """The key of one pool.  ``username`` is kept for the claim-time re-check and for logs."""

    kernel_name: str
    digest: str
    username: str

    @property
    def has_user(self) -> bool:
        return bool(self.username)

    def describe(self) -> str:
        who = f"user {self.username}" if self.username else "no user"
        return f"{self.kernel_name} ({who}, {self.digest[:12]})"


def identity_of(
    kernel_name: str,
    env: Mapping[str, str] | None,
    cwd: str | None,
    *,
    ignored_env: tuple[str, ...] = DEFAULT_IGNORED_ENV,
    match_cwd: bool = True,
    spec_metadata: Mapping[str, Any] | None = None,
) -> PoolIdentity:
    """The pool key of a start request (or of the template a pooled kernel was started with).

    ``spec_metadata`` is the kernelspec's metadata (the provisioner's settings: image, namespace,
    resources...): a kernelspec edited after its pooled kernels started no longer matches them.
    """
    env = dict(env or {})
    kept = sorted((str(k), str(v)) for k, v in env.items() if k not in ignored_env)
    body = {
        "kernel": kernel_name,
        "cwd": (cwd or "") if match_cwd else "",
        "env": kept,
        "spec": json.loads(json.dumps(spec_metadata or {}, sort_keys=True, default=str)),
    }
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()
    user = env.get("KERNEL_USERNAME") or ""
    if not user and (env.get("KERNEL_UID") or env.get("KERNEL_GID")):
        user = f"uid:{env.get('KERNEL_UID', '')}/gid:{env.get('KERNEL_GID', '')}"
    return PoolIdentity(kernel_name, digest, user)


@dataclass(frozen=True)
class PoolSettings:
    """One kernelspec's pool: ``size`` ready kernels per identity (0: no pool), each retired
    after ``max_idle`` seconds unclaimed (0: never)."""

    size: int = 0
    max_idle: float = 0.0


def pool_settings(
    kernel_name: str, spec_metadata: Mapping[str, Any] | None, default_size: int, max_idle: float
) -> PoolSettings:
    """The pool settings of ``kernel_name``: its kernelspec's
    ``metadata.kernel_provisioner.config.pool`` over the operator's defaults.

    Raises :class:`KernelSpecConfigError` naming the kernelspec and the bad value.
    """
    provisioner = dict((spec_metadata or {}).get("kernel_provisioner") or {})
    raw = dict(provisioner.get("config") or {}).get(POOL_CONFIG_KEY)
    size, idle = default_size, max_idle
    if raw is not None:
        if isinstance(raw, int) and not isinstance(raw, bool):
            raw = {"size": raw}
        if not isinstance(raw, dict) or set(raw) - {"size", "max_idle"}:
            raise KernelSpecConfigError(
                f"Kernelspec {kernel_name}: metadata.kernel_provisioner.config.pool={raw!r} must "
                'be a number of kernels or {"size": N, "max_idle": SECONDS}; fix its kernel.json'
            )
        size = raw.get("size", size)
        idle = raw.get("max_idle", idle)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 1000:
        raise KernelSpecConfigError(
            f"Kernelspec {kernel_name}: pool size {size!r} must be a whole number from 0 to 1000"
        )
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or idle < 0:
        raise KernelSpecConfigError(
            f"Kernelspec {kernel_name}: pool max_idle {idle!r} must be a number of seconds >= 0"
        )
    return PoolSettings(size, float(idle))


__all__ = [
    "DEFAULT_IGNORED_ENV",
    "POOL_CONFIG_KEY",
    "USER_VARIABLES",
    "PoolIdentity",
    "PoolSettings",
    "identity_of",
    "pool_settings",
]
