"""The YARN applications of this process's kernels: one batched query per interval for all.

:class:`YarnAppWatch` feeds gp-provisioners-core's
:class:`~gp_provisioners_core.watcher.BatchedStatusWatcher` with one
``GET /ws/v1/cluster/apps?applicationTypes=...&startedTimeBegin=...`` per interval, whatever the
number of kernels, and files the answer by application name (the kernel id).  Provisioners
read the cache (``apps_of``) in ``poll`` and while a launch waits; they never query per kernel.

No state filter is applied, so that an application that failed or was killed between two
queries is still seen with its final state and diagnostics; ``startedTimeBegin`` (the oldest
watched launch, less a margin for clock skew) keeps the answer to the applications that can
matter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from gp_provisioners_core.watcher import BatchedStatusWatcher

from .rm_client import ResourceManagerClient, RMSettings

log = logging.getLogger(__name__)

LIVE_STATES = frozenset({"NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED", "RUNNING"})
FINAL_STATES = frozenset({"FINISHED", "FAILED", "KILLED"})
CLOCK_SKEW_MS = 30_000
"""How far the RM's clock may lag ours when matching an application to a launch."""
KILLED_EXIT_CODE = -9


@dataclass(frozen=True)
class YarnApp:
    """What the RM says of one application (the fields the provisioner uses)."""

    id: str
    name: str
    state: str
    final_status: str = "UNDEFINED"
    queue: str = ""
    user: str = ""
    diagnostics: str = ""
    am_host_http_address: str = ""
    started_time: int = 0
    tags: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> YarnApp:
        tags = str(data.get("applicationTags") or "")
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")).upper(),
            final_status=str(data.get("finalStatus", "") or "UNDEFINED").upper(),
            queue=str(data.get("queue", "") or ""),
            user=str(data.get("user", "") or ""),
            diagnostics=str(data.get("diagnostics", "") or "").strip(),
            am_host_http_address=str(data.get("amHostHttpAddress", "") or ""),
            started_time=int(data.get("startedTime") or 0),
            tags=frozenset(t.strip().lower() for t in tags.split(",") if t.strip()),
        )

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def host(self) -> str:
        """The host of the application master, from ``amHostHttpAddress`` (``host:port``)."""
        address = self.am_host_http_address.split("://", 1)[-1]
        if address.startswith("["):
            return address[1 : address.find("]")]
        return address.rsplit(":", 1)[0] if address.count(":") == 1 else address

    @property
    def exit_code(self) -> int | None:
        """None while the application lives; 0 when it finished well, 1 when it failed or
        finished unsuccessfully, -9 when it was killed."""
        if self.state == "KILLED":
            return KILLED_EXIT_CODE
        if self.state == "FAILED":
            return 1
        if self.state == "FINISHED":
            return 0 if self.final_status in ("SUCCEEDED", "UNDEFINED") else 1
        return None

    def describe(self) -> str:
        """One line for logs and errors: id, state, queue and the RM's diagnostics."""
        final = f" (final status {self.final_status})" if self.is_final else ""
        where = f" in queue {self.queue}" if self.queue else ""
        said = f"; the ResourceManager says: {self.diagnostics}" if self.diagnostics else ""
        return f"YARN application {self.id} is {self.state}{final}{where}{said}"


def pick_app(
    apps: Iterable[YarnApp],
    *,
    app_id: str = "",
    tag: str = "",
    since_ms: int = 0,
    exclude: Collection[str] = (),
) -> YarnApp | None:
    """The application of one launch among the applications named after its kernel.

    By id once known; else the newest carrying the launch's tag; else (a run.sh that passes no
    tag) the newest started since the launch, less ``CLOCK_SKEW_MS``.  Applications in
    ``exclude`` (earlier launches of the same kernel, e.g. before a restart) never match.
    """
    if app_id:
        return next((app for app in apps if app.id == app_id), None)
    candidates = [app for app in apps if app.id not in exclude]
    tagged = [app for app in candidates if tag and tag.lower() in app.tags]
    if not tagged:
        tagged = [app for app in candidates if app.started_time >= since_ms - CLOCK_SKEW_MS]
    return max(tagged, key=lambda app: (app.started_time, app.id), default=None)


class YarnAppWatch:
    """The process's shared view of the YARN applications of its kernels, per RM setup."""

    _shared: ClassVar[dict[tuple[Any, ...], YarnAppWatch]] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self, client: ResourceManagerClient, application_types: tuple[str, ...], interval: float
    ) -> None:
        self.client = client
        self.application_types = application_types
        self._since: dict[str, int] = {}
        self._lock = threading.Lock()
        endpoints, types = ",".join(client.settings.endpoints), ",".join(application_types)
        name = f"yarn {endpoints} {types or '*'} {id(self):x}"
        self.watcher: BatchedStatusWatcher[tuple[YarnApp, ...]] = (
            BatchedStatusWatcher.get_or_create(name, self.fetch, interval=interval)
        )

    @classmethod
    def shared(
        cls, settings: RMSettings, application_types: tuple[str, ...], interval: float
    ) -> YarnAppWatch:
        """The process's watch for this RM setup, created on first use (its interval stays)."""
        key = (settings, application_types)
        with cls._shared_lock:
            watch = cls._shared.get(key)
            if watch is None:
                client = ResourceManagerClient.shared(settings)
                watch = cls._shared[key] = cls(client, application_types, interval)
            return watch

    # -- provisioner side -------------------------------------------------------------------

    def track(self, kernel_id: str, since_ms: int, *, launching: bool) -> None:
        """Watch the applications named ``kernel_id`` started since ``since_ms`` (epoch ms)."""
        with self._lock:
            self._since[kernel_id] = since_ms
        self.watcher.watch(kernel_id, launching=launching)

    def hurry(self, kernel_id: str) -> None:
        """Query at the short interval while this kernel starts or stops."""
        self.watcher.watch(kernel_id, launching=True)

    def settled(self, kernel_id: str) -> None:
        """Back to the normal interval for this kernel."""
        self.watcher.launched(kernel_id)

    def untrack(self, kernel_id: str) -> None:
        self.watcher.unwatch(kernel_id)
        with self._lock:
            self._since.pop(kernel_id, None)

    def apps_of(self, kernel_id: str) -> tuple[YarnApp, ...] | None:
        """The applications named ``kernel_id`` at the last query; None before the first
        query that covered the kernel."""
        seen = self.watcher.observe(kernel_id)
        if seen is None:
            return None
        return seen.status or ()

    @property
    def last_error(self) -> str:
        return self.watcher.last_error

    # -- the watcher thread -----------------------------------------------------------------

    def fetch(self, kernel_ids: Collection[str]) -> dict[str, tuple[YarnApp, ...]]:
        """One applications query for ``kernel_ids``; their applications by name."""
        with self._lock:
            starts = [self._since[k] for k in kernel_ids if k in self._since]
        begin = max(0, min(starts) - CLOCK_SKEW_MS) if starts else None
        records = self.client.applications(
            application_types=self.application_types, started_time_begin=begin
        )
        wanted = set(kernel_ids)
        found: dict[str, list[YarnApp]] = {}
        for record in records:
            name = str(record.get("name", ""))
            if name in wanted:
                found.setdefault(name, []).append(YarnApp.from_json(record))
        return {name: tuple(apps) for name, apps in found.items()}
