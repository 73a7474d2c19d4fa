"""gp-k8s's test kit (as ``gp_provisioners_core.testing`` is the core's): an in-memory stand-in
for the Kubernetes API, for unit tests without a cluster.

:class:`FakeApiServer` is a :class:`~gp_k8s.client.CountingApiClient` whose ``call_api``
answers from a dict of objects instead of the network, so every request gp-k8s makes
(:func:`gp_k8s.client.request`, hence :mod:`gp_k8s.operations` and the custom-resource calls of
a :class:`~gp_k8s.kernel_object.KernelObjectKind`) reaches it unchanged: the URL, the method
and the JSON body.  It keeps what was created, answers GET, POST and DELETE of single objects
and lists of a collection, and records each request in :attr:`FakeApiServer.requests`.

It is a test double, not an API server: no validation, no field or label selection, deletion
is immediate, and instead of watch requests it feeds the shared watch caches it was given
(:meth:`FakeApiServer.watch`) each change as a watch event, on the thread that made it.  The suites
in tests-integration run the same code against a real kube-apiserver.  Used by the unit tests of
gp-k8s and gp-crd, and meant for other packages that implement a kernel object kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from kubernetes import client as k8s

from .client import CountingApiClient
from .event_cache import PodEventWatchCache
from .pod_cache import PodWatchCache
from .watch_cache import WatchCache

if TYPE_CHECKING:
    from .provisioner import KubernetesProvisioner


@dataclass(frozen=True)
class FakeRequest:
    """One request the fake received: method, URL path, query and JSON body."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


class FakeResponse:
    """What ``ApiClient.call_api`` returns (the parts gp-k8s and ``ApiException`` read)."""

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.reason = {200: "OK", 201: "Created", 404: "Not Found", 409: "Conflict"}.get(
            status, "Refused"
        )
        self.data = json.dumps(body).encode()
        self.headers: dict[str, str] = {"Content-Type": "application/json"}
        self.response = self

    def read(self) -> bytes:
        return self.data

    def getheaders(self) -> dict[str, str]:
        return self.headers


class FakeApiServer(CountingApiClient):
    """The fake; see the module docstring.  ``objects`` maps an object's URL path
    (``/api/v1/namespaces/ns/pods/name``) to its JSON as a dict."""

    def __init__(self) -> None:
        configuration = k8s.Configuration()
        configuration.host = "http://fake-apiserver.invalid"
        super().__init__(configuration)
        self.objects: dict[str, dict[str, Any]] = {}
        self.requests: list[FakeRequest] = []
        self.refusals: dict[tuple[str, str], tuple[int, str]] = {}
        self.watchers: list[WatchCache[Any]] = []
        self._version = 0

    def serve(self, provisioner: KubernetesProvisioner) -> None:
        """Make ``provisioner`` use this fake as its API client, with shared pod and event
        caches of its own (in its ``watch_namespace``) that this fake feeds.  The object
        kind's own watches are the test's to make and hand to :meth:`watch`."""
        ctx = provisioner.kernel_context
        ctx.api = self
        ctx.pods = PodWatchCache(self, provisioner.watch_namespace, provisioner.pod_selector)
        ctx.events = PodEventWatchCache(self, provisioner.watch_namespace)
        self.watch(ctx.pods, ctx.events)

    def watch(self, *caches: WatchCache[Any]) -> None:
        """Feed ``caches`` (not started: no thread, no request) every object of their
        collection now and every later change, and mark them synced."""
        for cache in caches:
            self.watchers.append(cache)
            for path, obj in list(self.objects.items()):
                self._notify("ADDED", path, obj, only=cache)
            cache.synced.set()

    def _notify(
        self, kind: str, path: str, obj: dict[str, Any], only: WatchCache[Any] | None = None
    ) -> None:
        parent = path.rsplit("/", 1)[0]
        namespace = str(obj.get("metadata", {}).get("namespace") or "")
        for cache in [only] if only is not None else self.watchers:
            if cache.collection.path(namespace) == parent and (
                not cache.namespace or cache.namespace == namespace
            ):
                cache.apply({"type": kind, "object": obj})

    def refuse(self, method: str, path: str, status: int, message: str) -> None:
        """Answer every ``method`` request to ``path`` (exact) with ``status`` and
        ``message``, as an API server that forbids or rejects it would."""
        self.refusals[(method, path)] = (status, message)

    def put(self, path: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``obj`` at ``path`` as if some other party (an operator) created it."""
        self._version += 1
        stored: dict[str, Any] = json.loads(json.dumps(obj))
        stored.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        kind = "MODIFIED" if path in self.objects else "ADDED"
        self.objects[path] = stored
        self._notify(kind, path, stored)
        return stored

    def sent(self, method: str = "") -> list[tuple[str, str]]:
        """The (method, path) of every request so far (of one method when given)."""
        return [(r.method, r.path) for r in self.requests if not method or r.method == method]

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        """Answer one request (called by :func:`gp_k8s.client.request`, on any thread)."""
        parts = urlsplit(url)
        path = unquote(parts.path)
        self.requests.append(FakeRequest(method, path, dict(parse_qsl(parts.query)), body))
        refused = self.refusals.get((method, path))
        if refused is not None:
            status, message = refused
            return FakeResponse(status, {"kind": "Status", "code": status, "message": message})
        if method == "POST":
            name = str((body or {}).get("metadata", {}).get("name") or "")
            target = f"{path}/{name}"
            if target in self.objects:
                return _status(409, f"{name} already exists")
            return FakeResponse(201, self.put(target, body or {}))
        if method == "GET" and path in self.objects:
            return FakeResponse(200, self.objects[path])
        if method == "GET" and _is_collection(path):
            items = [obj for key, obj in self.objects.items() if key.rsplit("/", 1)[0] == path]
            metadata = {"resourceVersion": str(self._version)}
            return FakeResponse(200, {"items": items, "metadata": metadata})
        if method == "DELETE" and path in self.objects:
            deleted = self.objects.pop(path)
            self._notify("DELETED", path, deleted)
            return FakeResponse(200, deleted)
        return _status(404, f"{path} not found")


def _is_collection(path: str) -> bool:
    """``/api/v1/namespaces/ns/pods`` or ``/apis/g/v/namespaces/ns/plural``: an odd number of
    segments after the group and version."""
    segments = path.strip("/").split("/")
    after = segments[2:] if segments[0] == "api" else segments[3:]
    return len(after) % 2 == 1


def _status(code: int, message: str) -> FakeResponse:
    return FakeResponse(code, {"kind": "Status", "code": code, "message": message})
