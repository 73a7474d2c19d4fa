"""The operator's settings of the Kubernetes provisioner (traitlets with ``GP_*`` defaults).

Kept apart from the provisioner so that the limits a user's ``KERNEL_*`` values are checked
against are declared in one place; :meth:`KubernetesSettings.limits` turns them into the plain
:class:`~gp_k8s.parameters.Limits` the pure validator reads.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from traitlets import Bool, Float, Int, Set, TraitError, Unicode, default, validate
from traitlets.config import Configurable

from gp_provisioners_core.config import env_bool, env_float, env_int, env_set, validate_settings
from gp_provisioners_core.deprecated_settings import deprecated_alias

from .parameters import _MEMORY, _MEMORY_UNITS, Limits


def parse_memory(text: str) -> int:
    """``512Mi``, ``2G`` or a number of bytes as bytes; ``""`` is 0."""
    if not text:
        return 0
    match = _MEMORY.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a memory quantity (e.g. 512Mi, 2Gi, 1G or bytes)")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2)])


def _env_ints(name: str, fallback: str) -> set[int]:
    values = env_set(name, fallback)
    try:
        return {int(v, 10) for v in values}
    except ValueError:
        raise ValueError(f"{name}={os.getenv(name)!r} must be comma-separated integers") from None


def _optional_int(name: str) -> int | None:
    raw = os.getenv(name, "").strip()
    return env_int(name, 0) if raw else None


class KubernetesSettings(Configurable):
    """Where kernel pods go and what a user may choose for them."""

    kubeconfig = Unicode(
        config=True,
        help="""Kubeconfig file of the cluster (GP_KUBECONFIG; default $KUBECONFIG, then
        ~/.kube/config, then the in-cluster service account).""",
    )

    @default("kubeconfig")
    def _kubeconfig_default(self) -> str:
        return os.getenv("GP_KUBECONFIG", "")

    kube_context = Unicode(config=True, help="Kubeconfig context (GP_KUBE_CONTEXT).")

    @default("kube_context")
    def _kube_context_default(self) -> str:
        return os.getenv("GP_KUBE_CONTEXT", "")

    kernel_namespace = Unicode(
        config=True,
        help="""Namespace of kernel pods (GP_NAMESPACE, default 'default'), unless a request
        names an allowed KERNEL_NAMESPACE or create_kernel_namespace is set.""",
    )

    @default("kernel_namespace")
    def _kernel_namespace_default(self) -> str:
        return os.getenv("GP_NAMESPACE", "default")

    allowed_namespaces = Set(
        Unicode(),
        config=True,
        help="Namespaces a request may pick with KERNEL_NAMESPACE (GP_ALLOWED_NAMESPACES).",
    )

    @default("allowed_namespaces")
    def _allowed_namespaces_default(self) -> set[str]:
        return env_set("GP_ALLOWED_NAMESPACES", "")

    create_kernel_namespace = Bool(
        config=True,
        help="""Create a namespace per kernel (with a RoleBinding of kernel_cluster_role for its
        service account) and delete it when the kernel stops (GP_CREATE_KERNEL_NAMESPACE).""",
    )

    @default("create_kernel_namespace")
    def _create_kernel_namespace_default(self) -> bool:
        return env_bool("GP_CREATE_KERNEL_NAMESPACE", False)

    kernel_cluster_role = Unicode(
        config=True,
        help="""ClusterRole bound to the kernel's service account in a namespace created for it
        (GP_KERNEL_CLUSTER_ROLE, default kernel-controller).""",
    )

    @default("kernel_cluster_role")
    def _kernel_cluster_role_default(self) -> str:
        return os.getenv("GP_KERNEL_CLUSTER_ROLE", "kernel-controller")

    default_kernel_service_account_name = Unicode(
        config=True,
        help="Service account of kernel pods (GP_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME, default).",
    )

    @default("default_kernel_service_account_name")
    def _default_sa_default(self) -> str:
        return os.getenv("GP_DEFAULT_KERNEL_SERVICE_ACCOUNT_NAME", "default")

    allowed_service_accounts = Set(
        Unicode(),
        config=True,
        help="Service accounts KERNEL_SERVICE_ACCOUNT_NAME may name (GP_ALLOWED_SERVICE_ACCOUNTS).",
    )

    @default("allowed_service_accounts")
    def _allowed_service_accounts_default(self) -> set[str]:
        return env_set("GP_ALLOWED_SERVICE_ACCOUNTS", "")

    allowed_images = Set(
        Unicode(),
        config=True,
        help="Images KERNEL_IMAGE may name besides image_name (GP_ALLOWED_IMAGES).",
    )

    @default("allowed_images")
    def _allowed_images_default(self) -> set[str]:
        return env_set("GP_ALLOWED_IMAGES", "")

    kernel_uid = Int(
        allow_none=True,
        config=True,
        help="runAsUser of kernels that do not set KERNEL_UID (GP_KERNEL_UID; unset: the image's).",
    )

    @default("kernel_uid")
    def _kernel_uid_default(self) -> int | None:
        return _optional_int("GP_KERNEL_UID")

    kernel_gid = Int(
        allow_none=True,
        config=True,
        help="runAsGroup of kernels that do not set KERNEL_GID (GP_KERNEL_GID).",
    )

    @default("kernel_gid")
    def _kernel_gid_default(self) -> int | None:
        return _optional_int("GP_KERNEL_GID")

    prohibited_uids = Set(
        Int(),
        config=True,
        help="UIDs refused for kernels (GP_PROHIBITED_UIDS, default 0: root is refused).",
    )

    @default("prohibited_uids")
    def _prohibited_uids_default(self) -> set[int]:
        return _env_ints("GP_PROHIBITED_UIDS", "0")

    prohibited_gids = Set(
        Int(),
        config=True,
        help="GIDs refused for kernels (GP_PROHIBITED_GIDS, default 0).",
    )

    @default("prohibited_gids")
    def _prohibited_gids_default(self) -> set[int]:
        return _env_ints("GP_PROHIBITED_GIDS", "0")

    default_cpus = Float(config=True, help="CPU request without KERNEL_CPUS (GP_DEFAULT_CPUS).")

    @default("default_cpus")
    def _default_cpus_default(self) -> float:
        return env_float("GP_DEFAULT_CPUS", 0.0)

    max_cpus = Float(config=True, help="The largest KERNEL_CPUS(_LIMIT) (GP_MAX_CPUS, 4).")

    @default("max_cpus")
    def _max_cpus_default(self) -> float:
        return env_float("GP_MAX_CPUS", 4.0)

    default_memory = Unicode(
        config=True, help="Memory request without KERNEL_MEMORY (GP_DEFAULT_MEMORY, e.g. 1Gi)."
    )

    @default("default_memory")
    def _default_memory_default(self) -> str:
        return os.getenv("GP_DEFAULT_MEMORY", "")

    max_memory = Unicode(config=True, help="The largest KERNEL_MEMORY (GP_MAX_MEMORY, 16Gi).")

    @default("max_memory")
    def _max_memory_default(self) -> str:
        return os.getenv("GP_MAX_MEMORY", "16Gi")

    @validate("default_memory", "max_memory")
    def _validate_memory(self, proposal: dict[str, Any]) -> str:
        name = proposal["trait"].name
        try:
            parse_memory(str(proposal["value"]))
        except ValueError as err:
            raise TraitError(f"{name} (GP_{name.upper()}): {err}") from None
        return str(proposal["value"])

    max_gpus = Int(config=True, help="The largest KERNEL_GPUS (GP_MAX_GPUS, 0: none).")

    @default("max_gpus")
    def _max_gpus_default(self) -> int:
        return env_int("GP_MAX_GPUS", 0)

    gpu_resource_name = Unicode(
        config=True, help="Resource name of GPUs (GP_GPU_RESOURCE_NAME, nvidia.com/gpu)."
    )

    @default("gpu_resource_name")
    def _gpu_resource_name_default(self) -> str:
        return os.getenv("GP_GPU_RESOURCE_NAME", "nvidia.com/gpu")

    allowed_node_selector_keys = Set(
        Unicode(),
        config=True,
        help="Node labels KERNEL_NODE_SELECTOR may name (GP_ALLOWED_NODE_SELECTOR_KEYS).",
    )

    @default("allowed_node_selector_keys")
    def _allowed_node_selector_keys_default(self) -> set[str]:
        return env_set("GP_ALLOWED_NODE_SELECTOR_KEYS", "")

    allowed_toleration_keys = Set(
        Unicode(),
        config=True,
        help="Taint keys KERNEL_TOLERATIONS may tolerate (GP_ALLOWED_TOLERATION_KEYS).",
    )

    @default("allowed_toleration_keys")
    def _allowed_toleration_keys_default(self) -> set[str]:
        return env_set("GP_ALLOWED_TOLERATION_KEYS", "")

    pod_template_file = Unicode(
        config=True,
        help="""The operator's pod template, a YAML file (GP_POD_TEMPLATE_FILE); a relative path
        is taken from the kernelspec's folder.  Kernel values are merged into it as data.""",
    )

    @default("pod_template_file")
    def _pod_template_file_default(self) -> str:
        return os.getenv("GP_POD_TEMPLATE_FILE", "")

    renamed_env_allowlist_variables: ClassVar[tuple[str, ...]] = ("GP_KERNEL_ENV_ALLOWLIST",)
    kernel_env_allowlist = deprecated_alias("env_allowlist", Set(Unicode()))

    termination_grace_period = Int(
        config=True,
        help="Seconds a pod has to stop when a kernel is terminated (GP_POD_GRACE_PERIOD, 5).",
    )

    @default("termination_grace_period")
    def _termination_grace_period_default(self) -> int:
        return env_int("GP_POD_GRACE_PERIOD", 5)

    deletion_timeout = Float(
        config=True,
        help="""Seconds to wait until a deleted pod or namespace is gone
        (GP_DELETION_TIMEOUT, 60).""",
    )

    @default("deletion_timeout")
    def _deletion_timeout_default(self) -> float:
        return env_float("GP_DELETION_TIMEOUT", 60.0)

    def limits(self, image: str) -> Limits:
        # Values from GP_* variables are not validated by traitlets until set: check them so
        # a bad one is named (GP_MAX_MEMORY=lots), not a bare ValueError.
        validate_settings(self, "default_memory", "max_memory")
        return Limits(
            image=image,
            allowed_images=frozenset(self.allowed_images),
            namespace=self.kernel_namespace,
            allowed_namespaces=frozenset(self.allowed_namespaces),
            create_namespace=self.create_kernel_namespace,
            service_account=self.default_kernel_service_account_name,
            allowed_service_accounts=frozenset(self.allowed_service_accounts),
            uid=self.kernel_uid,
            gid=self.kernel_gid,
            prohibited_uids=frozenset(self.prohibited_uids),
            prohibited_gids=frozenset(self.prohibited_gids),
            default_cpus=self.default_cpus,
            max_cpus=self.max_cpus,
            default_memory=parse_memory(self.default_memory),
            max_memory=parse_memory(self.max_memory),
            max_gpus=self.max_gpus,
            gpu_resource_name=self.gpu_resource_name,
            allowed_node_selector_keys=frozenset(self.allowed_node_selector_keys),
            allowed_toleration_keys=frozenset(self.allowed_toleration_keys),
        )

    @property
    def watch_namespace(self) -> str:
        """The namespace the shared pod watch covers; ``""`` for every namespace (with the
        kernel label selector) when kernels may land in more than one."""
        if self.create_kernel_namespace or (self.allowed_namespaces - {self.kernel_namespace}):
            return ""
        return str(self.kernel_namespace)
