"""One shared list-then-watch of one custom resource kind per process, feeding a cache.

The custom-resource counterpart of gp-k8s's :class:`~gp_k8s.pod_cache.PodWatchCache` (which
is specific to pods; the kernels' driver pods stay in that cache).  ``ObjectWatchCache.shared``
returns the process's cache for one API client, resource (group, version, plural) and scope;
its thread lists the kernel-labelled objects once, then watches from the list's
``resourceVersion`` (with bookmarks), resumes from the last version it saw, and lists again
after ``410 Gone``.  Objects are kept as :class:`ObjectState` (a pure summary of the JSON), so
``poll()`` makes no API call.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from gp_k8s.client import path, request
from gp_k8s.manifests import KERNEL_ID_LABEL, KERNEL_SELECTOR
from gp_k8s.pod_cache import drop_watch_connection

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


class ObjectWatchCache:
    """The shared cache of kernel custom resources of one kind; see the module docstring."""

    _registry: ClassVar[dict[tuple[int, str, str, str, str, str], ObjectWatchCache]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()
    watch_timeout: ClassVar[tuple[int, int]] = (240, 300)

    def __init__(
        self,
        api_client: k8s.ApiClient,
        group: str,
        version: str,
        plural: str,
        namespace: str = "",
        selector: str = KERNEL_SELECTOR,
    ) -> None:
        self.api_client = api_client
        self.group, self.version, self.plural = group, version, plural
        self.namespace = namespace
        self.selector = selector
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[tuple[str, str], ObjectState] = {}
        self._seen: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._response: Any = None
        self._reconnecting = False
        self.synced = threading.Event()
        self.resource_version = ""
        self.lists = 0
        self.watches = 0
        self.last_error = ""

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
        key = (id(api_client), group, version, plural, namespace, selector)
        with cls._registry_lock:
            cache = cls._registry.get(key)
            if cache is None:
                cache = cls(api_client, group, version, plural, namespace, selector)
                cls._registry[key] = cache
        cache.start()
        return cache

    # -- read side (any thread, no I/O) ----------------------------------------------------

    def get(self, namespace: str, name: str) -> ObjectState | None:
        with self._lock:
            return self._objects.get((namespace, name))

    def has_seen(self, namespace: str, name: str) -> bool:
        with self._lock:
            return (namespace, name) in self._seen

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._seen.discard((namespace, name))

    def objects(self) -> list[ObjectState]:
        with self._lock:
            return list(self._objects.values())

    # -- the watch thread ------------------------------------------------------------------

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

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"gp-crd-{self.plural}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self.reconnect()

    def reconnect(self) -> None:
        """Drop the current watch connection (the thread resumes from resource_version)."""
        self._reconnecting = True
        drop_watch_connection(self._response)

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
                    self.resource_version = ""
                    continue
                self._failed(f"HTTP {err.status}: {err.reason}", backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as err:  # noqa: BLE001 - keep watching whatever happens
                if self._stopped.is_set():
                    return
                if self._reconnecting:
                    self._reconnecting = False
                    continue
                self._failed(f"{type(err).__name__}: {err}", backoff)
                backoff = min(backoff * 2, 10.0)

    def _failed(self, error: str, backoff: float) -> None:
        self.last_error = error
        log.warning("%s watch failed, retrying: %s", self.plural, error)
        self._stopped.wait(backoff)

    def _list(self) -> None:
        self.lists += 1
        body = request(
            self.api_client,
            "GET",
            self.collection_path(),
            query={"labelSelector": self.selector},
            timeout=60,
        )
        objects = {}
        for item in body.get("items") or []:
            state = object_state(item)
            objects[(state.namespace, state.name)] = state
        with self._changed:
            self._objects = objects
            self._seen.update(objects)
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
            self.collection_path(),
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
            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if self._stopped.is_set():
                    return
                if line.strip() and not self.apply(json.loads(line)):
                    return
        finally:
            self._response = None
            response.close()
            response.release_conn()

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one watch event; False when the watch must be restarted (410 Gone)."""
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                self.resource_version = ""
                return False
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind != "BOOKMARK":
            state = object_state(obj)
            key = (state.namespace, state.name)
            with self._changed:
                if kind == "DELETED":
                    self._objects.pop(key, None)
                else:
                    self._objects[key] = state
                self._seen.add(key)
                self._changed.notify_all()
        if version:
            self.resource_version = version
        return True
