"""The operator's settings of the Kubernetes provisioner (traitlets with ``GP_*`` defaults).

Kept apart from the provisioner so that the limits a user's ``KERNEL_*`` values are checked
against are declared in one place; :meth:`KubernetesSettings.limits` turns them into the plain
:class:`~gp_k8s.parameters.Limits` the pure validator reads.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any, ClassVar

from traitlets import Bool, Dict, Float, Int, List, Set, TraitError, Unicode, default, validate

from gp_provisioners_core.config import env_bool, env_float, env_int, env_set, validate_settings
from gp_provisioners_core.deprecated_settings import deprecated_alias
from gp_provisioners_core.resources import ResourceSettings

from .parameters import Limits
from .pod_options import OptionLimits, UserVolumeClaim, check_claim_pattern


def _env_ints(name: str, fallback: str) -> set[int]:
    values = env_set(name, fallback)
    try:
        return {int(v, 10) for v in values}
    except ValueError:
        raise ValueError(f"{name}={os.getenv(name)!r} must be comma-separated integers") from None


def _env_json_object(name: str) -> dict[str, Any]:
    raw = os.getenv(name, "").strip()
    if not raw:
        return {}
    try:
        loaded = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} must be a JSON object: {err}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
        raise ValueError(f"{name} must be a JSON object of objects (name -> manifest part)")
    return loaded


def _optional_int(name: str) -> int | None:
    raw = os.getenv(name, "").strip()
    return env_int(name, 0) if raw else None


class KubernetesSettings(ResourceSettings):
    """Where kernel pods go and what a user may choose for them.

    ``default_cpus``, ``max_cpus``, ``default_memory``, ``max_memory`` and ``max_gpus`` (the
    pod's requests and their bounds) come from the core's
    :class:`~gp_provisioners_core.resources.ResourceSettings`, as on Docker."""

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

    image_pull_secrets = List(
        Unicode(),
        config=True,
        help="Secrets every kernel pod pulls its image with (GP_IMAGE_PULL_SECRETS).",
    )

    @default("image_pull_secrets")
    def _image_pull_secrets_default(self) -> list[str]:
        return sorted(env_set("GP_IMAGE_PULL_SECRETS", ""))

    allowed_image_pull_secrets = Set(
        Unicode(),
        config=True,
        help="""Secrets KERNEL_IMAGE_PULL_SECRETS may add (GP_ALLOWED_IMAGE_PULL_SECRETS).""",
    )

    @default("allowed_image_pull_secrets")
    def _allowed_image_pull_secrets_default(self) -> set[str]:
        return env_set("GP_ALLOWED_IMAGE_PULL_SECRETS", "")

    priority_class_name = Unicode(
        config=True, help="priorityClassName of kernel pods (GP_PRIORITY_CLASS_NAME; unset: none)."
    )

    @default("priority_class_name")
    def _priority_class_name_default(self) -> str:
        return os.getenv("GP_PRIORITY_CLASS_NAME", "")

    allowed_priority_classes = Set(
        Unicode(),
        config=True,
        help="Priority classes KERNEL_PRIORITY_CLASS_NAME may name (GP_ALLOWED_PRIORITY_CLASSES).",
    )

    @default("allowed_priority_classes")
    def _allowed_priority_classes_default(self) -> set[str]:
        return env_set("GP_ALLOWED_PRIORITY_CLASSES", "")

    runtime_class_name = Unicode(
        config=True, help="runtimeClassName of kernel pods (GP_RUNTIME_CLASS_NAME; unset: none)."
    )

    @default("runtime_class_name")
    def _runtime_class_name_default(self) -> str:
        return os.getenv("GP_RUNTIME_CLASS_NAME", "")

    allowed_runtime_classes = Set(
        Unicode(),
        config=True,
        help="Runtime classes KERNEL_RUNTIME_CLASS_NAME may name (GP_ALLOWED_RUNTIME_CLASSES).",
    )

    @default("allowed_runtime_classes")
    def _allowed_runtime_classes_default(self) -> set[str]:
        return env_set("GP_ALLOWED_RUNTIME_CLASSES", "")

    affinity_presets = Dict(
        config=True,
        help="""Named pod affinities (name -> a pod spec's ``affinity``) KERNEL_AFFINITY picks
        from (GP_AFFINITY_PRESETS, a JSON object).  Users pick a name, never write affinity.""",
    )

    @default("affinity_presets")
    def _affinity_presets_default(self) -> dict[str, Any]:
        return _env_json_object("GP_AFFINITY_PRESETS")

    default_affinity = Unicode(
        config=True,
        help="The affinity preset of kernels without KERNEL_AFFINITY (GP_DEFAULT_AFFINITY).",
    )

    @default("default_affinity")
    def _default_affinity_default(self) -> str:
        return os.getenv("GP_DEFAULT_AFFINITY", "")

    allowed_label_keys = Set(
        Unicode(),
        config=True,
        help="Pod labels KERNEL_LABELS may set (GP_ALLOWED_LABEL_KEYS).",
    )

    @default("allowed_label_keys")
    def _allowed_label_keys_default(self) -> set[str]:
        return env_set("GP_ALLOWED_LABEL_KEYS", "")

    allowed_annotation_keys = Set(
        Unicode(),
        config=True,
        help="Pod annotations KERNEL_ANNOTATIONS may set (GP_ALLOWED_ANNOTATION_KEYS).",
    )

    @default("allowed_annotation_keys")
    def _allowed_annotation_keys_default(self) -> set[str]:
        return env_set("GP_ALLOWED_ANNOTATION_KEYS", "")

    allowed_volumes = Dict(
        config=True,
        help="""Volumes KERNEL_VOLUMES may mount (GP_ALLOWED_VOLUMES, a JSON object): name -> a
        pod volume's source, e.g. {"datasets": {"persistentVolumeClaim": {"claimName":
        "datasets", "readOnly": true}}}.  ``{username}`` in its strings becomes the kernel's
        user as a DNS-safe name (data, never YAML).""",
    )

    @default("allowed_volumes")
    def _allowed_volumes_default(self) -> dict[str, Any]:
        return _env_json_object("GP_ALLOWED_VOLUMES")

    user_volume_claim = Unicode(
        config=True,
        help="""The user's own PersistentVolumeClaim mounted in every kernel, as a name
        pattern with {username} (GP_USER_VOLUME_CLAIM, e.g. home-{username}; unset: none).""",
    )

    @default("user_volume_claim")
    def _user_volume_claim_default(self) -> str:
        return os.getenv("GP_USER_VOLUME_CLAIM", "")

    @validate("user_volume_claim")
    def _validate_user_volume_claim(self, proposal: dict[str, Any]) -> str:
        try:
            return check_claim_pattern(str(proposal["value"])) if proposal["value"] else ""
        except ValueError as err:
            raise TraitError(f"user_volume_claim (GP_USER_VOLUME_CLAIM): {err}") from None

    user_volume_mount_path = Unicode(
        config=True,
        help="Where the user's claim is mounted (GP_USER_VOLUME_MOUNT_PATH, /home/jovyan/work).",
    )

    @default("user_volume_mount_path")
    def _user_volume_mount_path_default(self) -> str:
        return os.getenv("GP_USER_VOLUME_MOUNT_PATH", "/home/jovyan/work")

    create_user_volume_claim = Bool(
        config=True,
        help="""Create the user's claim when missing (GP_CREATE_USER_VOLUME_CLAIM); it is kept
        when kernels stop.  The server's role then needs persistentvolumeclaims get/create.""",
    )

    @default("create_user_volume_claim")
    def _create_user_volume_claim_default(self) -> bool:
        return env_bool("GP_CREATE_USER_VOLUME_CLAIM", False)

    user_volume_size = Unicode(
        config=True, help="Storage request of a created user claim (GP_USER_VOLUME_SIZE, 1Gi)."
    )

    @default("user_volume_size")
    def _user_volume_size_default(self) -> str:
        return os.getenv("GP_USER_VOLUME_SIZE", "1Gi")

    user_volume_storage_class = Unicode(
        config=True,
        help="storageClassName of a created user claim (GP_USER_VOLUME_STORAGE_CLASS).",
    )

    @default("user_volume_storage_class")
    def _user_volume_storage_class_default(self) -> str:
        return os.getenv("GP_USER_VOLUME_STORAGE_CLASS", "")

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
        validate_settings(self, "user_volume_claim")
        return Limits(
            **asdict(self.resource_bounds()),
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
            gpu_resource_name=self.gpu_resource_name,
            allowed_node_selector_keys=frozenset(self.allowed_node_selector_keys),
            allowed_toleration_keys=frozenset(self.allowed_toleration_keys),
            options=self.option_limits(),
        )

    def option_limits(self) -> OptionLimits:
        """The customisation settings as plain data (for :meth:`limits`)."""
        return OptionLimits(
            image_pull_secrets=tuple(self.image_pull_secrets),
            allowed_image_pull_secrets=frozenset(self.allowed_image_pull_secrets),
            priority_class=self.priority_class_name,
            allowed_priority_classes=frozenset(self.allowed_priority_classes),
            runtime_class=self.runtime_class_name,
            allowed_runtime_classes=frozenset(self.allowed_runtime_classes),
            affinity_presets=dict(self.affinity_presets),
            default_affinity=self.default_affinity,
            allowed_label_keys=frozenset(self.allowed_label_keys),
            allowed_annotation_keys=frozenset(self.allowed_annotation_keys),
            allowed_volumes=dict(self.allowed_volumes),
            user_volume_claim=UserVolumeClaim(
                name=self.user_volume_claim,
                mount_path=self.user_volume_mount_path,
                create=self.create_user_volume_claim,
                size=self.user_volume_size,
                storage_class=self.user_volume_storage_class,
            ),
        )

    @property
    def watch_namespace(self) -> str:
        """The namespace the shared pod watch covers; ``""`` for every namespace (with the
        kernel label selector) when kernels may land in more than one."""
        if self.create_kernel_namespace or (self.allowed_namespaces - {self.kernel_namespace}):
            return ""
        return str(self.kernel_namespace)
