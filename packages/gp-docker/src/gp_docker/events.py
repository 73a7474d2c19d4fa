"""One Docker events stream per process and daemon, feeding a cache of kernel containers.

``DockerEventsWatcher`` lists every container labelled with a kernel id once, then follows the
daemon's events stream for them (create, start, die, destroy, ...) on its own thread, and
re-lists whenever it has to reconnect.  Provisioners read the cache in ``poll()``,
``get_container_status()`` and launch checks, so those cost no API call however many kernels
there are.  It holds every labelled container the daemon has, Swarm task containers too (they
carry the service's id as a label), whichever process started them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from gp_provisioners_core import metrics
from gp_provisioners_core.watch import ChangeSignal

from .builders import KERNEL_ID_LABEL, SWARM_SERVICE_ID_LABEL

ACTION_STATUS = {
    "create": "created",
    "start": "running",
    "restart": "running",
    "unpause": "running",
    "pause": "paused",
    "die": "exited",
    "destroy": "removed",
}
WATCHED_ACTIONS = (*ACTION_STATUS, "oom")
TOMBSTONE_SECONDS = 300.0
_EXITED = re.compile(r"^Exited \((-?[0-9]+)\)")


@dataclass(frozen=True)
class ContainerState:
    """The last known state of one labelled container; ``status`` is Docker's (``created``,
    ``running``, ``paused``, ``restarting``, ``exited``, ``dead``) or ``removed``."""

    container_id: str
    name: str
    kernel_id: str
    service_id: str
    status: str
    exit_code: int | None = None
    oom_killed: bool = False
    seen_at: float = 0.0


def state_from_event(
    event: Mapping[str, Any], previous: ContainerState | None, label: str, now: float
) -> ContainerState | None:
    """The state after ``event`` (a decoded container event), or None when it is not one of
    ours or changes nothing we track."""
    actor = event.get("Actor") or {}
    container_id = str(actor.get("ID") or "")
    attributes: Mapping[str, str] = actor.get("Attributes") or {}
    kernel_id = attributes.get(label, "")
    action = str(event.get("Action") or event.get("status") or "")
    if event.get("Type", "container") != "container" or not container_id or not kernel_id:
        return None
    base = previous or ContainerState(
        container_id,
        attributes.get("name", ""),
        kernel_id,
        attributes.get(SWARM_SERVICE_ID_LABEL, ""),
        "created",
    )
    if action == "oom":
        return replace(base, oom_killed=True, seen_at=now)
    status = ACTION_STATUS.get(action)
    if status is None:
        return None
    exit_code = base.exit_code
    if action == "die":
        with contextlib.suppress(ValueError):
            exit_code = int(attributes.get("exitCode", ""))
    return replace(base, status=status, exit_code=exit_code, seen_at=now)


def state_from_listing(entry: Mapping[str, Any], label: str, now: float) -> ContainerState:
    """The state of a container from ``GET /containers/json`` (``Status`` holds the exit code
    of an exited container, as in ``Exited (137) 3 seconds ago``)."""
    labels: Mapping[str, str] = entry.get("Labels") or {}
    names = entry.get("Names") or [""]
    match = _EXITED.match(str(entry.get("Status") or ""))
    return ContainerState(
        container_id=str(entry["Id"]),
        name=str(names[0]).lstrip("/"),
        kernel_id=labels.get(label, ""),
        service_id=labels.get(SWARM_SERVICE_ID_LABEL, ""),
        status=str(entry.get("State") or "created"),
        exit_code=int(match.group(1)) if match else None,
        seen_at=now,
    )


class DockerEventsWatcher:
    """The shared cache of kernel containers of one daemon.  Use ``shared(key, factory)``."""

    _registry: dict[str, DockerEventsWatcher] = {}
    _registry_lock = threading.Lock()

    def __init__(
        self,
        client_factory: Callable[[], Any],
        *,
        name: str = "docker",
        label: str = KERNEL_ID_LABEL,
        log: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.label = label
        self.log = log or logging.getLogger(f"gp_docker.events.{name}")
        self._client_factory = client_factory
        self._lock = threading.Lock()
        self._containers: dict[str, ContainerState] = {}
        self.changes = ChangeSignal()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self.synced = False
        self.last_error = ""
        self.streams_opened = 0
        self.listings = 0
        self.events_received = 0

    @classmethod
    def shared(cls, key: str, client_factory: Callable[[], Any]) -> DockerEventsWatcher:
        """The process's watcher for the daemon ``key``, created and started on first use."""
        with cls._registry_lock:
            watcher = cls._registry.get(key)
            if watcher is None:
                watcher = cls._registry[key] = cls(client_factory, name=key)
        watcher.start()
        return watcher

    @classmethod
    def stop_all(cls) -> None:
        with cls._registry_lock:
            watchers = list(cls._registry.values())
            cls._registry.clear()
        for watcher in watchers:
            watcher.stop()

    # -- read side (any thread; no API calls) ----------------------------------------------------

    def container(self, container_id: str) -> ContainerState | None:
        with self._lock:
            return self._containers.get(container_id)

    def containers_of_service(self, service_id: str) -> list[ContainerState]:
        """The task containers of a Swarm service known here, oldest first."""
        with self._lock:
            found = [c for c in self._containers.values() if c.service_id == service_id]
        return sorted(found, key=lambda c: c.seen_at)

    def containers_of_kernel(self, kernel_id: str) -> list[ContainerState]:
        with self._lock:
            return [c for c in self._containers.values() if c.kernel_id == kernel_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._containers)

    def stats(self) -> dict[str, int]:
        return {
            "streams_opened": self.streams_opened,
            "listings": self.listings,
            "events_received": self.events_received,
            "containers_cached": len(self),
        }

    # -- write side used by provisioners -----------------------------------------------------

    def expect(self, state: ContainerState) -> None:
        """Record a container a provisioner just created, unless an event already did."""
        with self._lock:
            self._containers.setdefault(state.container_id, state)
        self._notify()

    def mark_removed(self, container_id: str) -> None:
        """Record that a container was removed (the caller saw the daemon confirm it)."""
        with self._lock:
            state = self._containers.get(container_id)
            if state is not None and state.status != "removed":
                self._containers[container_id] = replace(
                    state, status="removed", seen_at=time.monotonic()
                )
        self._notify()

    def forget(self, container_ids: Iterable[str]) -> None:
        """Drop removed containers a provisioner no longer needs to remember."""
        with self._lock:
            for container_id in container_ids:
                state = self._containers.get(container_id)
                if state is not None and state.status == "removed":
                    del self._containers[container_id]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (without a thread) until ``predicate()`` holds after a cache change."""
        return await self.changes.wait_until(predicate, timeout)

    def is_synced(self) -> bool:
        """Whether the listing is in and the events stream is open (no I/O)."""
        return self.synced

    async def wait_synced(self, timeout: float) -> bool:
        """Wait until the first listing is in (or the stream is back after a reconnect)."""
        self.start()
        return await self.wait_until(lambda: self.synced, timeout)

    # -- the watcher thread ----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"gp-docker-events-{self.name}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _run(self) -> None:
        backoff = 0.2
        while not self._stopped.is_set():
            try:
                self._follow()
                backoff = 0.2
                if not self._stopped.is_set():
                    metrics.watch_restarted("docker", "closed")
            except Exception as err:  # noqa: BLE001 - reported, then reconnect
                self.last_error = f"{type(err).__name__}: {err}"
                if not self._stopped.is_set():
                    self.log.warning("Docker events stream (%s): %s", self.name, self.last_error)
                    metrics.watch_restarted("docker", "error")
            finally:
                self.synced = False
                self._stream = None
                self._notify()
            self._stopped.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _follow(self) -> None:
        client = self._client_factory()
        filters = {"type": ["container"], "label": [self.label], "event": list(WATCHED_ACTIONS)}
        # Open the stream before listing, so that nothing happens unseen in between.
        stream = client.api.events(decode=True, filters=filters)
        self._stream = stream
        self.streams_opened += 1
        try:
            listed_at = time.monotonic()
            listing = client.api.containers(all=True, filters={"label": [self.label]})
            self.listings += 1
            self._replace(listing, listed_at)
            self.synced = True
            self.last_error = ""
            self._notify()
            for event in stream:
                if self._stopped.is_set():
                    break
                self._apply(event)
        finally:
            with contextlib.suppress(Exception):
                stream.close()

    def _replace(self, listing: Iterable[Mapping[str, Any]], listed_at: float) -> None:
        now = time.monotonic()
        fresh = {
            s.container_id: s for s in (state_from_listing(e, self.label, now) for e in listing)
        }
        with self._lock:
            for container_id, state in self._containers.items():
                if container_id in fresh:
                    continue
                if state.seen_at >= listed_at:
                    fresh[container_id] = state  # created (and recorded) after the listing
                else:
                    fresh[container_id] = replace(state, status="removed", seen_at=now)
            self._containers = fresh

    def _apply(self, event: Mapping[str, Any]) -> None:
        self.events_received += 1
        now = time.monotonic()
        container_id = str((event.get("Actor") or {}).get("ID") or "")
        with self._lock:
            state = state_from_event(event, self._containers.get(container_id), self.label, now)
            if state is None:
                return
            self._containers[state.container_id] = state
            if self.events_received % 100 == 0:
                self._prune(now)
        self._notify()

    def _prune(self, now: float) -> None:
        old = [
            cid
            for cid, s in self._containers.items()
            if s.status == "removed" and now - s.seen_at > TOMBSTONE_SECONDS
        ]
        for container_id in old:
            del self._containers[container_id]

    def _notify(self) -> None:
        self.changes.notify()
