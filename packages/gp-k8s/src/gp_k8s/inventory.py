"""What gp-k8s created in a cluster, for gp-server's orphan sweep.

Kernel pods carry the kernel labels (``app``, ``component=kernel``, ``kernel-id``) and the full
kernel id in an annotation; a gp-server launch also puts ``KERNEL_GP_SERVER_STORE=<store id>``
into the pod's environment, which is how one store's kernels are told from another's.  Removing
a pod also removes its launch Secret (``<pod>-launch``) and other Secrets labelled with its
kernel (where the server may list Secrets), and the namespace when it was
created for that kernel (labelled with it).

The cluster is the provisioner's (``GP_KUBECONFIG``, ``GP_KUBE_CONTEXT``); the namespaces
listed are ``GP_SERVER_K8S_NAMESPACES`` (comma-separated), or every namespace when empty (which
needs a cluster-wide ``list pods``).  Every call runs off the event loop.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from gp_provisioners_core.inventory import STORE_ID_VARIABLE, BackendResource

from . import operations as ops
from .client import get_api_client, path, request
from .manifests import KERNEL_ID_ANNOTATION, KERNEL_ID_LABEL, KERNEL_SELECTOR


def _epoch(timestamp: str | None) -> float | None:
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class KubernetesPodInventory:
    """Kernel pods of one store in the namespaces ``GP_SERVER_K8S_NAMESPACES`` names."""

    name = "k8s"

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        raw = os.environ.get("GP_SERVER_K8S_NAMESPACES", "")
        self.namespaces = [n.strip() for n in raw.split(",") if n.strip()]

    def _api(self) -> Any:
        return get_api_client(
            os.environ.get("GP_KUBECONFIG", ""), os.environ.get("GP_KUBE_CONTEXT", "")
        )

    async def list_resources(self) -> list[BackendResource]:
        return await ops.run_blocking(self._list)

    def _list(self) -> list[BackendResource]:
        api = self._api()
        paths = [path("/api/v1/namespaces/{}/pods", n) for n in self.namespaces]
        found: list[BackendResource] = []
        for collection in paths or ["/api/v1/pods"]:
            body = request(api, "GET", collection, query={"labelSelector": KERNEL_SELECTOR})
            for pod in body.get("items") or []:
                if not self._is_ours(pod):
                    continue
                meta = pod["metadata"]
                kernel_id = (meta.get("annotations") or {}).get(KERNEL_ID_ANNOTATION) or (
                    meta.get("labels") or {}
                ).get(KERNEL_ID_LABEL, "")
                found.append(
                    BackendResource(
                        "k8s",
                        "pod",
                        f"{meta['namespace']}/{meta['name']}",
                        str(kernel_id),
                        _epoch(meta.get("creationTimestamp")),
                    )
                )
        return found

    def _is_ours(self, pod: dict[str, Any]) -> bool:
        for container in pod.get("spec", {}).get("containers") or []:
            for variable in container.get("env") or []:
                if variable.get("name") == STORE_ID_VARIABLE:
                    return bool(variable.get("value") == self.store_id)
        return False

    async def remove(self, resource: Any) -> None:
        await ops.run_blocking(self._remove, str(resource.name))

    def _remove(self, name: str) -> None:
        api = self._api()
        namespace, pod_name = name.split("/", 1)
        try:
            pod = request(api, "GET", path("/api/v1/namespaces/{}/pods/{}", namespace, pod_name))
        except ApiException as err:
            if err.status == 404:
                return
            raise
        label = (pod["metadata"].get("labels") or {}).get(KERNEL_ID_LABEL, "")
        ops.delete_pod(api, namespace, pod_name, 1)
        ops.delete_secret(api, namespace, f"{pod_name}-launch")  # the provisioner's naming
        if not label:
            return
        selector = f"{KERNEL_SELECTOR},{KERNEL_ID_LABEL}={label}"
        try:
            secrets = request(
                api,
                "GET",
                path("/api/v1/namespaces/{}/secrets", namespace),
                query={"labelSelector": selector},
            )
        except ApiException as err:
            if err.status != 403:
                raise
            secrets = {}  # may not list secrets: the launch Secret is the provisioner's to go
        for secret in secrets.get("items") or []:
            ops.delete_secret(api, namespace, secret["metadata"]["name"])
        try:
            space = request(api, "GET", path("/api/v1/namespaces/{}", namespace))
        except ApiException:
            return  # not allowed to read namespaces: a shared namespace stays anyway
        if (space["metadata"].get("labels") or {}).get(KERNEL_ID_LABEL) == label:
            ops.delete_namespace(api, namespace)
