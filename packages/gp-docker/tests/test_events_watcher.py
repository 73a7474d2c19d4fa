"""The shared events watcher: list, then follow the stream; reads cost no API call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from docker_fakes import FakeClient, event, listed

from gp_docker.builders import KERNEL_ID_LABEL
from gp_docker.events import (
    ContainerState,
    DockerEventsWatcher,
    state_from_event,
    state_from_listing,
)


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def watcher(client: FakeClient) -> Iterator[DockerEventsWatcher]:
    created = DockerEventsWatcher(lambda: client, name="test")
    yield created
    created.stop()


def wait(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_event_states() -> None:
    created = state_from_event(event("create", "c1", "k1"), None, KERNEL_ID_LABEL, 1.0)
    assert created is not None
    assert created.status == "created"
    assert created.kernel_id == "k1"
    started = state_from_event(event("start", "c1", "k1"), created, KERNEL_ID_LABEL, 2.0)
    assert started is not None
    assert started.status == "running"
    died = state_from_event(event("die", "c1", "k1", exitCode="137"), started, KERNEL_ID_LABEL, 3)
    assert died is not None
    assert died.status == "exited"
    assert died.exit_code == 137
    oom = state_from_event(event("oom", "c1", "k1"), died, KERNEL_ID_LABEL, 4.0)
    assert oom is not None
    assert oom.oom_killed
    assert oom.status == "exited"
    gone = state_from_event(event("destroy", "c1", "k1"), oom, KERNEL_ID_LABEL, 5.0)
    assert gone is not None
    assert gone.status == "removed"
    assert gone.exit_code == 137
    assert state_from_event(event("kill", "c1", "k1"), gone, KERNEL_ID_LABEL, 6.0) is None
    unlabelled = {"Type": "container", "Action": "start", "Actor": {"ID": "c2", "Attributes": {}}}
    assert state_from_event(unlabelled, None, KERNEL_ID_LABEL, 1.0) is None
    swarm = state_from_event(event("start", "c3", "k3", service_id="s3"), None, KERNEL_ID_LABEL, 1)
    assert swarm is not None
    assert swarm.service_id == "s3"


def test_listing_states() -> None:
    exited = state_from_listing(
        listed("c1", "k1", "exited", "Exited (3) 2 seconds ago"), KERNEL_ID_LABEL, 1.0
    )
    assert (exited.status, exited.exit_code, exited.name) == ("exited", 3, "gp-k1")
    running = state_from_listing(listed("c2", "k2", "running", "Up 3 s"), KERNEL_ID_LABEL, 1.0)
    assert (running.status, running.exit_code) == ("running", None)


def test_lists_then_follows_the_stream(client: FakeClient, watcher: DockerEventsWatcher) -> None:
    client.api.listing = [listed("c1", "k1", "running")]
    watcher.start()
    wait(lambda: watcher.synced)
    assert client.api.filters["events"] == {
        "type": ["container"],
        "label": [KERNEL_ID_LABEL],
        "event": ["create", "start", "restart", "unpause", "pause", "die", "destroy", "oom"],
    }
    assert client.api.filters["containers"] == {"label": [KERNEL_ID_LABEL]}
    state = watcher.container("c1")
    assert state is not None
    assert state.status == "running"
    stream = client.api.streams[0]
    stream.push(event("die", "c1", "k1", exitCode="1"))
    wait(lambda: watcher.container("c1").status == "exited")  # type: ignore[union-attr]
    stream.push(event("create", "c2", "k2", service_id="s2"))
    stream.push(event("start", "c2", "k2", service_id="s2"))
    wait(lambda: [c.status for c in watcher.containers_of_service("s2")] == ["running"])
    calls = dict(client.api.calls)
    for _ in range(1000):
        watcher.container("c1")
        watcher.containers_of_service("s2")
    assert dict(client.api.calls) == calls == {"events": 1, "containers": 1}


def test_reconnect_relists_and_marks_vanished_containers_removed(
    client: FakeClient, watcher: DockerEventsWatcher
) -> None:
    client.api.listing = [listed("c1", "k1", "running"), listed("c2", "k2", "running")]
    watcher.start()
    wait(lambda: watcher.synced)
    client.api.listing = [listed("c2", "k2", "exited", "Exited (0) 1 second ago")]
    client.api.streams[0].end()  # the daemon closed the stream
    wait(lambda: client.api.calls["events"] == 2 and watcher.synced)
    assert watcher.container("c1").status == "removed"  # type: ignore[union-attr]
    assert watcher.container("c2").status == "exited"  # type: ignore[union-attr]
    assert watcher.stats()["streams_opened"] == 2


def test_expect_never_overrides_what_an_event_said(watcher: DockerEventsWatcher) -> None:
    watcher.expect(ContainerState("c9", "gp-k9", "k9", "", "created", seen_at=time.monotonic()))
    assert watcher.container("c9").status == "created"  # type: ignore[union-attr]
    watcher._apply(event("die", "c9", "k9", exitCode="2"))
    watcher.expect(ContainerState("c9", "gp-k9", "k9", "", "created", seen_at=time.monotonic()))
    assert watcher.container("c9").status == "exited"  # type: ignore[union-attr]
    watcher.forget(["c9"])
    assert watcher.container("c9") is not None  # only removed containers are forgotten
    watcher.mark_removed("c9")
    watcher.forget(["c9"])
    assert watcher.container("c9") is None


@pytest.mark.asyncio
async def test_wait_until_wakes_on_a_change_from_the_watcher_thread(
    watcher: DockerEventsWatcher,
) -> None:
    watcher._apply(event("start", "c5", "k5"))
    timer = threading.Timer(0.2, lambda: watcher._apply(event("destroy", "c5", "k5")))
    timer.start()
    started = time.monotonic()
    done = await watcher.wait_until(
        lambda: watcher.container("c5").status == "removed",  # type: ignore[union-attr]
        timeout=5,
    )
    assert done
    assert time.monotonic() - started < 2
    assert not await watcher.wait_until(lambda: False, timeout=0.05)
    await asyncio.sleep(0)


def test_shared_watcher_is_one_per_daemon(client: FakeClient) -> None:
    try:
        first = DockerEventsWatcher.shared("unix:///fake-a.sock", lambda: client)
        again = DockerEventsWatcher.shared("unix:///fake-a.sock", lambda: FakeClient())
        other = DockerEventsWatcher.shared("unix:///fake-b.sock", lambda: client)
        assert first is again
        assert first is not other
    finally:
        DockerEventsWatcher.stop_all()
