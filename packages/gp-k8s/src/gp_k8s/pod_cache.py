"""One shared list-then-watch of kernel pods per process, feeding a cache every kernel reads.

``PodWatchCache.shared(...)`` returns the process's cache for one API server and scope (a
namespace, or every namespace with the kernel label selector).  Its thread lists the pods once,
then watches from the list's ``resourceVersion`` (with bookmarks), resumes from the last version
it saw when a watch ends or the connection drops, and lists again when the server answers
``410 Gone``.  ``poll()`` and ``get_container_status()`` read :meth:`PodWatchCache.get`: no API
call per kernel, however many kernels there are.

Pods are kept as :class:`PodState`, a small frozen summary built by :func:`pod_state`, a pure
function of the pod's JSON.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from .client import path, request
from .manifests import KERNEL_ID_LABEL, KERNEL_SELECTOR

log = logging.getLogger(__name__)


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
class PodState:
    namespace: str
    name: str
    uid: str = ""
    kernel_label: str = ""
    phase: str = ""
    reason: str = ""
    message: str = ""
    pod_ip: str = ""
    host_ip: str = ""
    node_name: str = ""
    deleting: bool = False
    unschedulable: str = ""
    """The scheduler's message while the PodScheduled condition says Unschedulable."""
    container: ContainerState | None = None
    resource_version: str = ""


def _container_state(status: Mapping[str, Any]) -> ContainerState:
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    kind = next((k for k in ("terminated", "running", "waiting") if state.get(k)), "")
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
    metadata = pod.get("metadata") or {}
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
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        uid=str(metadata.get("uid") or ""),
        kernel_label=str((metadata.get("labels") or {}).get(KERNEL_ID_LABEL) or ""),
        phase=str(status.get("phase") or ""),
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        pod_ip=str(status.get("podIP") or ""),
        host_ip=str(status.get("hostIP") or ""),
        node_name=str(spec.get("nodeName") or ""),
        deleting=bool(metadata.get("deletionTimestamp")),
        unschedulable=unschedulable,
        container=_container_state(chosen) if chosen is not None else None,
        resource_version=str(metadata.get("resourceVersion") or ""),
    )


class PodWatchCache:
    """The shared cache of kernel pods in one scope; see the module docstring."""

    _registry: ClassVar[dict[tuple[int, str, str], PodWatchCache]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()
    watch_timeout: ClassVar[tuple[int, int]] = (240, 300)
    """Seconds the server keeps a watch open (a random value in this range)."""

    def __init__(
        self, api_client: k8s.ApiClient, namespace: str = "", selector: str = KERNEL_SELECTOR
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.selector = selector
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], PodState] = {}
        self._seen: set[tuple[str, str]] = set()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._response: Any = None
        self._reconnecting = False
        self.synced = threading.Event()
        self.resource_version = ""
        self.lists = 0
        self.watches = 0
        self.relists_after_gone = 0
        self.last_error = ""

    @classmethod
    def shared(
        cls, api_client: k8s.ApiClient, namespace: str = "", selector: str = KERNEL_SELECTOR
    ) -> PodWatchCache:
        """The process's cache for this client and scope (``namespace=""``: cluster-wide),
        started on first use."""
        key = (id(api_client), namespace, selector)
        with cls._registry_lock:
            cache = cls._registry.get(key)
            if cache is None:
                cache = cls(api_client, namespace, selector)
                cls._registry[key] = cache
        cache.start()
        return cache

    # -- read side (any thread, no I/O) ----------------------------------------------------

    def get(self, namespace: str, name: str) -> PodState | None:
        with self._lock:
            return self._pods.get((namespace, name))

    def has_seen(self, namespace: str, name: str) -> bool:
        """Whether this cache ever held that pod (to tell 'not yet seen' from 'gone')."""
        with self._lock:
            return (namespace, name) in self._seen

    def forget(self, namespace: str, name: str) -> None:
        """Drop the memory of a pod this process no longer asks about."""
        with self._lock:
            self._seen.discard((namespace, name))

    def pods(self) -> list[PodState]:
        with self._lock:
            return list(self._pods.values())

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block until the cache changed after version ``since``; return the new version."""
        with self._changed:
            self._changed.wait_for(lambda: self._version != since, timeout)
            return self._version

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    # -- the watch thread ------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            scope = self.namespace or "all-namespaces"
            self._thread = threading.Thread(
                target=self._run, name=f"gp-k8s-pods-{scope}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.reconnect()

    def reconnect(self) -> None:
        """Drop the current watch connection (the thread resumes from resource_version).

        Shuts the socket down rather than closing the response: closing it here would wait
        for the lock the watch thread holds while it reads.
        """
        self._reconnecting = True
        drop_watch_connection(self._response)

    def _pods_path(self) -> str:
        if self.namespace:
            return path("/api/v1/namespaces/{}/pods", self.namespace)
        return "/api/v1/pods"

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                if not self.resource_version:
                    self._list()
                self._watch()
                backoff = 0.5
            except ApiException as err:
                if err.status == 410:
                    self._gone()
                    continue
                self._failed(f"HTTP {err.status}: {err.reason}", backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as err:  # noqa: BLE001 - keep watching whatever happens
                if self._stopped.is_set():
                    return
                if self._reconnecting:  # we closed the stream ourselves
                    self._reconnecting = False
                    continue
                self._failed(f"{type(err).__name__}: {err}", backoff)
                backoff = min(backoff * 2, 10.0)

    def _failed(self, error: str, backoff: float) -> None:
        self.last_error = error
        log.warning("Kernel pod watch (%s) failed, retrying: %s", self.namespace or "all", error)
        self._stopped.wait(backoff)

    def _gone(self) -> None:
        self.relists_after_gone += 1
        log.info(
            "Kernel pod watch: resourceVersion %s is gone; listing again", self.resource_version
        )
        self.resource_version = ""

    def _list(self) -> None:
        self.lists += 1
        body = request(
            self.api_client,
            "GET",
            self._pods_path(),
            query={"labelSelector": self.selector},
            timeout=60,
        )
        pods = {}
        for item in body.get("items") or []:
            state = pod_state(item)
            pods[(state.namespace, state.name)] = state
        with self._changed:
            self._pods = pods
            self._seen.update(pods)
            self._version += 1
            self._changed.notify_all()
        self.resource_version = str(body["metadata"]["resourceVersion"])
        self.last_error = ""
        self.synced.set()

    def _watch(self) -> None:
        self.watches += 1
        timeout = random.randint(*self.watch_timeout)
        response = request(
            self.api_client,
            "GET",
            self._pods_path(),
            query={
                "labelSelector": self.selector,
                "watch": "true",
                "resourceVersion": self.resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(timeout),
            },
            timeout=(10, timeout + 30),
            stream=True,
        )
        self._response = response
        try:
            lines = iter_resp_lines(response)  # type: ignore[no-untyped-call]
            for event in _events(lines):
                if self._stopped.is_set():
                    return
                if not self._apply(event):
                    return
        finally:
            self._response = None
            response.close()
            response.release_conn()

    def _apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one watch event; False when the watch must be restarted (410 Gone)."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                self._gone()
                return False
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            if version:
                self.resource_version = version
            return True
        state = pod_state(obj)
        key = (state.namespace, state.name)
        with self._changed:
            if kind == "DELETED":
                self._pods.pop(key, None)
            else:
                self._pods[key] = state
            self._seen.add(key)
            self._version += 1
            self._changed.notify_all()
        if version:
            self.resource_version = version
        return True


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            yield json.loads(line)


def pods_by_kernel(states: list[PodState]) -> dict[str, list[PodState]]:
    """Group pod states by their kernel label (for tests and diagnostics)."""
    grouped: dict[str, list[PodState]] = {}
    for state in states:
        grouped.setdefault(state.kernel_label, []).append(state)
    return grouped


def wait_until(predicate: Any, timeout: float, cache: PodWatchCache) -> bool:
    """Block until ``predicate()`` holds, waking on cache changes; for worker threads."""
    deadline = time.monotonic() + timeout
    version = cache.version
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        version = cache.wait_for_change(version, min(remaining, 1.0))
    return True


def drop_watch_connection(response: Any) -> None:
    """Make a watch stream that another thread is reading end now.

    Shuts the socket down rather than closing the response: closing it would wait for the lock
    the reading thread holds until the API server ends the watch (up to its watch timeout).
    Used by every shared watch cache (pods here, custom resources in gp-crd).
    """
    connection = getattr(response, "connection", None) or getattr(response, "_connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            # socket.socket's own shutdown: SSLSocket.shutdown would drop the TLS object under
            # the reading thread's feet.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass
