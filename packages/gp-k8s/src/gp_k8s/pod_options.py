"""The pod customisations a user may ask for, each typed, allow-listed and bounded.

Besides the resources and placement of :mod:`gp_k8s.parameters`, a start request may choose:

=============================  ==============================================================
``KERNEL_IMAGE_PULL_SECRETS``  ``a,b``: Secrets from ``allowed_image_pull_secrets``
``KERNEL_PRIORITY_CLASS_NAME`` one of ``allowed_priority_classes``
``KERNEL_RUNTIME_CLASS_NAME``  one of ``allowed_runtime_classes``
``KERNEL_AFFINITY``            the name of one of the operator's ``affinity_presets``
``KERNEL_LABELS``              ``key=value,...`` with keys from ``allowed_label_keys``
``KERNEL_ANNOTATIONS``         ``key=value,...`` or a JSON object, keys from
                               ``allowed_annotation_keys``
``KERNEL_VOLUMES``             ``name=/mount/path[:ro],...``: volumes of ``allowed_volumes``
=============================  ==============================================================

and every kernel gets the user's own claim when the operator sets ``user_volume_claim``
(a name pattern such as ``home-{username}``).  The user's name enters a claim name only as
:func:`safe_username` (a DNS label), substituted into strings of already-parsed data, never
into YAML.  :func:`resolve_pod_options` refuses a value naming the variable, the value, the
allowed values and the kernel id, before anything is created; :func:`apply_pod_options` sets
the result into a pod (or a Spark driver's) spec.  Pure: no I/O.
"""

from __future__ import annotations

import copy
import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gp_provisioners_core.errors import InvalidLaunchParameterError

USERNAME_PLACEHOLDER = "{username}"
MAX_ENTRIES = 16
"""The most labels, annotations, volumes or pull secrets one request may name."""
MAX_ANNOTATION_VALUE = 1024
MAX_RAW = 8192
"""The longest value of one ``KERNEL_*`` variable read here."""
MAX_MOUNT_PATH = 1024
RESERVED_LABEL_KEYS = frozenset({"app", "component", "kernel-id"})
USER_VOLUME_NAME = "user-volume"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")

VARIABLES = (
    "KERNEL_IMAGE_PULL_SECRETS",
    "KERNEL_PRIORITY_CLASS_NAME",
    "KERNEL_RUNTIME_CLASS_NAME",
    "KERNEL_AFFINITY",
    "KERNEL_LABELS",
    "KERNEL_ANNOTATIONS",
    "KERNEL_VOLUMES",
)


@dataclass(frozen=True)
class UserVolumeClaim:
    """The operator's per-user claim: ``name`` a pattern with ``{username}``, mounted at
    ``mount_path``; with ``create``, made (``size``, ``storage_class``) when missing."""

    name: str = ""
    mount_path: str = ""
    create: bool = False
    size: str = "1Gi"
    storage_class: str = ""
    access_mode: str = "ReadWriteOnce"


@dataclass(frozen=True)
class OptionLimits:
    """What the operator allows (plain data from :class:`~gp_k8s.settings.KubernetesSettings`)."""

    image_pull_secrets: tuple[str, ...] = ()
    allowed_image_pull_secrets: frozenset[str] = frozenset()
    priority_class: str = ""
    allowed_priority_classes: frozenset[str] = frozenset()
    runtime_class: str = ""
    allowed_runtime_classes: frozenset[str] = frozenset()
    affinity_presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    default_affinity: str = ""
    allowed_label_keys: frozenset[str] = frozenset()
    allowed_annotation_keys: frozenset[str] = frozenset()
    allowed_volumes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    user_volume_claim: UserVolumeClaim = field(default_factory=UserVolumeClaim)


@dataclass(frozen=True)
class VolumeChoice:
    """One volume the pod mounts: its pod-level ``source`` (without the name)."""

    name: str
    source: Mapping[str, Any]
    mount_path: str
    read_only: bool = False


@dataclass(frozen=True)
class PodOptions:
    """Validated customisations, ready for :func:`apply_pod_options`."""

    image_pull_secrets: tuple[str, ...] = ()
    priority_class: str = ""
    runtime_class: str = ""
    affinity: Mapping[str, Any] | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    volumes: tuple[VolumeChoice, ...] = ()
    user_claim: str = ""
    """The name of the user's claim (mounted as one of ``volumes``); "" without one."""
    sources: Mapping[str, str] = field(default_factory=dict)


def safe_username(username: str) -> str:
    """``username`` as a DNS label fragment: lower case, ``[a-z0-9-]``; a name that had to be
    changed gets a digest of the original, so ``Alice`` and ``alice`` stay apart."""
    lowered = _NOT_DNS.sub("-", username.lower()).strip("-")
    if lowered == username and lowered:
        return lowered[:40]
    digest = hashlib.sha256(username.encode()).hexdigest()[:8]
    return f"{lowered[:30]}-{digest}".strip("-")


def user_claim_name(pattern: str, username: str) -> str:
    """The claim name of ``username`` under ``pattern`` (``home-{username}``)."""
    return pattern.replace(USERNAME_PLACEHOLDER, safe_username(username))


def check_claim_pattern(pattern: str) -> str:
    """Raise ``ValueError`` when no user's name could make ``pattern`` a valid claim name."""
    sample = user_claim_name(pattern, "a" * 40)
    if not _DNS_SUBDOMAIN.fullmatch(sample) or len(sample) > 253:
        raise ValueError(
            f"{pattern!r} does not make a claim name (lower-case DNS name with {{username}})"
        )
    return pattern


class _Refuser:
    def __init__(self, env: Mapping[str, str], kernel_id: str) -> None:
        self.env = env
        self.kernel_id = kernel_id
        self.used: dict[str, str] = {}

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if not value:
            return None
        self.used[name] = value
        if len(value) > MAX_RAW:
            raise self.refuse(name, value, f"it is longer than {MAX_RAW} characters")
        return value

    def refuse(self, name: str, value: str, why: str) -> InvalidLaunchParameterError:
        return InvalidLaunchParameterError.for_value(name, value, why, self.kernel_id)

    def choice(self, name: str, default: str, allowed: frozenset[str], what: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        permitted = allowed | ({default} if default else set())
        if value not in permitted:
            shown = ", ".join(sorted(permitted)) or "none"
            raise self.refuse(name, value, f"the allowed {what}s are: {shown}")
        return value

    def entries(self, name: str, raw: str) -> list[str]:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if len(items) > MAX_ENTRIES:
            raise self.refuse(name, raw, f"it names more than {MAX_ENTRIES} entries")
        return items


def _allowed(keys: frozenset[str] | Mapping[str, Any]) -> str:
    return ", ".join(sorted(keys)) or "none"


def _pairs(check: _Refuser, name: str, raw: str) -> dict[str, str]:
    """``key=value,...`` or (annotations) a JSON object of strings."""
    if raw.lstrip().startswith("{"):
        try:
            loaded = json.loads(raw)
        except json.JSONDecodeError:
            loaded = None
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise check.refuse(name, raw, "a JSON value must be an object of strings")
        if len(loaded) > MAX_ENTRIES:
            raise check.refuse(name, raw, f"it names more than {MAX_ENTRIES} entries")
        return {str(k): v for k, v in loaded.items()}
    pairs: dict[str, str] = {}
    for item in check.entries(name, raw):
        key, sep, value = item.partition("=")
        if not sep:
            raise check.refuse(name, raw, f"{item!r} is not KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


def _labels(check: _Refuser, limits: OptionLimits) -> tuple[tuple[str, str], ...]:
    raw = check.raw("KERNEL_LABELS")
    if raw is None:
        return ()
    pairs = _pairs(check, "KERNEL_LABELS", raw)
    for key, value in pairs.items():
        if key not in limits.allowed_label_keys or key in RESERVED_LABEL_KEYS:
            raise check.refuse(
                "KERNEL_LABELS",
                raw,
                f"label {key!r} is not allowed; allowed keys: "
                f"{_allowed(limits.allowed_label_keys)}",
            )
        if not _LABEL_VALUE.fullmatch(value):
            raise check.refuse("KERNEL_LABELS", raw, f"{value!r} is not a label value")
    return tuple(sorted(pairs.items()))


def _annotations(check: _Refuser, limits: OptionLimits) -> tuple[tuple[str, str], ...]:
    raw = check.raw("KERNEL_ANNOTATIONS")
    if raw is None:
        return ()
    pairs = _pairs(check, "KERNEL_ANNOTATIONS", raw)
    for key, value in pairs.items():
        if key not in limits.allowed_annotation_keys or key.startswith("gateway-provisioners/"):
            raise check.refuse(
                "KERNEL_ANNOTATIONS",
                raw,
                f"annotation {key!r} is not allowed; allowed keys: "
                f"{_allowed(limits.allowed_annotation_keys)}",
            )
        if len(value) > MAX_ANNOTATION_VALUE or any(ord(c) < 32 for c in value):
            raise check.refuse(
                "KERNEL_ANNOTATIONS",
                raw,
                f"values are at most {MAX_ANNOTATION_VALUE} characters, no control characters",
            )
    return tuple(sorted(pairs.items()))


def _pull_secrets(check: _Refuser, limits: OptionLimits) -> tuple[str, ...]:
    chosen = list(limits.image_pull_secrets)
    raw = check.raw("KERNEL_IMAGE_PULL_SECRETS")
    for secret in check.entries("KERNEL_IMAGE_PULL_SECRETS", raw or ""):
        if secret not in limits.allowed_image_pull_secrets:
            raise check.refuse(
                "KERNEL_IMAGE_PULL_SECRETS",
                raw or "",
                f"Secret {secret!r} is not allowed; allowed: "
                f"{_allowed(limits.allowed_image_pull_secrets)}",
            )
        if secret not in chosen:
            chosen.append(secret)
    return tuple(chosen)


def _mount_path(check: _Refuser, raw: str, path: str) -> str:
    if (
        not path.startswith("/")
        or len(path) > MAX_MOUNT_PATH
        or any(ord(c) < 32 for c in path)
        or posixpath.normpath(path) != path
        or ":" in path
    ):
        raise check.refuse(
            "KERNEL_VOLUMES",
            raw,
            f"mount path {path!r} must be a normalised absolute path (at most "
            f"{MAX_MOUNT_PATH} characters, no '..', ':' or control characters)",
        )
    return path


def _with_user(data: Any, username: str) -> Any:
    """``data`` with ``{username}`` in its strings replaced by :func:`safe_username`."""
    if isinstance(data, str):
        return data.replace(USERNAME_PLACEHOLDER, safe_username(username))
    if isinstance(data, Mapping):
        return {key: _with_user(value, username) for key, value in data.items()}
    if isinstance(data, list):
        return [_with_user(value, username) for value in data]
    return copy.deepcopy(data)


def _volumes(check: _Refuser, limits: OptionLimits, username: str) -> list[VolumeChoice]:
    raw = check.raw("KERNEL_VOLUMES")
    if raw is None:
        return []
    chosen: list[VolumeChoice] = []
    paths: set[str] = set()
    for item in check.entries("KERNEL_VOLUMES", raw):
        name, sep, rest = item.partition("=")
        path, _, mode = rest.partition(":")
        if name not in limits.allowed_volumes:
            raise check.refuse(
                "KERNEL_VOLUMES",
                raw,
                f"volume {name!r} is not allowed; allowed: {_allowed(limits.allowed_volumes)}",
            )
        if not sep or mode not in ("", "ro", "rw"):
            raise check.refuse("KERNEL_VOLUMES", raw, "entries are NAME=/mount/path[:ro|:rw]")
        _mount_path(check, raw, path)
        if path in paths or any(c.name == name for c in chosen):
            raise check.refuse("KERNEL_VOLUMES", raw, f"{name!r} or {path!r} is named twice")
        paths.add(path)
        source = dict(_with_user(limits.allowed_volumes[name], username))
        chosen.append(VolumeChoice(f"v-{name}", source, path, read_only=mode == "ro"))
    return chosen


def resolve_pod_options(
    env: Mapping[str, str], limits: OptionLimits, kernel_id: str, username: str
) -> PodOptions:
    """Validate the customisation variables of ``env`` against ``limits`` for ``username``'s
    kernel.  Called by :func:`gp_k8s.parameters.resolve_parameters`; raises
    ``InvalidLaunchParameterError`` (HTTP 400) for the first refused value."""
    check = _Refuser(env, kernel_id)
    pull_secrets = _pull_secrets(check, limits)
    priority = check.choice(
        "KERNEL_PRIORITY_CLASS_NAME",
        limits.priority_class,
        limits.allowed_priority_classes,
        "priority class",
    )
    runtime = check.choice(
        "KERNEL_RUNTIME_CLASS_NAME",
        limits.runtime_class,
        limits.allowed_runtime_classes,
        "runtime class",
    )
    affinity_name = check.choice(
        "KERNEL_AFFINITY",
        limits.default_affinity,
        frozenset(limits.affinity_presets),
        "affinity preset",
    )
    affinity = limits.affinity_presets.get(affinity_name) if affinity_name else None
    labels = _labels(check, limits)
    annotations = _annotations(check, limits)
    volumes = _volumes(check, limits, username)
    claim = limits.user_volume_claim
    user_claim = ""
    if claim.name:
        user_claim = user_claim_name(claim.name, username)
        if any(v.mount_path == claim.mount_path for v in volumes):
            raise check.refuse(
                "KERNEL_VOLUMES",
                env.get("KERNEL_VOLUMES", ""),
                f"{claim.mount_path!r} is where the user's own volume is mounted",
            )
        volumes.insert(
            0,
            VolumeChoice(
                USER_VOLUME_NAME,
                {"persistentVolumeClaim": {"claimName": user_claim}},
                claim.mount_path,
            ),
        )
    return PodOptions(
        image_pull_secrets=pull_secrets,
        priority_class=priority,
        runtime_class=runtime,
        affinity=copy.deepcopy(dict(affinity)) if affinity else None,
        labels=labels,
        annotations=annotations,
        volumes=tuple(volumes),
        user_claim=user_claim,
        sources=dict(check.used),
    )


def apply_pod_options(
    metadata: dict[str, Any], spec: dict[str, Any], container: dict[str, Any], o: PodOptions
) -> None:
    """Set ``o`` into a pod's ``metadata``, ``spec`` and kernel ``container`` (dicts from the
    operator's template, which keeps what ``o`` does not set).  Called by
    :func:`gp_k8s.manifests.build_pod`."""
    for key, value in o.labels:
        metadata.setdefault("labels", {})[key] = value
    for key, value in o.annotations:
        metadata.setdefault("annotations", {})[key] = value
    if o.image_pull_secrets:
        secrets = spec.setdefault("imagePullSecrets", [])
        present = {s.get("name") for s in secrets if isinstance(s, dict)}
        secrets.extend({"name": s} for s in o.image_pull_secrets if s not in present)
    if o.priority_class:
        spec["priorityClassName"] = o.priority_class
    if o.runtime_class:
        spec["runtimeClassName"] = o.runtime_class
    if o.affinity is not None:
        spec["affinity"] = copy.deepcopy(dict(o.affinity))
    for volume in o.volumes:
        spec.setdefault("volumes", []).append({"name": volume.name, **volume.source})
        mount: dict[str, Any] = {"name": volume.name, "mountPath": volume.mount_path}
        if volume.read_only:
            mount["readOnly"] = True
        container.setdefault("volumeMounts", []).append(mount)


def build_user_claim(
    name: str, namespace: str, username: str, claim: UserVolumeClaim
) -> dict[str, Any]:
    """The user's PersistentVolumeClaim (created once, kept across kernels: not labelled as a
    kernel's object, so no kernel's clean-up deletes it)."""
    spec: dict[str, Any] = {
        "accessModes": [claim.access_mode],
        "resources": {"requests": {"storage": claim.size}},
    }
    if claim.storage_class:
        spec["storageClassName"] = claim.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "gateway-provisioners", "component": "user-volume"},
            "annotations": {"gateway-provisioners/kernel-username": username},
        },
        "spec": spec,
    }


def option_schema(limits: OptionLimits) -> dict[str, Any]:
    """The JSON Schema properties of the variables read here, under ``limits``."""

    def enum(default: str, allowed: frozenset[str] | Mapping[str, Any]) -> list[str]:
        return sorted(set(allowed) | ({default} if default else set()))

    return {
        "KERNEL_IMAGE_PULL_SECRETS": {
            "type": "string",
            "description": "comma-separated Secrets from: "
            + _allowed(limits.allowed_image_pull_secrets),
        },
        "KERNEL_PRIORITY_CLASS_NAME": {
            "type": "string",
            "enum": enum(limits.priority_class, limits.allowed_priority_classes),
        },
        "KERNEL_RUNTIME_CLASS_NAME": {
            "type": "string",
            "enum": enum(limits.runtime_class, limits.allowed_runtime_classes),
        },
        "KERNEL_AFFINITY": {
            "type": "string",
            "enum": enum(limits.default_affinity, limits.affinity_presets),
        },
        "KERNEL_LABELS": {
            "type": "string",
            "maxLength": MAX_RAW,
            "description": "KEY=VALUE,... with KEY in: " + _allowed(limits.allowed_label_keys),
        },
        "KERNEL_ANNOTATIONS": {
            "type": "string",
            "maxLength": MAX_RAW,
            "description": "KEY=VALUE,... or a JSON object of strings, KEY in: "
            + _allowed(limits.allowed_annotation_keys),
        },
        "KERNEL_VOLUMES": {
            "type": "string",
            "maxLength": MAX_RAW,
            "description": "NAME=/mount/path[:ro],... with NAME in: "
            + _allowed(limits.allowed_volumes),
        },
    }


__all__ = [
    "VARIABLES",
    "OptionLimits",
    "PodOptions",
    "UserVolumeClaim",
    "VolumeChoice",
    "apply_pod_options",
    "build_user_claim",
    "check_claim_pattern",
    "option_schema",
    "resolve_pod_options",
    "safe_username",
    "user_claim_name",
]
