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

from gp_k8s.manifests import KERNEL_SELECTOR
from gp_k8s.watch_cache import Collection, ObjectSummary, WatchCache, summary_fields

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectState(ObjectSummary):
    """What a provisioner reads of a custom resource (the operator's view of the kernel)."""

    state: str = ""
    """``.status.applicationState.state`` (``SUBMITTED``, ``RUNNING``, ``FAILED``, ...)."""
    error_message: str = ""
    """``.status.applicationState.errorMessage``."""
    driver_pod: str = ""
    """``.status.driverInfo.podName``, when the operator set it."""


def object_state(obj: Mapping[str, Any]) -> ObjectState:
    """Summarize a custom resource (its JSON as a dict) into an :class:`ObjectState`."""
    status = obj.get("status") or {}
    application = status.get("applicationState") or {}
    return ObjectState(
        **summary_fields(obj),
        state=str(application.get("state") or ""),
        error_message=str(application.get("errorMessage") or ""),
        driver_pod=str((status.get("driverInfo") or {}).get("podName") or ""),
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
        self.collection = Collection(group, version, plural)
        super().__init__(api_client, namespace, selector)

    @classmethod
    def shared(
        cls, api_client: k8s.ApiClient, collection: Collection, namespace: str = ""
    ) -> ObjectWatchCache:
        """The process's cache of ``collection`` (a custom resource kind) for this client and
        scope (``namespace=""``: every namespace), started on first use."""
        c = collection
        return cls.shared_instance(api_client, c.group, c.version, c.plural, namespace)

    def summarize(self, obj: Mapping[str, Any]) -> ObjectState:
        return object_state(obj)

    def objects(self) -> list[ObjectState]:
        return self.states()
