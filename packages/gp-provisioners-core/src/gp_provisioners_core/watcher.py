"""One shared status watcher per backend and process: one batched query per interval for every
kernel, instead of one poll per kernel.

For backends whose API answers "the state of all these ids" in one call (``squeue``, the YARN
applications list).  The query runs on the watcher's own thread, never on an event loop; every
provisioner reads the cache.  Backends with a push API (Docker events, Kubernetes watches) keep
their own stream but expose the same read side.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from .watch import ChangeSignal

Status = TypeVar("Status")


@dataclass(frozen=True)
class Observation(Generic[Status]):
    """What the watcher last saw of one id: the status (None = the backend no longer knows
    it) and when (``time.monotonic()``)."""

    status: Status | None
    seen_at: float


class BatchedStatusWatcher(Generic[Status]):
    """Queries the backend for all watched ids in one call per interval.

    ``fetch(ids)`` is the backend's batched query: it returns the status of each id it knows
    (ids missing from the answer are gone) and raises on failure (the cache keeps the last
    answer and ``last_error`` says why).  While any id is launching, the interval shortens to
    ``launch_interval`` so that failures surface within a fraction of a second.

    Create one per backend and process (``get_or_create``); provisioners ``watch`` their id
    when they submit, read ``observe`` in ``poll``/``detect_launch_failure``, and ``unwatch``
    in ``cleanup``.  A :class:`~gp_provisioners_core.watch.BackendWatch`: ``changes`` wakes
    waiters when a query changed a status.
    """

    _registry: dict[str, BatchedStatusWatcher[object]] = {}
    _registry_lock = threading.Lock()

    def __init__(
        self,
        name: str,
        fetch: Callable[[Collection[str]], Mapping[str, Status]],
        *,
        interval: float = 3.0,
        launch_interval: float = 0.25,
        log: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self._fetch = fetch
        self.interval = interval
        self.launch_interval = launch_interval
        self.log = log or logging.getLogger(f"gp_provisioners_core.watcher.{name}")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._watched: set[str] = set()
        self._launching: set[str] = set()
        self._cache: dict[str, Observation[Status]] = {}
        self._generation = 0
        """Queries finished (each loop of the thread counts one, with or without ids)."""
        self._begun = 0
        """Queries begun: the thread takes its snapshot of the watched ids under the lock."""
        self._generation_changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self.queries = 0
        self.last_error = ""
        self.answered = False
        """A query succeeded since this watcher started."""
        self.changes = ChangeSignal()
        """Notified when a query changed what the cache says (a status, an error)."""

    @classmethod
    def get_or_create(
        cls,
        name: str,
        fetch: Callable[[Collection[str]], Mapping[str, Status]],
        **kwargs: float,
    ) -> BatchedStatusWatcher[Status]:
        """The process's watcher called ``name``, created on first use."""
        with cls._registry_lock:
            existing = cls._registry.get(name)
            if existing is not None:
                return cast(BatchedStatusWatcher[Status], existing)
            created: BatchedStatusWatcher[Status] = cls(name, fetch, **kwargs)  # type: ignore[arg-type]
            cls._registry[name] = cast(BatchedStatusWatcher[object], created)
            return created

    # -- provisioner side ---------------------------------------------------------------------

    def watch(self, item_id: str, *, launching: bool = True) -> None:
        with self._lock:
            self._watched.add(item_id)
            if launching:
                self._launching.add(item_id)
        self._ensure_thread()
        self._wake.set()

    def launched(self, item_id: str) -> None:
        """The launch of ``item_id`` is over: back to the idle interval for it."""
        with self._lock:
            self._launching.discard(item_id)

    def unwatch(self, item_id: str) -> None:
        with self._lock:
            self._watched.discard(item_id)
            self._launching.discard(item_id)
            self._cache.pop(item_id, None)

    def is_synced(self) -> bool:
        """Whether a query has answered yet (no I/O): the ``BackendWatch`` contract."""
        return self.answered

    def observe(self, item_id: str) -> Observation[Status] | None:
        """The last observation of ``item_id``; None before the first query that covered it."""
        with self._lock:
            return self._cache.get(item_id)

    def refresh(self, timeout: float = 10.0) -> bool:
        """Ask for a query now and wait (in the caller's thread) until one finished.

        Blocking: call it through ``asyncio.to_thread`` from async code.
        """
        with self._lock:
            # The first query that begins after this call: one already under way may have
            # taken its snapshot of the ids before the caller's latest ``watch``.
            target = self._begun + 1
        self._ensure_thread()
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._generation_changed:
            while self._generation < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._generation_changed.wait(remaining)
        return True

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    # -- the watcher thread --------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopped.clear()
                self._thread = threading.Thread(
                    target=self._run, name=f"gp-watch-{self.name}", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            with self._lock:
                ids = frozenset(self._watched)
                fast = bool(self._launching)
                self._begun += 1
            if ids:
                self._query(ids)
            else:
                with self._generation_changed:
                    self._generation += 1
                    self._generation_changed.notify_all()
            self._wake.wait(self.launch_interval if fast else self.interval)
            self._wake.clear()

    def _query(self, ids: frozenset[str]) -> None:
        self.queries += 1
        try:
            answer = dict(self._fetch(ids))
            error = ""
        except Exception as err:  # noqa: BLE001 - kept for the provisioners to report
            answer, error = {}, f"{type(err).__name__}: {err}"
            self.log.warning("%s status query failed: %s", self.name, error)
        now = time.monotonic()
        with self._generation_changed:
            changed = error != self.last_error
            self.last_error = error
            if not error:
                self.answered = True
                for item_id in ids:
                    if item_id in self._watched:
                        before = self._cache.get(item_id)
                        status = answer.get(item_id)
                        changed = changed or before is None or before.status != status
                        self._cache[item_id] = Observation(status, now)
            self._generation += 1
            self._generation_changed.notify_all()
        if changed:
            self.changes.notify()
