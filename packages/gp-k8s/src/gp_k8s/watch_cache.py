"""One shared list-then-watch of one kind of Kubernetes object per process, feeding a cache.

:class:`WatchCache` is the machinery, written once: a daemon thread lists the kernel-labelled
objects of one collection, then watches from the list's ``resourceVersion`` (with bookmarks),
resumes from the last version it saw when a watch ends or the connection drops, lists again
when the server answers ``410 Gone``, and backs off on other errors.  Readers on any thread
get frozen summaries of the objects without an API call.

A subclass names what it watches and how an object is summarized; nothing else:

- :attr:`WatchCache.collection`: the watched :class:`Collection` (pods, events, a custom
  resource...), from which the URL path, the thread's name and the log's label follow;
- :meth:`WatchCache.summarize`: a pure function of the object's JSON to a frozen state that
  has ``namespace`` and ``name`` (usually a subclass of :class:`ObjectSummary`, filled from
  :func:`summary_fields`);
- a public ``shared(...)`` classmethod calling :meth:`WatchCache.shared_instance` with its
  scope.

:class:`~gp_k8s.pod_cache.PodWatchCache` (pods), :class:`~gp_k8s.event_cache.PodEventWatchCache`
(Warning events) and gp-crd's ``ObjectWatchCache`` (custom resources) are the subclasses.  Each
subclass gets its own registry of shared caches.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from gp_provisioners_core import metrics
from gp_provisioners_core.watch import ChangeSignal

from .api_metrics import BACKEND
from .client import path, request
from .manifests import KERNEL_ID_LABEL, KERNEL_SELECTOR


@dataclass(frozen=True)
class Collection:
    """One kind of API object: its group (``""``: the core group), version and plural."""

    group: str
    version: str
    plural: str

    def path(self, namespace: str = "") -> str:
        """The collection's URL path in ``namespace`` (``""``: every namespace)."""
        if self.group:
            prefix = path("/apis/{}/{}", self.group, self.version)
        else:
            prefix = path("/api/{}", self.version)
        if namespace:
            return f"{prefix}{path('/namespaces/{}/{}', namespace, self.plural)}"
        return f"{prefix}{path('/{}', self.plural)}"


@dataclass(frozen=True)
class ObjectSummary:
    """What every cached state knows of its object's metadata (the base of the pods' and
    custom resources' states; :func:`summary_fields` fills it)."""

    namespace: str
    name: str
    uid: str = ""
    kernel_label: str = ""
    """The object's ``kernel-id`` label (the kernel's id or its digest)."""
    deleting: bool = False
    """Whether the object has a ``deletionTimestamp`` (it is going)."""


def summary_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`ObjectSummary` fields of ``obj`` (an API object as a dict), as keyword
    arguments for a summary's constructor."""
    metadata = obj.get("metadata") or {}
    return {
        "namespace": str(metadata.get("namespace") or ""),
        "name": str(metadata.get("name") or ""),
        "uid": str(metadata.get("uid") or ""),
        "kernel_label": str((metadata.get("labels") or {}).get(KERNEL_ID_LABEL) or ""),
        "deleting": bool(metadata.get("deletionTimestamp")),
    }


class Summary(Protocol):
    """What a cached state must have: the object's namespace and name (its key)."""

    @property
    def namespace(self) -> str: ...

    @property
    def name(self) -> str: ...


S = TypeVar("S", bound=Summary)
C = TypeVar("C", bound="WatchCache[Any]")


class WatchCache(Generic[S]):
    """The shared cache of the kernel-labelled objects of one collection; see the module
    docstring.  Subclasses set :attr:`collection` and implement :meth:`summarize`.

    A :class:`~gp_provisioners_core.watch.BackendWatch`: ``changes`` is notified after every
    list and event, so a provisioner awaits ``changes.wait_until(...)`` instead of polling."""

    _registry: ClassVar[dict[tuple[object, ...], Any]] = {}
    """Every subclass gets its own (``__init_subclass__``): the caches
    :meth:`shared_instance` made."""
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()
    watch_timeout: ClassVar[tuple[int, int]] = (240, 300)
    """Seconds the server keeps a watch open (a random value in this range)."""
    log: ClassVar[logging.Logger] = logging.getLogger(__name__)
    """Where the watch logs; subclasses set their module's logger."""
    collection: Collection
    """What is watched: a class attribute of the subclass, or set by its ``__init__``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._registry = {}

    def __init__(
        self, api_client: k8s.ApiClient, namespace: str = "", selector: str = KERNEL_SELECTOR
    ) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.selector = selector
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._states: dict[tuple[str, str], S] = {}
        self._seen: set[tuple[str, str]] = set()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._response: Any = None
        self._reconnecting = False
        self.synced = threading.Event()
        self.changes = ChangeSignal()
        self.resource_version = ""
        self.lists = 0
        self.watches = 0
        self.relists_after_gone = 0
        self.last_error = ""

    @classmethod
    def shared_instance(cls: type[C], api_client: k8s.ApiClient, *scope: str) -> C:
        """The process's cache ``cls(api_client, *scope)``, made on first use and started.

        Called by the subclasses' public ``shared(...)``; ``scope`` is the rest of their
        constructor's arguments (all strings), which with the client identify the cache.
        """
        key = (id(api_client), *scope)
        with cls._registry_lock:
            cache: C | None = cls._registry.get(key)
            if cache is None:
                cache = cls(api_client, *scope)
                cls._registry[key] = cache
        cache.start()
        return cache

    @classmethod
    def instances(cls: type[C]) -> list[C]:
        """The process's shared caches of this class, one per API client (so per cluster:
        kubeconfig and context) and scope.  For diagnostics and tests."""
        with cls._registry_lock:
            return [cache for cache in cls._registry.values() if isinstance(cache, cls)]

    # -- what a subclass provides ----------------------------------------------------------

    def collection_path(self) -> str:
        """The URL path of the watched collection in this cache's scope (``namespace=""``:
        every namespace).  Called by the list and the watch."""
        return self.collection.path(self.namespace)

    def summarize(self, obj: Mapping[str, Any]) -> S:
        """The frozen state kept for one object (its JSON as a dict).  Called by the watch
        thread (and :meth:`apply`) for every listed or changed object; subclasses must
        implement it as a pure function of ``obj``."""
        raise NotImplementedError

    def selector_query(self) -> dict[str, str]:
        """The query that selects the watched objects: ``labelSelector`` = :attr:`selector`.
        Called by the list and the watch; an override may select by fields instead."""
        return {"labelSelector": self.selector}

    def thread_name(self) -> str:
        """The watch thread's name; called by :meth:`start`."""
        return f"gp-k8s-{self.collection.plural}-{self.namespace or 'all-namespaces'}"

    def watch_label(self) -> str:
        """How log lines name this watch; called when the watch fails or relists."""
        return f"The watch of {self.collection.plural} ({self.namespace or 'all namespaces'})"

    # -- read side (any thread, no I/O) ----------------------------------------------------

    def get(self, namespace: str, name: str) -> S | None:
        with self._lock:
            return self._states.get((namespace, name))

    def has_seen(self, namespace: str, name: str) -> bool:
        """Whether this cache ever held that object (to tell 'not yet seen' from 'gone')."""
        with self._lock:
            return (namespace, name) in self._seen

    def forget(self, namespace: str, name: str) -> None:
        """Drop the memory of an object this process no longer asks about."""
        with self._lock:
            self._seen.discard((namespace, name))

    def states(self) -> list[S]:
        """Every object in the cache (subclasses name it: ``pods()``, ``objects()``)."""
        with self._lock:
            return list(self._states.values())

    def is_synced(self) -> bool:
        """Whether the cache holds the list's answer (no I/O)."""
        return self.synced.is_set()

    def wait_for_change(self, since: int, timeout: float) -> int:
        """Block until the cache changed after generation ``since``; return the new one."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation != since, timeout)
            return self._generation

    @property
    def generation(self) -> int:
        """A counter that grows with every change of the cache (list or event)."""
        with self._lock:
            return self._generation

    # -- the watch thread ------------------------------------------------------------------

    def start(self) -> None:
        """Start the watch thread unless it runs (called by :meth:`shared_instance`)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            self._thread = threading.Thread(target=self._run, name=self.thread_name(), daemon=True)
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

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                if not self.resource_version:
                    self._list()
                self._watch()
                backoff = 0.5
                if not self._stopped.is_set() and self.resource_version:
                    metrics.watch_restarted(BACKEND, "closed")  # the server ended it
            except ApiException as err:
                if err.status == 410:
                    self._gone()
                    continue
                metrics.watch_restarted(BACKEND, "error")
                self._failed(f"HTTP {err.status}: {err.reason}", backoff)
                backoff = min(backoff * 2, 10.0)
            except Exception as err:  # noqa: BLE001 - keep watching whatever happens
                if self._stopped.is_set():
                    return
                if self._reconnecting:  # we closed the stream ourselves
                    self._reconnecting = False
                    continue
                metrics.watch_restarted(BACKEND, "error")
                self._failed(f"{type(err).__name__}: {err}", backoff)
                backoff = min(backoff * 2, 10.0)

    def _failed(self, error: str, backoff: float) -> None:
        self.last_error = error
        self.changes.notify()  # a reader may report the failure (e.g. missing RBAC)
        self.log.warning("%s failed, retrying: %s", self.watch_label(), error)
        self._stopped.wait(backoff)

    def _gone(self) -> None:
        self.relists_after_gone += 1
        metrics.watch_restarted(BACKEND, "gone")
        self.log.info(
            "%s: resourceVersion %s is gone; listing again",
            self.watch_label(),
            self.resource_version,
        )
        self.resource_version = ""

    def _list(self) -> None:
        self.lists += 1
        body = request(
            self.api_client,
            "GET",
            self.collection_path(),
            query=self.selector_query(),
            timeout=60,
        )
        states = {}
        for item in body.get("items") or []:
            state = self.summarize(item)
            states[(state.namespace, state.name)] = state
        with self._changed:
            self._states = states
            self._seen.update(states)
            self._generation += 1
            self._changed.notify_all()
        self.resource_version = str(body["metadata"]["resourceVersion"])
        self.last_error = ""
        self.synced.set()
        self.changes.notify()

    def _watch(self) -> None:
        self.watches += 1
        timeout = random.randint(*self.watch_timeout)
        response = request(
            self.api_client,
            "GET",
            self.collection_path(),
            query={
                **self.selector_query(),
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
                if not self.apply(event):
                    return
        finally:
            self._response = None
            response.close()
            response.release_conn()

    def apply(self, event: Mapping[str, Any]) -> bool:
        """Apply one watch event; False when the watch must be restarted (410 Gone).

        Called by the watch thread for every event (and by tests, to feed events by hand).
        """
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                self._gone()
                return False
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind != "BOOKMARK":
            state = self.summarize(obj)
            key = (state.namespace, state.name)
            with self._changed:
                if kind == "DELETED":
                    self._states.pop(key, None)
                else:
                    self._states[key] = state
                self._seen.add(key)
                self._generation += 1
                self._changed.notify_all()
            self.changes.notify()
        if version:
            self.resource_version = version
        return True


def _events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            yield json.loads(line)


def wait_until(predicate: Callable[[], bool], timeout: float, cache: WatchCache[Any]) -> bool:
    """Block until ``predicate()`` holds, waking on cache changes; for worker threads."""
    deadline = time.monotonic() + timeout
    generation = cache.generation
    while not predicate():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        generation = cache.wait_for_change(generation, min(remaining, 1.0))
    return True


def drop_watch_connection(response: Any) -> None:
    """Make a watch stream that another thread is reading end now.

    Shuts the socket down rather than closing the response: closing it would wait for the lock
    the reading thread holds until the API server ends the watch (up to its watch timeout).
    Called by :meth:`WatchCache.reconnect` (and so :meth:`WatchCache.stop`).
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
