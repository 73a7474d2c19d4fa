"""The cluster objects the customisation suites' kernels refer to: a PriorityClass, a
RuntimeClass and a hostPath PersistentVolume reserved for one user's claim.

Used by ``test_k8s_customisation.py`` (pods) and ``test_crd_customisation.py``
(SparkApplications): both create them for the module and remove them, the user's claim
included (users' data outlives kernels, so a test removes it itself)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes.client.exceptions import ApiException

from backends.k8s_cluster import raw

AFFINITY: dict[str, Any] = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 10,
                "preference": {
                    "matchExpressions": [
                        {"key": "gp-test/pool", "operator": "In", "values": ["kernels"]}
                    ]
                },
            }
        ]
    }
}
"""The affinity preset both suites offer as ``prefer-kernel-pool``."""


def delete_if_present(api: Any, path: str) -> None:
    """DELETE ``path``; an object already gone is fine."""
    try:
        raw(api, "DELETE", path)
    except ApiException as err:
        if err.status != 404:
            raise


@contextmanager
def customisation_objects(
    api: Any,
    *,
    priority: str,
    runtime: str,
    volume: str,
    storage_class: str,
    claim: tuple[str, str],
    host_path: str,
) -> Iterator[None]:
    """Create PriorityClass ``priority`` (value 1000), RuntimeClass ``runtime`` (handler
    runc) and a 1Gi hostPath PersistentVolume ``volume`` at ``host_path`` bound in advance to
    the claim ``claim`` (namespace, name); remove all of them, and that claim, afterwards."""
    namespace, claim_name = claim
    objects: list[tuple[str, dict[str, Any]]] = [
        (
            "/apis/scheduling.k8s.io/v1/priorityclasses",
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": priority},
                "value": 1000,
            },
        ),
        (
            "/apis/node.k8s.io/v1/runtimeclasses",
            {
                "apiVersion": "node.k8s.io/v1",
                "kind": "RuntimeClass",
                "metadata": {"name": runtime},
                "handler": "runc",
            },
        ),
        (
            "/api/v1/persistentvolumes",
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": storage_class,
                    "hostPath": {"path": host_path},
                    "claimRef": {"namespace": namespace, "name": claim_name},
                },
            },
        ),
    ]
    for path, body in objects:
        try:
            raw(api, "POST", path, body)
        except ApiException as err:
            if err.status != 409:
                raise
    try:
        yield
    finally:
        delete_if_present(
            api, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim_name}"
        )
        for path, body in objects:
            delete_if_present(api, f"{path}/{body['metadata']['name']}")
