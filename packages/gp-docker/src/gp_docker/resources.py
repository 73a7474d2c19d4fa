"""What a Docker or Swarm kernel may ask for: cpu, memory and GPU limits, and mounts from the
operator's allow-list; typed and bounded.

``KERNEL_CPUS`` (cores, ``0.5`` or ``500m``), ``KERNEL_MEMORY`` (``512Mi``, ``2G`` or bytes),
``KERNEL_GPUS`` (a count; plain Docker only) and ``KERNEL_MOUNTS``
(``name=/target[:ro],...``, names from ``allowed_mounts``).  :func:`resolve_resources` refuses
a value outside its bound or allow-list with ``InvalidLaunchParameterError`` naming the
variable, the value, the limit and the kernel id, before anything is created; the builders
turn :class:`ContainerResources` into ``create_host_config`` arguments
(:func:`host_config_resources`) and a Swarm task's ``Resources`` and ``Mounts``
(:func:`service_resources`).  Pure: no I/O.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gp_provisioners_core.errors import InvalidLaunchParameterError

_MEMORY = re.compile(r"^([0-9]{1,15}(?:\.[0-9]{1,6})?)(Ki|Mi|Gi|Ti|K|M|G|T|k)?$")
_UNITS = {
    None: 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
MAX_MOUNTS = 16
MAX_TARGET = 1024
VARIABLES = ("KERNEL_CPUS", "KERNEL_MEMORY", "KERNEL_GPUS", "KERNEL_MOUNTS")


def parse_memory(text: str) -> int:
    """``512Mi``, ``2G`` or bytes as bytes (``""``: 0); ``ValueError`` otherwise."""
    if not text:
        return 0
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a memory quantity (e.g. 512Mi, 2Gi, 1G or bytes)")
    return int(Decimal(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class MountSource:
    """One allowed mount: a host path (``bind``) or a named volume (``volume``)."""

    source: str
    kind: str = "bind"
    read_only: bool = False


@dataclass(frozen=True)
class ResourceLimits:
    """The operator's bounds (plain data from the provisioner's settings)."""

    default_cpus: float = 0.0
    max_cpus: float = 4.0
    default_memory: int = 0
    max_memory: int = 16 * 1024**3
    max_gpus: int = 0
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


def _refuse(name: str, value: str, why: str, kernel_id: str) -> InvalidLaunchParameterError:
    shown = value if len(value) <= 200 else value[:200] + "..."
    return InvalidLaunchParameterError(
        f"{name}={shown!r} for kernel {kernel_id} is refused: {why}", kernel_id=kernel_id
    )


def _cpus(raw: str, limits: ResourceLimits, kernel_id: str) -> float:
    text = raw.strip()
    try:
        number = Decimal(text[:-1]) / 1000 if text.endswith("m") else Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or number <= 0 or number > Decimal(str(limits.max_cpus)):
        raise _refuse(
            "KERNEL_CPUS",
            raw,
            f"it must be a number of cores above 0 and at most {limits.max_cpus:g} (max_cpus)",
            kernel_id,
        )
    return float(number)


def _memory(raw: str, limits: ResourceLimits, kernel_id: str) -> int:
    try:
        number = parse_memory(raw)
    except ValueError:
        raise _refuse(
            "KERNEL_MEMORY", raw, "it must be bytes or a quantity such as 512Mi or 2G", kernel_id
        ) from None
    if not 6 * 1024**2 <= number <= limits.max_memory:
        raise _refuse(
            "KERNEL_MEMORY",
            raw,
            f"it must be from 6Mi (Docker's least) to {limits.max_memory} bytes (max_memory)",
            kernel_id,
        )
    return number


def _gpus(raw: str, limits: ResourceLimits, kernel_id: str) -> int:
    text = raw.strip()
    if not limits.gpus_supported:
        raise _refuse("KERNEL_GPUS", raw, "Swarm kernels cannot ask for GPUs", kernel_id)
    if not (text.isascii() and text.isdigit()) or int(text) > limits.max_gpus:
        raise _refuse(
            "KERNEL_GPUS",
            raw,
            f"it must be a whole number up to {limits.max_gpus} (max_gpus)",
            kernel_id,
        )
    return int(text)


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
    cpus = _cpus(env["KERNEL_CPUS"], limits, kernel_id) if env.get("KERNEL_CPUS") else 0.0
    memory = _memory(env["KERNEL_MEMORY"], limits, kernel_id) if env.get("KERNEL_MEMORY") else 0
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
