"""The shared batched watcher: one query per interval for every id, whatever their number."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection

from gp_provisioners_core.watcher import BatchedStatusWatcher, Observation


def status_of(watcher: BatchedStatusWatcher[str], item_id: str) -> str | None:
    """The status ``watcher`` last saw of ``item_id``; fails the test if no query covered it."""
    observation = watcher.observe(item_id)
    assert observation is not None, f"no query covered {item_id}"
    return observation.status


class FakeQueue:
    """Stands in for squeue: records each batched query."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.calls: list[frozenset[str]] = []
        self.fail = False
        self.lock = threading.Lock()

    def fetch(self, ids: Collection[str]) -> dict[str, str]:
        with self.lock:
            self.calls.append(frozenset(ids))
            if self.fail:
                raise ConnectionError("backend unreachable")
            return {i: self.states[i] for i in ids if i in self.states}


def test_one_query_covers_every_watched_id() -> None:
    queue = FakeQueue()
    watcher = BatchedStatusWatcher("test-batch", queue.fetch, interval=0.05, launch_interval=0.05)
    try:
        ids = [f"job-{n}" for n in range(50)]
        queue.states = dict.fromkeys(ids, "RUNNING")
        for item in ids:
            watcher.watch(item)
        assert watcher.refresh()
        assert watcher.refresh()
        assert all(status_of(watcher, i) == "RUNNING" for i in ids)
        assert any(len(call) == 50 for call in queue.calls)
        queries_before = watcher.queries
        time.sleep(0.5)
        per_interval = (watcher.queries - queries_before) / (0.5 / 0.05)
        assert per_interval <= 1.5, "one query per interval, not one per id"
    finally:
        watcher.stop()


def test_a_vanished_id_reads_as_none_and_errors_keep_the_last_answer() -> None:
    queue = FakeQueue()
    watcher = BatchedStatusWatcher("test-vanish", queue.fetch, interval=10, launch_interval=10)
    try:
        queue.states = {"a": "RUNNING", "b": "RUNNING"}
        watcher.watch("a")
        watcher.watch("b")
        assert watcher.refresh()
        del queue.states["b"]
        assert watcher.refresh()
        assert status_of(watcher, "a") == "RUNNING"
        assert status_of(watcher, "b") is None
        queue.fail = True
        assert watcher.refresh()
        assert status_of(watcher, "a") == "RUNNING"
        assert "backend unreachable" in watcher.last_error
    finally:
        watcher.stop()


def test_launching_ids_are_queried_faster() -> None:
    queue = FakeQueue()
    watcher = BatchedStatusWatcher("test-fast", queue.fetch, interval=5, launch_interval=0.05)
    try:
        queue.states = {"a": "PENDING"}
        watcher.watch("a", launching=True)
        time.sleep(0.4)
        fast = watcher.queries
        watcher.launched("a")
        watcher.refresh()
        before = watcher.queries
        time.sleep(0.4)
        assert fast >= 4
        assert watcher.queries - before <= 1
    finally:
        watcher.stop()


def test_refresh_waits_for_a_query_that_covers_an_id_watched_during_one() -> None:
    """A query under way took its snapshot of the ids before ``watch("late")``: ``refresh``
    must wait for the next one, or ``observe("late")`` is still None afterwards (seen as a
    flaky gp-yarn test under load)."""
    started, release = threading.Event(), threading.Event()
    seen: list[frozenset[str]] = []

    def fetch(ids: Collection[str]) -> dict[str, str]:
        seen.append(frozenset(ids))
        if len(seen) == 1:
            started.set()
            release.wait(5)
        else:
            time.sleep(0.5)  # the next query is slow: only a refresh that waits for it sees it
        return dict.fromkeys(ids, "RUNNING")

    watcher = BatchedStatusWatcher("test-late", fetch, interval=60, launch_interval=60)
    observed: list[Observation[str] | None] = []
    try:
        watcher.watch("early", launching=False)
        assert started.wait(5)  # the first query holds {"early"} and is blocked
        watcher.watch("late", launching=False)

        def refresh_then_observe() -> None:
            watcher.refresh(5)
            observed.append(watcher.observe("late"))

        refresher = threading.Thread(target=refresh_then_observe, daemon=True)
        refresher.start()
        time.sleep(0.1)
        release.set()
        refresher.join(5)
        assert seen[0] == frozenset({"early"})
        assert len(observed) == 1
        assert observed[0] is not None
        assert observed[0].status == "RUNNING"
    finally:
        release.set()
        watcher.stop()
