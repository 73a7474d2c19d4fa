"""The process's Kubernetes API clients, and a count of the requests they make.

One :class:`CountingApiClient` per kubeconfig and context, created on first use (never at
import).  Every request goes through ``call_api``, which counts it: ``api_request_count()`` is
what benchmarks and tests read to show that idle kernels cost no requests.
Building a client reads files: call :func:`get_api_client` from a worker thread.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from gp_provisioners_core import metrics

from .api_metrics import BACKEND, api_operation


class RequestCounter:
    """Thread-safe count of API requests, in total and by method and resource path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_kind: Counter[str] = Counter()

    def add(self, method: str, path: str) -> None:
        with self._lock:
            self._total += 1
            self._by_kind[f"{method} {path_template(path)}"] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    def by_kind(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_kind)


REQUESTS = RequestCounter()
_COLLECTIONS = frozenset(
    {"namespaces", "pods", "secrets", "events", "rolebindings", "serviceaccounts", "nodes"}
)


def path_template(path: str) -> str:
    """``/api/v1/namespaces/ns/pods/p`` -> ``/api/v1/namespaces/{name}/pods/{name}``."""
    parts = path.split("/")
    for index in range(1, len(parts)):
        if parts[index - 1] in _COLLECTIONS and parts[index] not in _COLLECTIONS:
            parts[index] = "{name}"
    return "/".join(parts)


def api_request_count() -> int:
    """How many requests this process's gp-k8s clients made so far (watches count once)."""
    return REQUESTS.total


class CountingApiClient(k8s.ApiClient):
    """``kubernetes.client.ApiClient`` that counts each request in :data:`REQUESTS`."""

    def call_api(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        REQUESTS.add(method, urlsplit(url).path)
        operation = api_operation(method, url)
        try:
            response = super().call_api(method, url, *args, **kwargs)
        except Exception:
            metrics.api_request(BACKEND, operation, ok=False)
            raise
        status = int(getattr(response, "status", 0) or 0)
        metrics.api_request(BACKEND, operation, ok=200 <= status <= 299)
        return response


def path(template: str, *names: str) -> str:
    """An API path with each name quoted as one path segment."""
    return template.format(*(quote(name, safe="") for name in names))


def request(
    api_client: k8s.ApiClient,
    method: str,
    resource_path: str,
    *,
    query: Mapping[str, str] | None = None,
    body: Any = None,
    content_type: str = "application/json",
    timeout: Any = 30,
    stream: bool = False,
) -> Any:
    """One API request with a JSON body given as plain data; returns the decoded JSON (or,
    with ``stream``, the open urllib3 response of a watch).  Raises ``ApiException``.

    Manifests stay dicts end to end: no model classes, no YAML, no text templating.
    """
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    serialized = api_client.param_serialize(
        method=method,
        resource_path=resource_path,
        query_params=list((query or {}).items()) or None,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*serialized, _request_timeout=timeout)
    if not 200 <= response.status <= 299:
        response.read()  # type: ignore[no-untyped-call]
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    if stream:
        return response.response
    data = response.read()  # type: ignore[no-untyped-call]
    return json.loads(data) if data else {}


_clients: dict[tuple[str, str, tuple[int, int, int] | None], CountingApiClient] = {}
_clients_lock = threading.Lock()


def _file_version(path: str) -> tuple[int, int, int] | None:
    """What tells one version of a kubeconfig file from the next (inode, mtime, size)."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def get_api_client(kubeconfig: str = "", context: str = "") -> CountingApiClient:
    """The shared client for ``kubeconfig``/``context`` (blocking: call it off the loop).

    With neither set: ``$KUBECONFIG`` or ``~/.kube/config`` when present, else the in-cluster
    service account.  Raises ``ConfigException`` saying what was tried.  A kubeconfig file
    rewritten since (a rotated token) gets a client of its own: kernels started afterwards use
    the new credentials, running ones keep theirs.
    """
    key = (kubeconfig, context, _file_version(kubeconfig) if kubeconfig else None)
    with _clients_lock:
        existing = _clients.get(key)
        if existing is not None:
            return existing
        configuration = k8s.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG", "")
        default_path = os.path.expanduser("~/.kube/config")
        if not path and os.path.exists(default_path):
            path = default_path
        if path:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context or None, client_configuration=configuration
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        else:
            raise ConfigException(
                "No Kubernetes configuration: set kubeconfig (GP_KUBECONFIG) or KUBECONFIG, "
                "or run in a pod with a service account"
            )
        # Many kernels start at once: let their requests share more connections.
        configuration.connection_pool_maxsize = 32
        created = CountingApiClient(configuration)
        _clients[key] = created
        return created
