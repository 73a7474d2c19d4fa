"""The kernel parameters a user may choose through ``KERNEL_*``, typed and bounded.

:func:`resolve_parameters` turns the start request's environment and the operator's
:class:`Limits` into :class:`KernelParameters`, or raises ``InvalidLaunchParameterError`` naming
the variable, the value, the limit and the kernel id, before anything is created.  Cpu, memory
and GPU values are parsed and bounded by :mod:`gp_provisioners_core.resources`, as on Docker.
:func:`parameter_schema` publishes the same rules as a JSON Schema.  Pure: no I/O, no cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.resources import (
    MEMORY_PATTERN,
    ResourceBounds,
    cpus_request,
    format_memory,
    gpus_request,
    memory_request,
)

from . import pod_options
from .pod_options import OptionLimits, PodOptions, option_schema, resolve_pod_options

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MAX_WORKING_DIR = 1024

# The variables this module reads; each feeds one field of the pod.
PARAMETER_VARIABLES = (
    "KERNEL_IMAGE",
    "KERNEL_NAMESPACE",
    "KERNEL_SERVICE_ACCOUNT_NAME",
    "KERNEL_UID",
    "KERNEL_GID",
    "KERNEL_CPUS",
    "KERNEL_MEMORY",
    "KERNEL_GPUS",
    "KERNEL_CPUS_LIMIT",
    "KERNEL_MEMORY_LIMIT",
    "KERNEL_GPUS_LIMIT",
    "KERNEL_WORKING_DIR",
    "KERNEL_NODE_SELECTOR",
    "KERNEL_TOLERATIONS",
    *pod_options.VARIABLES,
)


@dataclass(frozen=True, kw_only=True)
class Limits(ResourceBounds):
    """What the operator allows (the provisioner's settings, as plain data): the core's cpu,
    memory and GPU bounds, and the pod's own choices."""

    image: str
    allowed_images: frozenset[str] = frozenset()
    namespace: str = "default"
    allowed_namespaces: frozenset[str] = frozenset()
    create_namespace: bool = False
    service_account: str = "default"
    allowed_service_accounts: frozenset[str] = frozenset()
    uid: int | None = None
    gid: int | None = None
    prohibited_uids: frozenset[int] = frozenset({0})
    prohibited_gids: frozenset[int] = frozenset({0})
    max_uid: int = 2**31 - 1
    gpu_resource_name: str = "nvidia.com/gpu"
    allowed_node_selector_keys: frozenset[str] = frozenset()
    allowed_toleration_keys: frozenset[str] = frozenset()
    options: OptionLimits = field(default_factory=OptionLimits)
    """Pull secrets, priority and runtime classes, affinity, labels, annotations, volumes."""


@dataclass(frozen=True)
class KernelParameters:
    """Validated values, ready for the pod builder."""

    image: str
    namespace: str
    service_account: str
    uid: int | None = None
    gid: int | None = None
    cpus: float = 0.0
    memory: int = 0
    gpus: int = 0
    cpus_limit: float = 0.0
    memory_limit: int = 0
    gpus_limit: int = 0
    working_dir: str = ""
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[tuple[str, str, str], ...] = ()  # (key, value, effect)
    options: PodOptions = field(default_factory=PodOptions)
    sources: Mapping[str, str] = field(default_factory=dict)  # variable -> raw value used


class _Checker:
    def __init__(self, env: Mapping[str, str], kernel_id: str) -> None:
        self.env = env
        self.kernel_id = kernel_id
        self.used: dict[str, str] = {}

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value == "":
            return None
        self.used[name] = value
        return value

    def refuse(self, name: str, value: str, why: str) -> InvalidLaunchParameterError:
        return InvalidLaunchParameterError.for_value(name, value, why, self.kernel_id)

    def choice(self, name: str, default: str, allowed: frozenset[str], what: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        permitted = allowed | {default}
        if value not in permitted:
            raise self.refuse(
                name, value, f"the allowed {what}s are {', '.join(sorted(permitted))}"
            )
        return value

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self.raw(name)
        if value is None:
            return default
        text = value.strip()
        if not text.isascii() or not text.isdigit() or len(text) > 18:
            raise self.refuse(name, value, f"it must be a whole number from {low} to {high}")
        number = int(text, 10)
        if not low <= number <= high:
            raise self.refuse(name, value, f"it must be from {low} to {high}")
        return number

    def cpus(self, name: str, default: float, high: float) -> float:
        value = self.raw(name)
        return default if value is None else cpus_request(name, value, high, self.kernel_id)

    def memory(self, name: str, default: int, high: int) -> int:
        value = self.raw(name)
        return default if value is None else memory_request(name, value, high, self.kernel_id)

    def gpus(self, name: str, high: int) -> int:
        value = self.raw(name)
        return 0 if value is None else gpus_request(name, value, high, self.kernel_id)


def format_cpus(number: float) -> str:
    """Cores as a Kubernetes quantity in millicores (``0.5`` -> ``500m``)."""
    return f"{round(number * 1000)}m"


def _pairs(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def resolve_parameters(
    env: Mapping[str, str], limits: Limits, kernel_id: str, username: str = ""
) -> KernelParameters:
    """Validate every ``KERNEL_*`` parameter in ``env`` against ``limits``; ``username`` (the
    kernel's user; default the request's ``KERNEL_USERNAME``) names the user's own volumes.

    Raises ``InvalidLaunchParameterError`` (HTTP 400) for the first refused value.
    """
    check = _Checker(env, kernel_id)
    image = check.choice("KERNEL_IMAGE", limits.image, limits.allowed_images, "image")
    namespace = check.choice(
        "KERNEL_NAMESPACE", limits.namespace, limits.allowed_namespaces, "namespace"
    )
    if "KERNEL_NAMESPACE" in check.used and limits.create_namespace:
        raise check.refuse(
            "KERNEL_NAMESPACE",
            namespace,
            "this kernelspec creates a namespace per kernel (create_kernel_namespace)",
        )
    service_account = check.choice(
        "KERNEL_SERVICE_ACCOUNT_NAME",
        limits.service_account,
        limits.allowed_service_accounts,
        "service account",
    )
    uid = check.integer("KERNEL_UID", limits.uid, 0, limits.max_uid)
    if uid is not None and uid in limits.prohibited_uids:
        raise check.refuse(
            "KERNEL_UID", env.get("KERNEL_UID", str(uid)), f"uid {uid} is prohibited"
        )
    gid = check.integer("KERNEL_GID", limits.gid, 0, limits.max_uid)
    if gid is not None and gid in limits.prohibited_gids:
        raise check.refuse(
            "KERNEL_GID", env.get("KERNEL_GID", str(gid)), f"gid {gid} is prohibited"
        )
    cpus = check.cpus("KERNEL_CPUS", limits.default_cpus, limits.max_cpus)
    cpus_limit = check.cpus("KERNEL_CPUS_LIMIT", 0.0, limits.max_cpus)
    memory = check.memory("KERNEL_MEMORY", limits.default_memory, limits.max_memory)
    memory_limit = check.memory("KERNEL_MEMORY_LIMIT", 0, limits.max_memory)
    gpus = check.gpus("KERNEL_GPUS", limits.max_gpus)
    gpus_limit = check.gpus("KERNEL_GPUS_LIMIT", limits.max_gpus)
    if cpus_limit and cpus > cpus_limit:
        raise check.refuse("KERNEL_CPUS", env["KERNEL_CPUS"], "it exceeds KERNEL_CPUS_LIMIT")
    if memory_limit and memory > memory_limit:
        raise check.refuse(
            "KERNEL_MEMORY", env.get("KERNEL_MEMORY", str(memory)), "it exceeds KERNEL_MEMORY_LIMIT"
        )
    working_dir = check.raw("KERNEL_WORKING_DIR") or ""
    if working_dir and (
        not working_dir.startswith("/")
        or len(working_dir) > MAX_WORKING_DIR
        or any(ord(c) < 32 for c in working_dir)
    ):
        raise check.refuse(
            "KERNEL_WORKING_DIR",
            working_dir,
            f"it must be an absolute path without control characters, at most {MAX_WORKING_DIR}",
        )
    node_selector = _node_selector(check, limits)
    tolerations = _tolerations(check, limits)
    options = resolve_pod_options(
        env, limits.options, kernel_id, username or env.get("KERNEL_USERNAME", "")
    )
    return KernelParameters(
        image=image,
        namespace=namespace,
        service_account=service_account,
        uid=uid,
        gid=gid,
        cpus=cpus,
        memory=memory,
        gpus=gpus,
        cpus_limit=cpus_limit,
        memory_limit=memory_limit,
        gpus_limit=gpus_limit,
        working_dir=working_dir,
        node_selector=node_selector,
        tolerations=tolerations,
        options=options,
        sources={**check.used, **options.sources},
    )


def _node_selector(check: _Checker, limits: Limits) -> tuple[tuple[str, str], ...]:
    raw = check.raw("KERNEL_NODE_SELECTOR")
    if raw is None:
        return ()
    pairs: dict[str, str] = {}
    for item in _pairs(raw):
        key, sep, value = item.partition("=")
        if not sep or key not in limits.allowed_node_selector_keys:
            allowed = ", ".join(sorted(limits.allowed_node_selector_keys)) or "none"
            raise check.refuse(
                "KERNEL_NODE_SELECTOR",
                raw,
                f"entries are KEY=VALUE with KEY one of the allowed keys ({allowed})",
            )
        if not _LABEL_VALUE.fullmatch(value):
            raise check.refuse("KERNEL_NODE_SELECTOR", raw, f"{value!r} is not a label value")
        pairs[key] = value
    return tuple(sorted(pairs.items()))


def _tolerations(check: _Checker, limits: Limits) -> tuple[tuple[str, str, str], ...]:
    raw = check.raw("KERNEL_TOLERATIONS")
    if raw is None:
        return ()
    found: list[tuple[str, str, str]] = []
    for item in _pairs(raw):
        body, _, effect = item.partition(":")
        key, _, value = body.partition("=")
        allowed = ", ".join(sorted(limits.allowed_toleration_keys)) or "none"
        if key not in limits.allowed_toleration_keys:
            raise check.refuse(
                "KERNEL_TOLERATIONS",
                raw,
                f"entries are KEY[=VALUE][:EFFECT] with KEY one of the allowed keys ({allowed})",
            )
        if not _LABEL_VALUE.fullmatch(value) or (effect and effect not in _TOLERATION_EFFECTS):
            raise check.refuse(
                "KERNEL_TOLERATIONS",
                raw,
                f"values are label values and effects one of {', '.join(_TOLERATION_EFFECTS)}",
            )
        found.append((key, value, effect))
    return tuple(found)


def is_label_value(text: str) -> bool:
    return bool(_LABEL_VALUE.fullmatch(text))


def is_label_name(text: str) -> bool:
    return bool(_LABEL_NAME.fullmatch(text))


def is_dns_label(text: str) -> bool:
    return bool(_DNS_LABEL.fullmatch(text))


def is_dns_subdomain(text: str) -> bool:
    return bool(_DNS_SUBDOMAIN.fullmatch(text)) and len(text) <= 253


def parameter_schema(limits: Limits) -> dict[str, Any]:
    """A JSON Schema of the ``KERNEL_*`` variables a client may send, under ``limits``."""

    def enum(default: str, allowed: frozenset[str]) -> list[str]:
        return sorted(allowed | {default})

    properties: dict[str, Any] = {
        "KERNEL_IMAGE": {"type": "string", "enum": enum(limits.image, limits.allowed_images)},
        "KERNEL_SERVICE_ACCOUNT_NAME": {
            "type": "string",
            "enum": enum(limits.service_account, limits.allowed_service_accounts),
        },
        "KERNEL_UID": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": f"uid from 0 to {limits.max_uid}; prohibited: "
            + (", ".join(str(u) for u in sorted(limits.prohibited_uids)) or "none"),
        },
        "KERNEL_GID": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "gid; prohibited: "
            + (", ".join(str(g) for g in sorted(limits.prohibited_gids)) or "none"),
        },
        "KERNEL_CPUS": {
            "type": "string",
            "description": f"cores requested, at most {limits.max_cpus:g} (e.g. 0.5 or 500m)",
        },
        "KERNEL_CPUS_LIMIT": {"type": "string", "description": f"at most {limits.max_cpus:g}"},
        "KERNEL_MEMORY": {
            "type": "string",
            "pattern": MEMORY_PATTERN.pattern,
            "description": f"memory requested, at most {format_memory(limits.max_memory)}",
        },
        "KERNEL_MEMORY_LIMIT": {
            "type": "string",
            "pattern": MEMORY_PATTERN.pattern,
            "description": f"at most {format_memory(limits.max_memory)}",
        },
        "KERNEL_GPUS": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": f"{limits.gpu_resource_name}, at most {limits.max_gpus}",
        },
        "KERNEL_GPUS_LIMIT": {"type": "string", "pattern": "^[0-9]+$"},
        "KERNEL_WORKING_DIR": {"type": "string", "pattern": "^/", "maxLength": MAX_WORKING_DIR},
        "KERNEL_NODE_SELECTOR": {
            "type": "string",
            "description": "KEY=VALUE,... with KEY in: "
            + (", ".join(sorted(limits.allowed_node_selector_keys)) or "(none allowed)"),
        },
        "KERNEL_TOLERATIONS": {
            "type": "string",
            "description": "KEY[=VALUE][:EFFECT],... with KEY in: "
            + (", ".join(sorted(limits.allowed_toleration_keys)) or "(none allowed)"),
        },
    }
    properties.update(option_schema(limits.options))
    if not limits.create_namespace:
        properties["KERNEL_NAMESPACE"] = {
            "type": "string",
            "enum": enum(limits.namespace, limits.allowed_namespaces),
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gp-k8s kernel parameters",
        "type": "object",
        "properties": properties,
    }
