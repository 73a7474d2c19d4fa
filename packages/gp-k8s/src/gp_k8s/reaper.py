"""Seeing deleted kernel objects through to their end, in the background.

A deleted pod can stay for many seconds while its node tears it down (6-62 s on a real kubelet),
a namespace until everything in it is gone.  No caller should wait for that: a failed launch
reports its reason at once, ``shutdown(now=True)`` returns once the kernel stopped.  The
provisioner deletes (the API accepted the deletion before it returns) and hands the object to
the process's one :class:`Reaper`, a daemon thread that

- checks each object, from the shared watch's cache when it can answer (no API call), else
  with one GET every :data:`API_CHECK_INTERVAL` seconds;
- when an object outlives its timeout, logs it and deletes it again (at most
  :data:`MAX_ROUNDS` times, then it logs an error naming the object and the kernel);
- lets a later step of the same kernel wait for what is still pending
  (:meth:`Reaper.settled`: a new launch into the kernel's own namespace), and anyone drain it
  (:meth:`Reaper.drain`: tests; and the process itself at exit, for at most
  :data:`EXIT_DRAIN` seconds, so that a short-lived process, e.g. one that re-attached to a
  kernel to shut it down, does not exit before its deletions are confirmed).

It runs on a thread, not on an event loop: it survives the loop of the request that failed,
and it never blocks one.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
CHECK_INTERVAL = 0.2
"""Seconds between checks of the cache."""
API_CHECK_INTERVAL = 2.0
"""Seconds between API checks of an object the cache cannot answer for."""
MAX_ROUNDS = 3
"""How many times an object that outlives its timeout is deleted again before giving up."""
EXIT_DRAIN = 30.0
"""Seconds a process waits at exit for its pending deletions to be confirmed."""


@dataclass(eq=False)
class Deletion:
    """One deleted object to see through.

    ``gone`` reads a cache (no I/O): True when the object is gone, False when it is still
    there, None when the cache cannot tell (not synced).  ``confirm`` asks the API (blocking):
    True when gone.  ``retry`` deletes the object again (blocking).  ``on_gone`` runs once,
    when it is gone.
    """

    kernel_id: str
    kind: str
    """What was deleted: ``pod``, ``namespace``, a custom resource's kind..."""
    what: str
    gone: Callable[[], bool | None]
    confirm: Callable[[], bool]
    retry: Callable[[], object]
    timeout: float
    on_gone: Callable[[], object] | None = None
    deadline: float = field(default=0.0)
    rounds: int = 0
    next_api_check: float = 0.0
    tracked_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.deadline = self.tracked_at + self.timeout


class Reaper:
    """The process's background checker of deleted kernel objects; see the module docstring."""

    _instance: ClassVar[Reaper | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pending: list[Deletion] = []
        self._thread: threading.Thread | None = None
        self.completed = 0
        self.abandoned: list[str] = []
        self._exit_hook = False

    @classmethod
    def shared(cls) -> Reaper:
        """The process's reaper (its thread starts with the first object tracked)."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    # -- what provisioners call ---------------------------------------------------------------

    def track(self, deletion: Deletion) -> None:
        """See ``deletion`` through (its object's deletion was accepted by the API)."""
        with self._changed:
            self._pending.append(deletion)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="gp-k8s-reaper", daemon=True)
                self._thread.start()
            if not self._exit_hook:
                self._exit_hook = True
                atexit.register(self._at_exit)
            self._changed.notify_all()

    def pending(self, kernel_id: str | None = None, kind: str | None = None) -> list[str]:
        """What is still being deleted (for ``kernel_id``, or for every kernel; of ``kind``,
        or of every kind)."""
        with self._lock:
            return [
                d.what
                for d in self._pending
                if (kernel_id is None or d.kernel_id == kernel_id) and kind in (None, d.kind)
            ]

    async def settled(self, kernel_id: str, timeout: float, kind: str | None = None) -> bool:
        """Wait (without blocking the loop) until nothing of ``kernel_id`` (of ``kind``) is
        pending; False when something still is after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.pending(kernel_id, kind):
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    def drain(self, timeout: float) -> list[str]:
        """Block until nothing is pending or ``timeout`` passed; return what is left."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._changed.wait_for(lambda: not self._pending, max(deadline - time.monotonic(), 0))
            return [d.what for d in self._pending]

    def _at_exit(self) -> None:
        if not self.pending():
            return
        left = self.drain(EXIT_DRAIN)
        if left:
            log.warning(
                "Exiting before these deletions were confirmed (the API accepted them; the "
                "cluster completes them): %s",
                ", ".join(left),
            )

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._pending))
                work = list(self._pending)
            finished = [d for d in work if self._check(d)]
            with self._changed:
                for deletion in finished:
                    if deletion in self._pending:
                        self._pending.remove(deletion)
                if finished:
                    self._changed.notify_all()
                self._changed.wait(CHECK_INTERVAL)

    def _check(self, deletion: Deletion) -> bool:
        """One look at ``deletion``; True when it is finished (gone, or given up)."""
        now = time.monotonic()
        try:
            gone = deletion.gone()
            if gone is None and now >= deletion.next_api_check:
                deletion.next_api_check = now + API_CHECK_INTERVAL
                gone = deletion.confirm()
        except ApiException as err:
            if err.status not in (401, 403):
                log.debug("Kernel %s: checking %s: %s", deletion.kernel_id, deletion.what, err)
                gone = None
            else:  # waiting cannot succeed: the server's account lost the right to look
                log.warning(
                    "Kernel %s: cannot confirm the deletion of %s (HTTP %s: this server's "
                    "account may no longer read it, e.g. its RBAC was removed); the cluster "
                    "completes the deletion the API accepted",
                    deletion.kernel_id,
                    deletion.what,
                    err.status,
                )
                self.abandoned.append(deletion.what)
                return True
        except Exception as err:  # noqa: BLE001 - keep checking; the API may come back
            log.debug("Kernel %s: checking %s: %s", deletion.kernel_id, deletion.what, err)
            gone = None
        if gone:
            self.completed += 1
            log.debug(
                "Kernel %s: %s gone %.1fs after its deletion",
                deletion.kernel_id,
                deletion.what,
                now - deletion.tracked_at,
            )
            if deletion.on_gone is not None:
                try:
                    deletion.on_gone()
                except Exception as err:  # noqa: BLE001
                    log.debug("Kernel %s: after %s: %s", deletion.kernel_id, deletion.what, err)
            return True
        if now < deletion.deadline:
            return False
        deletion.rounds += 1
        waited = now - deletion.tracked_at
        if deletion.rounds > MAX_ROUNDS:
            log.error(
                "Kernel %s: %s still present %.0fs after its deletion; giving up: delete it by "
                "hand and check its node",
                deletion.kernel_id,
                deletion.what,
                waited,
            )
            self.abandoned.append(deletion.what)
            return True
        log.warning(
            "Kernel %s: %s still present %.0fs after its deletion; deleting it again",
            deletion.kernel_id,
            deletion.what,
            waited,
        )
        try:
            deletion.retry()
        except Exception as err:  # noqa: BLE001 - the next round tries again
            log.warning("Kernel %s: deleting %s again: %s", deletion.kernel_id, deletion.what, err)
        deletion.deadline = now + deletion.timeout
        return False


__all__ = ["Deletion", "Reaper"]
