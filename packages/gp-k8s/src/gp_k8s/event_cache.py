"""One shared list-then-watch of the Warning events about pods, per process and scope.

A pod that cannot start because its sandbox, a volume or the runtime fails stays ``Pending``
(its container "waiting" in ``ContainerCreating``) and says why only in Warning events
(``FailedCreatePodSandBox``, ``FailedMount``, ...).  :class:`PodEventWatchCache` keeps those
events, selected by fields (``involvedObject.kind=Pod,type=Warning``: events carry no labels),
so a launch can read them without an API call per kernel; it is another thin subclass of
:class:`~gp_k8s.watch_cache.WatchCache`.

The watch is best effort: when the server's RBAC does not allow it (list and watch events),
launches still fail fast on everything the pod's status says, and a launch timeout still
names the pod's events (fetched once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s

from .watch_cache import Collection, ObjectSummary, WatchCache, summary_fields

POD_WARNINGS = "involvedObject.kind=Pod,type=Warning"
FORBIDDEN_RETRY = 300.0
"""Seconds between attempts while the server may not watch events (HTTP 403)."""


@dataclass(frozen=True)
class EventState(ObjectSummary):
    """One Warning event about a pod: ``name`` is the event's name, ``pod`` the pod's."""

    pod: str = ""
    pod_uid: str = ""
    """The uid of the pod the event is about (to tell it from an older pod of that name)."""
    type: str = ""
    reason: str = ""
    """Why, in one word: ``FailedCreatePodSandBox``, ``FailedMount``..."""
    message: str = ""
    count: int = 1
    """How many times the event was seen (``count`` or ``series.count``)."""
    last_seen: str = ""

    def as_event(self) -> dict[str, Any]:
        """The event in the API's shape (what :mod:`gp_k8s.diagnosis` reads)."""
        return {
            "type": self.type,
            "reason": self.reason,
            "message": self.message,
            "count": self.count,
            "lastTimestamp": self.last_seen,
        }


def event_state(event: Mapping[str, Any]) -> EventState:
    """Summarize an Event (its JSON as a dict) into an :class:`EventState`."""
    involved = event.get("involvedObject") or {}
    series = event.get("series") or {}
    return EventState(
        **summary_fields(event),
        pod=str(involved.get("name") or ""),
        pod_uid=str(involved.get("uid") or ""),
        type=str(event.get("type") or ""),
        reason=str(event.get("reason") or ""),
        message=str(event.get("message") or ""),
        count=int(event.get("count") or series.get("count") or 1),
        last_seen=str(
            event.get("lastTimestamp")
            or series.get("lastObservedTime")
            or event.get("eventTime")
            or ""
        ),
    )


class PodEventWatchCache(WatchCache[EventState]):
    """The shared cache of Warning events about pods in one scope; see the module docstring."""

    log = logging.getLogger(__name__)
    collection = Collection("", "v1", "events")

    def __init__(
        self, api_client: k8s.ApiClient, namespace: str = "", selector: str = POD_WARNINGS
    ) -> None:
        super().__init__(api_client, namespace, selector)
        self._forbidden_logged = False

    @classmethod
    def shared(cls, api_client: k8s.ApiClient, namespace: str = "") -> PodEventWatchCache:
        """The process's cache for this client and scope (``namespace=""``: cluster-wide),
        started on first use."""
        return cls.shared_instance(api_client, namespace, POD_WARNINGS)

    def selector_query(self) -> dict[str, str]:
        return {"fieldSelector": self.selector}

    def summarize(self, obj: Mapping[str, Any]) -> EventState:
        return event_state(obj)

    def _failed(self, error: str, backoff: float) -> None:
        if not error.startswith("HTTP 403"):
            super()._failed(error, backoff)
            return
        self.last_error = error
        if not self._forbidden_logged:
            self._forbidden_logged = True
            self.log.warning(
                "%s is not allowed (%s): launches will not fail fast on warning events such "
                "as FailedCreatePodSandBox; grant list and watch on events",
                self.watch_label(),
                error,
            )
        self._stopped.wait(FORBIDDEN_RETRY)

    def warnings_for(self, namespace: str, pod: str, pod_uid: str = "") -> list[EventState]:
        """The Warning events about one pod (with ``pod_uid``: of that pod, not of an older
        one of the same name), oldest first.  No I/O."""
        found = [
            event
            for event in self.states()
            if event.namespace == namespace
            and event.pod == pod
            and not (pod_uid and event.pod_uid and event.pod_uid != pod_uid)
        ]
        found.sort(key=lambda event: event.last_seen)
        return found
