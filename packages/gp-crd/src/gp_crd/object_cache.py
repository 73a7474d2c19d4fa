"""One shared list-then-watch of one custom resource kind per process, feeding a cache.

The custom-resource counterpart of gp-k8s's :class:`~gp_k8s.pod_cache.PodWatchCache` (the
kernels' driver pods stay in that cache); both are thin subclasses of gp-k8s's
:class:`~gp_k8s.watch_cache.WatchCache`, which lists, watches, resumes and relists.
``ObjectWatchCache.shared`` returns the process's cache for one API client, resource (group,
version, plural) and scope.  Objects are kept as :class:`ObjectState` (a pure summary of the
JSON), so ``poll()`` makes no API call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from gp_k8s.client import path
from gp_k8s.manifests import KERNEL_ID_LABEL, KERNEL_SELECTOR
from gp_k8s.watch_cache import WatchCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectState:
    """What a provisioner reads of a custom resource (the operator's view of the kernel)."""

    namespace: str
    name: str
    uid: str = ""
    kernel_label: str = ""
    state: str = ""
    """``.status.applicationState.state`` (``SUBMITTED``, ``RUNNING``, ``FAILED``, ...)."""
    error_message: str = ""
    """``.status.applicationState.errorMessage``."""
    driver_pod: str = ""
    """``.status.driverInfo.podName``, when the operator set it."""
    deleting: bool = False


def object_state(obj: Mapping[str, Any]) -> ObjectState:
    """Summarize a custom resource (its JSON as a dict) into an :class:`ObjectState`."""
    metadata = obj.get("metadata") or {}
    status = obj.get("status") or {}
    application = status.get("applicationState") or {}
    return ObjectState(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        kernel_label=str((metadata.get("labels") or {}).get(KERNEL_ID_LABEL) or ""),
        state=str(application.get("state") or ""),
        error_message=str(application.get("errorMessage") or ""),
        driver_pod=str((status.get("driverInfo") or {}).get("podName") or ""),
        deleting=bool(metadata.get("deletionTimestamp")),
    )


class ObjectWatchCache(WatchCache[ObjectState]):
    """The shared cache of kernel custom resources of one kind; see the module docstring."""

    log = logging.getLogger(__name__)

    def __init__(
        self,
        api_client: k8s.ApiClient,
        group: str,
        version: str,
        plural: str,
        namespace: str = "",
        selector: str = KERNEL_SELECTOR,
    ) -> None:
        self.group, self.version, self.plural = group, version, plural
        super().__init__(api_client, namespace, selector)

    @classmethod
    def shared(
        cls,
        api_client: k8s.ApiClient,
        group: str,
        version: str,
        plural: str,
        namespace: str = "",
        selector: str = KERNEL_SELECTOR,
    ) -> ObjectWatchCache:
        """The process's cache for this client, resource and scope, started on first use."""
        return cls._shared(api_client, group, version, plural, namespace, selector)

    def collection_path(self) -> str:
        if self.namespace:
            return path(
                "/apis/{}/{}/namespaces/{}/{}",
                self.group,
                self.version,
                self.namespace,
                self.plural,
            )
        return path("/apis/{}/{}/{}", self.group, self.version, self.plural)

    def summarize(self, obj: Mapping[str, Any]) -> ObjectState:
        return object_state(obj)

    def thread_name(self) -> str:
        return f"gp-crd-{self.plural}"

    def watch_label(self) -> str:
        return f"{self.plural} watch"

    def objects(self) -> list[ObjectState]:
        return self.states()
