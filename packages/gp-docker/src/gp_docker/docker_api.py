"""The process's Docker clients, the threads SDK calls run in, and the API call counter.

The docker SDK is synchronous: every call from a provisioner goes through :func:`run_sdk`,
which runs it on a small pool of worker threads (never on the event loop, and never starving
the loop's default executor).  Clients are shared per daemon (``DOCKER_HOST``) and purpose, and
every HTTP request they make is counted by :data:`API_CALLS`, so benchmarks and tests can see
how many calls polling costs.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import docker

from gp_provisioners_core import blocking, metrics

T = TypeVar("T")

SDK_WORKERS = 16
SDK_POOL = "gp-docker-sdk"
POOL_SIZE = 32
_VERSION_PREFIX = re.compile(r"^/v[0-9.]+/")
_VERBS = frozenset(
    {"json", "create", "start", "stop", "kill", "wait", "logs", "update", "attach", "resize"}
)


class ApiCallCounter:
    """Counts the HTTP requests made by the shared clients, by ``METHOD resource[/verb]``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def hook(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """A ``requests`` response hook: one count per request (a stream counts once)."""
        request = response.request
        key = f"{request.method} {endpoint_of(str(request.path_url))}"
        self.add(key)
        status = int(getattr(response, "status_code", 0) or 0)
        metrics.api_request("docker", key, ok=status < 400)

    def add(self, key: str, count: int = 1) -> None:
        with self._lock:
            self._counts[key] += count

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def endpoint_of(path_url: str) -> str:
    """``/v1.41/containers/3f2a.../start?x=1`` -> ``containers/{id}/start``."""
    path = _VERSION_PREFIX.sub("/", path_url.split("?", 1)[0]).strip("/")
    resource, *rest = path.split("/")
    if not rest:
        return resource
    if len(rest) == 1 and rest[0] in _VERBS:
        return f"{resource}/{rest[0]}"
    return f"{resource}/{{id}}/{rest[-1]}" if rest[-1] in _VERBS else f"{resource}/{{id}}"


API_CALLS = ApiCallCounter()
"""Every request of every client made by :func:`docker_client` in this process."""

_clients: dict[tuple[str, str], docker.DockerClient] = {}
_clients_lock = threading.Lock()


class DockerUnreachableError(ConnectionError):
    """The Docker daemon could not be reached: one message naming DOCKER_HOST and what to
    check, instead of the SDK's nested connection errors."""


def docker_host() -> str:
    """The daemon this process talks to: ``DOCKER_HOST``, else the SDK's default socket."""
    return os.getenv("DOCKER_HOST", "") or "unix:///var/run/docker.sock"


def docker_client(purpose: str = "calls") -> docker.DockerClient:
    """The shared client of ``purpose`` for the current ``DOCKER_HOST`` (created on first use).

    Blocking (it negotiates the API version): call it through :func:`run_sdk` from async code.
    The events watcher uses its own (``purpose="events"``) so its long-lived stream never
    holds a connection the other calls need.
    """
    key = (docker_host(), purpose)
    with _clients_lock:
        client = _clients.get(key)
    if client is not None:
        return client
    try:
        created = docker.DockerClient.from_env(max_pool_size=POOL_SIZE, timeout=60)
    except docker.errors.DockerException as err:
        raise DockerUnreachableError(
            f"The Docker daemon at {docker_host()} is unreachable ({str(err)[:200]}). Check "
            "DOCKER_HOST and that dockerd runs and this user may use its socket."
        ) from err
    created.api.hooks["response"].append(API_CALLS.hook)
    API_CALLS.add("GET version")  # made by from_env before the hook existed
    with _clients_lock:
        client = _clients.setdefault(key, created)
    if client is not created:
        created.close()
    return client


def reset_clients() -> None:
    """Close and forget the shared clients (tests that restart the daemon)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


async def run_sdk(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking SDK call on the SDK threads (the core's pool ``gp-docker-sdk``, see
    ``gp_provisioners_core.blocking``) and await its result."""
    return await blocking.run_blocking(
        SDK_POOL, function, *args, default_workers=SDK_WORKERS, **kwargs
    )
