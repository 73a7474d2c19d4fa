"""A claimed pooled kernel's pod follows its new kernel id (see docs/operators/pools.md).

Labels and annotations are mutable: the pod's ``kernel-id`` label and annotation are patched to
the new id, so label selectors, the orphan inventory and ``kubectl get pods -l kernel-id=...``
find the kernel under the id its users know.  Names cannot change: the pod's name and a
per-kernel namespace keep the launch id.  Called by ``KubernetesProvisioner.adopt_kernel_id``
on an API thread.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client as k8s

from .client import path, request
from .manifests import KERNEL_ID_ANNOTATION, KERNEL_ID_LABEL, kernel_label_value


def relabel_patch(kernel_id: str) -> dict[str, Any]:
    """The merge patch that gives a pod ``kernel_id`` (pure)."""
    return {
        "metadata": {
            "labels": {KERNEL_ID_LABEL: kernel_label_value(kernel_id)},
            "annotations": {KERNEL_ID_ANNOTATION: kernel_id},
        }
    }


def relabel_pod(api_client: k8s.ApiClient, namespace: str, name: str, kernel_id: str) -> None:
    """Patch pod ``namespace/name`` to ``kernel_id``.  Raises ``ApiException``."""
    request(
        api_client,
        "PATCH",
        path("/api/v1/namespaces/{}/pods/{}", namespace, name),
        body=relabel_patch(kernel_id),
        content_type="application/merge-patch+json",
    )
