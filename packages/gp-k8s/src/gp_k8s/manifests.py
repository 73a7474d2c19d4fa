"""Pure builders of the manifests a kernel needs: its pod, and its namespace and RoleBinding
when the provisioner creates one per kernel.

Everything is Python data.  The operator's pod template (a YAML file the operator writes) is
parsed into a dict first; user values are then set into that dict as strings and numbers, so
a value holding newlines, ``{{ }}``, ``: `` or ``---`` stays an inert string.  No function here
does I/O.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .parameters import KernelParameters, format_cpus, is_dns_label, is_label_value
from .pod_options import apply_pod_options

KERNEL_ID_LABEL = "kernel-id"
COMPONENT_LABEL = "component"
APP_LABEL = "app"
APP_NAME = "gateway-provisioners"
KERNEL_SELECTOR = f"{APP_LABEL}={APP_NAME},{COMPONENT_LABEL}=kernel"
KERNEL_ID_ANNOTATION = "gateway-provisioners/kernel-id"
USERNAME_ANNOTATION = "gateway-provisioners/kernel-username"
CONTAINER_NAME = "kernel"
DEFAULT_PULL_POLICY = "IfNotPresent"
"""The kernel container's ``imagePullPolicy`` unless the operator's template sets one."""
_NOT_NAME = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class PodRequest:
    """Everything the pod builder needs, already validated; the base of the requests of
    builders of other kernel objects (gp-crd's ``ResourceRequest``)."""

    kernel_id: str
    name: str
    """The kernel's object's name (here the pod's)."""
    parameters: KernelParameters
    command: Sequence[str]
    env: Mapping[str, str]
    username: str = ""
    secret_env: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Variables read from a Secret: name -> (secret name, key)."""
    template: Mapping[str, Any] | None = None


def kernel_label_value(kernel_id: str) -> str:
    """The ``kernel-id`` label of a kernel: its id, or (for ids a label cannot hold) a
    digest of it; the full id is also kept in an annotation."""
    if is_label_value(kernel_id) and kernel_id:
        return kernel_id
    return "h-" + hashlib.sha256(kernel_id.encode()).hexdigest()[:40]


def kernel_labels(kernel_id: str) -> dict[str, str]:
    return {
        APP_LABEL: APP_NAME,
        COMPONENT_LABEL: "kernel",
        KERNEL_ID_LABEL: kernel_label_value(kernel_id),
    }


def dns_name(prefix: str, kernel_id: str, suffix: str = "", limit: int = 63) -> str:
    """A DNS-1123 label ``prefix-<kernel id>[-suffix]`` (lower case, at most ``limit``)."""
    body = _NOT_NAME.sub("-", kernel_id.lower()).strip("-")
    digest = hashlib.sha256(kernel_id.encode()).hexdigest()[:8]
    tail = f"-{suffix}" if suffix else ""
    if body != kernel_id or len(prefix) + 1 + len(body) + len(tail) > limit:
        room = limit - len(prefix) - len(tail) - 10
        body = f"{body[: max(room, 0)].strip('-')}-{digest}".strip("-")
    name = f"{prefix}-{body}{tail}"
    assert is_dns_label(name), name
    return name


def _resources(parameters: KernelParameters, gpu_resource_name: str) -> dict[str, Any]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if parameters.cpus:
        requests["cpu"] = format_cpus(parameters.cpus)
    if parameters.memory:
        requests["memory"] = str(parameters.memory)
    if parameters.gpus:
        requests[gpu_resource_name] = str(parameters.gpus)
    if parameters.cpus_limit:
        limits["cpu"] = format_cpus(parameters.cpus_limit)
    if parameters.memory_limit:
        limits["memory"] = str(parameters.memory_limit)
    if parameters.gpus or parameters.gpus_limit:
        # Extended resources must have limits equal to requests.
        limits[gpu_resource_name] = str(parameters.gpus_limit or parameters.gpus)
    resources: dict[str, Any] = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return resources


def _kernel_container(spec: dict[str, Any]) -> dict[str, Any]:
    containers = spec.setdefault("containers", [])
    if not isinstance(containers, list):
        raise ValueError("the pod template's spec.containers must be a list")
    for candidate in containers:
        if isinstance(candidate, dict) and candidate.get("name") == CONTAINER_NAME:
            return candidate
    if containers and isinstance(containers[0], dict):
        first: dict[str, Any] = containers[0]
        return first
    created: dict[str, Any] = {"name": CONTAINER_NAME}
    containers.insert(0, created)
    return created


def set_kernel_metadata(
    obj: dict[str, Any],
    *,
    api_version: str,
    kind: str,
    name: str,
    namespace: str,
    kernel_id: str,
    username: str = "",
) -> dict[str, Any]:
    """Set ``apiVersion``, ``kind`` and the kernel's metadata (name, namespace, kernel labels
    and annotations) on ``obj``, a manifest copied from a template; drop the fields the server
    generates.  Return the metadata.  Called by :func:`build_pod` and gp-crd's builders."""
    obj["apiVersion"] = api_version
    obj["kind"] = kind
    metadata: dict[str, Any] = obj.setdefault("metadata", {})
    for generated in ("uid", "resourceVersion", "creationTimestamp", "generateName"):
        metadata.pop(generated, None)
    metadata["name"] = name
    metadata["namespace"] = namespace
    metadata.setdefault("labels", {}).update(kernel_labels(kernel_id))
    annotations = metadata.setdefault("annotations", {})
    annotations[KERNEL_ID_ANNOTATION] = kernel_id
    if username:
        annotations[USERNAME_ANNOTATION] = username
    return metadata


def set_placement(target: dict[str, Any], p: KernelParameters) -> None:
    """Add the kernel's node selector and tolerations to ``target`` (a pod spec, a Spark
    driver), keeping the template's own."""
    if p.node_selector:
        target.setdefault("nodeSelector", {}).update(dict(p.node_selector))
    for key, value, effect in p.tolerations:
        toleration: dict[str, str] = {"key": key, "operator": "Equal" if value else "Exists"}
        if value:
            toleration["value"] = value
        if effect:
            toleration["effect"] = effect
        target.setdefault("tolerations", []).append(toleration)


def set_run_as(target: dict[str, Any], p: KernelParameters, *, fs_group: bool = True) -> None:
    """Set the numeric uid and gid (``runAsUser``, ``runAsNonRoot``, ``runAsGroup`` and, with
    ``fs_group``, ``fsGroup``) in ``target``'s ``securityContext`` when the kernel has them."""
    if p.uid is None and p.gid is None:
        return
    security = target.setdefault("securityContext", {})
    if p.uid is not None:
        security["runAsUser"] = p.uid
        security["runAsNonRoot"] = p.uid != 0
    if p.gid is not None:
        security["runAsGroup"] = p.gid
        if fs_group:
            security["fsGroup"] = p.gid


def kernel_env(
    template_env: Any,
    env: Mapping[str, str],
    extra: Mapping[str, dict[str, Any]] | None = None,
    *,
    omit_empty: bool = False,
) -> list[dict[str, Any]]:
    """A container's env, sorted by name: the template's entries (``template_env``), replaced
    by ``env`` as values (with ``omit_empty``, an empty value is sent without ``value``), then
    by the ``extra`` entries, then ``GP_KERNEL_IP`` (the pod's IP)."""
    variables: dict[str, dict[str, Any]] = {}
    for entry in template_env or []:
        if isinstance(entry, dict) and "name" in entry:
            variables[str(entry["name"])] = entry
    for name, value in env.items():
        text = str(value)
        variables[name] = (
            {"name": name} if omit_empty and not text else {"name": name, "value": text}
        )
    variables.update(extra or {})
    variables["GP_KERNEL_IP"] = {
        "name": "GP_KERNEL_IP",
        "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
    }
    return [variables[name] for name in sorted(variables)]


def build_pod(request: PodRequest, *, gpu_resource_name: str = "nvidia.com/gpu") -> dict[str, Any]:
    """The kernel's pod as a dict (``apiVersion: v1, kind: Pod``).

    The operator's ``template`` (parsed YAML) is the base; this sets the name, namespace,
    kernel labels and annotations, the kernel container's image, command, env, resources and
    numeric security context, the service account, node selector and tolerations, and the
    customisations of :mod:`gp_k8s.pod_options` (pull secrets, priority and runtime classes,
    affinity, labels, annotations, volumes).  Values
    from the template that the request does not set are kept; the container's
    ``imagePullPolicy`` is :data:`DEFAULT_PULL_POLICY` unless the template sets one.
    """
    p = request.parameters
    pod: dict[str, Any] = copy.deepcopy(dict(request.template or {}))
    set_kernel_metadata(
        pod,
        api_version="v1",
        kind="Pod",
        name=request.name,
        namespace=p.namespace,
        kernel_id=request.kernel_id,
        username=request.username,
    )

    spec = pod.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Never")
    spec["serviceAccountName"] = p.service_account
    set_placement(spec, p)
    set_run_as(spec, p)

    container = _kernel_container(spec)
    container["name"] = CONTAINER_NAME
    container["image"] = p.image
    container["command"] = [str(arg) for arg in request.command]
    container.pop("args", None)
    container.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    # Without a policy the API makes an image tagged ":latest" (or untagged) "Always": a pull
    # from the registry on every launch, and a failed launch when the registry is unreachable
    # even though the node holds the image.  The template's own policy wins.
    container.setdefault("imagePullPolicy", DEFAULT_PULL_POLICY)
    if p.working_dir:
        container["workingDir"] = p.working_dir
    secret_variables = {
        name: {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for name, (secret, key) in request.secret_env.items()
    }
    container["env"] = kernel_env(container.get("env"), request.env, secret_variables)
    resources = _resources(p, gpu_resource_name)
    if resources:
        merged = container.setdefault("resources", {})
        for kind, values in resources.items():
            merged.setdefault(kind, {}).update(values)
    if p.uid is not None:
        container.setdefault("securityContext", {})["runAsUser"] = p.uid
    if p.gid is not None:
        container.setdefault("securityContext", {})["runAsGroup"] = p.gid
    if p.uid is not None and p.uid != 0:
        container.setdefault("securityContext", {}).setdefault("allowPrivilegeEscalation", False)
    apply_pod_options(pod["metadata"], spec, container, p.options)
    return pod


def build_namespace(name: str, kernel_id: str) -> dict[str, Any]:
    """A namespace created for one kernel, labelled with it."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": kernel_labels(kernel_id),
            "annotations": {KERNEL_ID_ANNOTATION: kernel_id},
        },
    }


def build_role_binding(
    namespace: str, kernel_id: str, service_account: str, cluster_role: str
) -> dict[str, Any]:
    """Binds ``cluster_role`` to the kernel's service account inside its own namespace."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": "kernel-controller",
            "namespace": namespace,
            "labels": kernel_labels(kernel_id),
        },
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": cluster_role,
        },
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def build_secret(
    name: str, namespace: str, kernel_id: str, data: Mapping[str, str]
) -> dict[str, Any]:
    """A Secret holding the launch's one-time values (``stringData``)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": kernel_labels(kernel_id)},
        "type": "Opaque",
        "stringData": dict(data),
    }
