"""One shared list-then-watch of kernel pods per process, feeding a cache every kernel reads.

``PodWatchCache.shared(...)`` returns the process's cache for one API server and scope (a
namespace, or every namespace with the kernel label selector).  Its thread lists the pods once,
then watches from the list's ``resourceVersion`` (with bookmarks), resumes from the last version
it saw when a watch ends or the connection drops, and lists again when the server answers
``410 Gone`` (the machinery of :class:`~gp_k8s.watch_cache.WatchCache`).  ``poll()`` and
``get_container_status()`` read :meth:`PodWatchCache.get`: no API call per kernel, however many
kernels there are.

Pods are kept as :class:`PodState`, a small frozen summary built by :func:`pod_state`, a pure
function of the pod's JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from .manifests import KERNEL_SELECTOR
from .watch_cache import Collection, ObjectSummary, WatchCache, summary_fields
from .watch_cache import drop_watch_connection as drop_watch_connection
from .watch_cache import wait_until as wait_until


@dataclass(frozen=True)
class ContainerState:
    """The kernel container's status: ``state`` is waiting, running or terminated."""

    state: str = ""
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    restart_count: int = 0
    last_exit_code: int | None = None
    last_reason: str = ""
    last_message: str = ""


@dataclass(frozen=True)
class PodState(ObjectSummary):
    """What a provisioner reads of a kernel's pod (:func:`pod_state`)."""

    phase: str = ""
    reason: str = ""
    message: str = ""
    pod_ip: str = ""
    host_ip: str = ""
    node_name: str = ""
    unschedulable: str = ""
    """The scheduler's message while the PodScheduled condition says Unschedulable."""
    container: ContainerState | None = None
    resource_version: str = ""


def _container_state(status: Mapping[str, Any]) -> ContainerState:
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    kind = next((k for k in ("terminated", "running", "waiting") if state.get(k) is not None), "")
    detail = state.get(kind) or {}
    exit_code = detail.get("exitCode") if kind == "terminated" else None
    return ContainerState(
        state=kind,
        reason=str(detail.get("reason") or ""),
        message=str(detail.get("message") or ""),
        exit_code=int(exit_code) if exit_code is not None else None,
        restart_count=int(status.get("restartCount") or 0),
        last_exit_code=int(last["exitCode"]) if "exitCode" in last else None,
        last_reason=str(last.get("reason") or ""),
        last_message=str(last.get("message") or ""),
    )


def pod_state(pod: Mapping[str, Any], container_name: str = "kernel") -> PodState:
    """Summarize a pod (its JSON as a dict) into a :class:`PodState`."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    unschedulable = ""
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            unschedulable = str(condition.get("message") or "Unschedulable")
    statuses = status.get("containerStatuses") or []
    chosen = next((s for s in statuses if s.get("name") == container_name), None)
    if chosen is None and statuses:
        chosen = statuses[0]
    return PodState(
        **summary_fields(pod),
        phase=str(status.get("phase") or ""),
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        pod_ip=str(status.get("podIP") or ""),
        host_ip=str(status.get("hostIP") or ""),
        node_name=str(spec.get("nodeName") or ""),
        unschedulable=unschedulable,
        container=_container_state(chosen) if chosen is not None else None,
        resource_version=str((pod.get("metadata") or {}).get("resourceVersion") or ""),
    )


class PodWatchCache(WatchCache[PodState]):
    """The shared cache of kernel pods in one scope; see the module docstring."""

    log = logging.getLogger(__name__)
    collection = Collection("", "v1", "pods")

    @classmethod
    def shared(
        cls, api_client: k8s.ApiClient, namespace: str = "", selector: str = KERNEL_SELECTOR
    ) -> PodWatchCache:
        """The process's cache for this client and scope (``namespace=""``: cluster-wide),
        started on first use."""
        return cls.shared_instance(api_client, namespace, selector)

    def summarize(self, obj: Mapping[str, Any]) -> PodState:
        return pod_state(obj)

    def pods(self) -> list[PodState]:
        return self.states()

    @property
    def version(self) -> int:
        """The cache's :attr:`~gp_k8s.watch_cache.WatchCache.generation`."""
        return self.generation


def pods_by_kernel(states: list[PodState]) -> dict[str, list[PodState]]:
    """Group pod states by their kernel label (for tests and diagnostics)."""
    grouped: dict[str, list[PodState]] = {}
    for state in states:
        grouped.setdefault(state.kernel_label, []).append(state)
    return grouped
