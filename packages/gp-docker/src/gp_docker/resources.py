"""What a Docker or Swarm kernel may ask for: cpu, memory and GPU limits, and mounts from the
operator's allow-list; typed and bounded.

``KERNEL_CPUS`` (cores, ``0.5`` or ``500m``), ``KERNEL_MEMORY`` (``512Mi``, ``2G`` or bytes,
at least 6Mi), ``KERNEL_GPUS`` (a count; plain Docker only), parsed and bounded by
:mod:`gp_provisioners_core.resources` as on every backend, and ``KERNEL_MOUNTS``
(``name=/target[:ro],...``, names from ``allowed_mounts``).  :func:`resolve_resources` refuses
a value outside its bound or allow-list with ``InvalidLaunchParameterError`` naming the
variable, the value, the limit and the kernel id, before anything is created; the builders
turn :class:`ContainerResources` into ``create_host_config`` arguments
(:func:`host_config_resources`) and a Swarm task's ``Resources`` and ``Mounts``
(:func:`service_resources`).  Pure: no I/O.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.resources import (
    ResourceBounds,
    cpus_request,
    gpus_request,
    memory_request,
    parse_memory,
)

MAX_MOUNTS = 16
MAX_TARGET = 1024
VARIABLES = ("KERNEL_CPUS", "KERNEL_MEMORY", "KERNEL_GPUS", "KERNEL_MOUNTS")
LEAST_MEMORY = 6 * 1024**2
"""Docker refuses a memory limit below 6 MiB."""


@dataclass(frozen=True)
class MountSource:
    """One allowed mount: a host path (``bind``) or a named volume (``volume``)."""

    source: str
    kind: str = "bind"
    read_only: bool = False


@dataclass(frozen=True, kw_only=True)
class ResourceLimits(ResourceBounds):
    """The operator's bounds (plain data from the provisioner's settings): the core's cpu,
    memory and GPU bounds, the mounts a kernel may pick and whether GPUs can be honoured."""

    allowed_mounts: Mapping[str, MountSource] = field(default_factory=dict)
    gpus_supported: bool = True


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    kind: str
    read_only: bool


@dataclass(frozen=True)
class ContainerResources:
    """Validated limits and mounts of one kernel's container."""

    cpus: float = 0.0
    memory: int = 0
    gpus: int = 0
    mounts: tuple[Mount, ...] = ()


_refuse = InvalidLaunchParameterError.for_value


def _gpus(raw: str, limits: ResourceLimits, kernel_id: str) -> int:
    if not limits.gpus_supported:
        raise _refuse("KERNEL_GPUS", raw, "Swarm kernels cannot ask for GPUs", kernel_id)
    return gpus_request("KERNEL_GPUS", raw, limits.max_gpus, kernel_id)


def _mounts(raw: str, limits: ResourceLimits, kernel_id: str) -> tuple[Mount, ...]:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    allowed = ", ".join(sorted(limits.allowed_mounts)) or "none"
    if len(items) > MAX_MOUNTS:
        raise _refuse("KERNEL_MOUNTS", raw, f"it names more than {MAX_MOUNTS} mounts", kernel_id)
    mounts: list[Mount] = []
    for item in items:
        name, sep, rest = item.partition("=")
        target, _, mode = rest.partition(":")
        if name not in limits.allowed_mounts:
            raise _refuse(
                "KERNEL_MOUNTS",
                raw,
                f"mount {name!r} is not allowed; allowed: {allowed}",
                kernel_id,
            )
        if (
            not sep
            or mode not in ("", "ro")
            or not target.startswith("/")
            or target == "/"
            or len(target) > MAX_TARGET
            or posixpath.normpath(target) != target
            or any(ord(c) < 32 or c == "," for c in target)
            or any(m.target == target for m in mounts)
        ):
            raise _refuse(
                "KERNEL_MOUNTS",
                raw,
                "entries are NAME=/absolute/target[:ro], each target normalised, not /, named once",
                kernel_id,
            )
        source = limits.allowed_mounts[name]
        mounts.append(Mount(source.source, target, source.kind, source.read_only or mode == "ro"))
    return tuple(mounts)


def resolve_resources(
    env: Mapping[str, str], limits: ResourceLimits, kernel_id: str
) -> ContainerResources:
    """The kernel's limits and mounts from the start request's ``env``, within ``limits``.
    Called by the provisioner's ``pre_launch``."""
    cpus, memory = 0.0, 0
    if env.get("KERNEL_CPUS"):
        cpus = cpus_request(
            "KERNEL_CPUS", env["KERNEL_CPUS"], limits.max_cpus, kernel_id, allow_zero=False
        )
    if env.get("KERNEL_MEMORY"):
        memory = memory_request(
            "KERNEL_MEMORY",
            env["KERNEL_MEMORY"],
            limits.max_memory,
            kernel_id,
            least=LEAST_MEMORY,
            least_why="Docker's least",
        )
    gpus = _gpus(env["KERNEL_GPUS"], limits, kernel_id) if env.get("KERNEL_GPUS") else 0
    mounts = _mounts(env["KERNEL_MOUNTS"], limits, kernel_id) if env.get("KERNEL_MOUNTS") else ()
    return ContainerResources(
        cpus=cpus or limits.default_cpus,
        memory=memory or limits.default_memory,
        gpus=gpus,
        mounts=mounts,
    )


def host_config_resources(resources: ContainerResources) -> dict[str, Any]:
    """``create_host_config`` arguments of ``resources`` (plain data: dicts, not SDK types)."""
    args: dict[str, Any] = {}
    if resources.cpus:
        args["nano_cpus"] = int(Decimal(str(resources.cpus)) * 10**9)
    if resources.memory:
        args["mem_limit"] = resources.memory
    if resources.gpus:
        args["device_requests"] = [
            {"Driver": "", "Count": resources.gpus, "Capabilities": [["gpu"]]}
        ]
    if resources.mounts:
        args["mounts"] = [
            {
                "Type": m.kind,
                "Source": m.source,
                "Target": m.target,
                "ReadOnly": m.read_only,
            }
            for m in resources.mounts
        ]
    return args


def service_resources(resources: ContainerResources) -> tuple[dict[str, Any], list[Any]]:
    """A Swarm task's ``Resources`` and its container's ``Mounts`` for ``resources``."""
    limits: dict[str, Any] = {}
    if resources.cpus:
        limits["NanoCPUs"] = int(Decimal(str(resources.cpus)) * 10**9)
    if resources.memory:
        limits["MemoryBytes"] = resources.memory
    mounts = [
        {"Type": m.kind, "Source": m.source, "Target": m.target, "ReadOnly": m.read_only}
        for m in resources.mounts
    ]
    return ({"Limits": limits} if limits else {}), mounts


def mount_sources(raw: Mapping[str, Any]) -> dict[str, MountSource]:
    """The ``allowed_mounts`` setting (name -> {"source", "type", "read_only"}) as data;
    ``ValueError`` naming the entry when it is malformed."""
    found: dict[str, MountSource] = {}
    for name, entry in raw.items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("source"), str):
            raise ValueError(f"allowed_mounts[{name!r}] needs a 'source' (host path or volume)")
        kind = str(entry.get("type", "bind"))
        if kind not in ("bind", "volume"):
            raise ValueError(f"allowed_mounts[{name!r}]: type is bind or volume, not {kind!r}")
        found[str(name)] = MountSource(entry["source"], kind, bool(entry.get("read_only")))
    return found


__all__ = [
    "VARIABLES",
    "ContainerResources",
    "Mount",
    "MountSource",
    "ResourceLimits",
    "host_config_resources",
    "mount_sources",
    "parse_memory",
    "resolve_resources",
    "service_resources",
]
