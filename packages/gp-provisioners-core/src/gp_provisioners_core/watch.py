"""The contract every backend's shared watcher keeps: a cache kept by one thread, read by
provisioners on any event loop, and a signal that wakes them when the cache changes.

Each backend has one watcher per process (a Kubernetes list-then-watch, the Docker events
stream, a batched ``squeue`` or YARN query, one ssh command per host for remote launchers);
their caches differ in what they hold, but each implements :class:`BackendWatch`:

- ``changes``: a :class:`ChangeSignal` the watcher's thread notifies after every change it
  applies (and once it has synced);
- ``is_synced()``: whether the cache holds an answer from the backend yet (False before the
  first list or query completes, and again while a stream is being re-listed).

A provisioner waits on the signal instead of polling its cache: :meth:`ChangeSignal.wait_until`
re-checks a predicate on each change, and the core's launch wait (``receive_connection_info``)
wakes on any change of the watches a backend names in ``launch_watches``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ChangeSignal:
    """A change counter that wakes coroutines on any event loop, notified from any thread.

    The watcher calls :meth:`notify` after it applied a change; a reader takes
    :attr:`version`, reads the cache, then awaits :meth:`changed_since` that version, so that a
    change between the read and the wait is never missed.  Waiters hold nothing once they
    return (bounded by the number of waiting coroutines).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def version(self) -> int:
        """How many changes were notified so far."""
        return self._version

    def notify(self) -> None:
        """A change was applied (called by the watcher's thread, or any thread)."""
        with self._lock:
            self._version += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_wake, future)
            except RuntimeError:  # that loop is closed: nobody waits there any more
                pass

    async def changed_since(self, version: int, timeout: float) -> bool:
        """Wait until a change after ``version`` (True) or ``timeout`` seconds (False)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._version != version:
                return True
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, max(timeout, 0))
        except asyncio.TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)
        return True

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` (a cache read, no I/O) is true, re-checking it on every
        change; False after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            version = self._version
            if predicate():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await self.changed_since(version, remaining)


@runtime_checkable
class BackendWatch(Protocol):
    """What the core needs of a backend's shared watcher (see the module docstring)."""

    @property
    def changes(self) -> ChangeSignal:
        """Notified after every change the watcher applies to its cache."""

    def is_synced(self) -> bool:
        """Whether the cache holds an answer from the backend (no I/O)."""


async def any_change(
    watches: Sequence[BackendWatch], versions: Sequence[int], timeout: float
) -> bool:
    """Wait until one of ``watches`` changed since its entry in ``versions`` (True) or
    ``timeout`` seconds passed (False).  Called by the core's launch wait."""
    if not watches:
        await asyncio.sleep(max(timeout, 0))
        return False
    if len(watches) == 1:
        return await watches[0].changes.changed_since(versions[0], timeout)
    waits = [
        asyncio.ensure_future(watch.changes.changed_since(version, timeout))
        for watch, version in zip(watches, versions, strict=True)
    ]
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        return any(task.result() for task in done)
    finally:
        for task in waits:
            task.cancel()
