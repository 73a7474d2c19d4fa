"""The watch contract: a change notified on a watcher's thread wakes coroutines on their loops,
no change is lost between a read and a wait, and a launch wakes on its backend's changes
instead of waiting for the next check interval."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_provisioners_core import ContainerProvisionerBase, LaunchFailedError
from gp_provisioners_core.watch import BackendWatch, ChangeSignal, any_change
from gp_provisioners_core.watcher import BatchedStatusWatcher


class FakeWatch:
    """A watcher whose cache is one status, changed from a thread of its own."""

    def __init__(self) -> None:
        self.changes = ChangeSignal()
        self.status = "pending"

    def is_synced(self) -> bool:
        return True

    def set_later(self, status: str, delay: float) -> None:
        def change() -> None:
            time.sleep(delay)
            self.status = status
            self.changes.notify()

        threading.Thread(target=change, daemon=True).start()


def test_watchers_keep_the_contract() -> None:
    assert isinstance(FakeWatch(), BackendWatch)
    watcher: BatchedStatusWatcher[str] = BatchedStatusWatcher("t", lambda ids: {}, interval=60)
    assert isinstance(watcher, BackendWatch)
    assert not watcher.is_synced()


@pytest.mark.asyncio
async def test_a_change_on_another_thread_wakes_the_waiter() -> None:
    watch = FakeWatch()
    watch.set_later("running", 0.2)
    started = time.monotonic()
    assert await watch.changes.wait_until(lambda: watch.status == "running", timeout=30)
    assert time.monotonic() - started < 10  # woken by the change, not by the 30 s timeout
    assert not watch.changes._waiters, "a returned waiter leaves nothing behind"


@pytest.mark.asyncio
async def test_a_change_between_read_and_wait_is_not_lost() -> None:
    signal = ChangeSignal()
    version = signal.version
    signal.notify()  # after the read, before the wait
    assert await signal.changed_since(version, timeout=30)


@pytest.mark.asyncio
async def test_no_change_times_out_false_and_leaves_no_waiter() -> None:
    signal = ChangeSignal()
    assert not await signal.changed_since(signal.version, timeout=0.05)
    assert not await signal.wait_until(lambda: False, timeout=0.05)
    assert not signal._waiters


def test_notify_survives_a_waiter_whose_loop_closed() -> None:
    signal = ChangeSignal()
    loop = asyncio.new_event_loop()
    task = loop.create_task(signal.changed_since(signal.version, timeout=30))
    loop.call_soon(loop.stop)
    loop.run_forever()  # the task registered its waiter and is parked
    assert signal._waiters
    task.cancel()
    loop.close()
    signal.notify()  # must not raise
    assert signal.version == 1


@pytest.mark.asyncio
async def test_any_change_wakes_on_either_watch() -> None:
    first, second = FakeWatch(), FakeWatch()
    versions = [first.changes.version, second.changes.version]
    second.set_later("failed", 0.1)
    assert await any_change([first, second], versions, timeout=30)
    assert not await any_change([first], [first.changes.version], timeout=0.05)


@pytest.mark.asyncio
async def test_batched_watcher_notifies_only_when_a_status_changes() -> None:
    answers = {"job-1": "PENDING"}
    watcher: BatchedStatusWatcher[str] = BatchedStatusWatcher(
        "notify-test", lambda ids: dict(answers), interval=60, launch_interval=0.02
    )
    try:
        watcher.watch("job-1")
        assert await watcher.changes.wait_until(watcher.is_synced, timeout=10)
        version = watcher.changes.version
        await asyncio.to_thread(watcher.refresh)
        await asyncio.to_thread(watcher.refresh)
        assert watcher.changes.version == version, "the same answer is no change"
        answers["job-1"] = "FAILED"
        assert await watcher.changes.changed_since(version, timeout=10)
        observation = watcher.observe("job-1")
        assert observation is not None
        assert observation.status == "FAILED"
    finally:
        watcher.stop()


class SilentLauncher:
    """A response manager whose launcher never sends its connection info."""

    async def get_launch_message(self, kernel_id: str) -> None:
        await asyncio.sleep(3600)


class WatchedContainers(ContainerProvisionerBase):
    """A container backend whose status comes from a FakeWatch; its launcher never answers."""

    watch_of_test = FakeWatch()
    launch_check_interval = 60.0  # a failure must not wait for this

    @property
    def response_manager(self) -> SilentLauncher:  # type: ignore[override]
        return SilentLauncher()

    def get_initial_states(self) -> set[str]:
        return {"pending"}

    def get_error_states(self) -> set[str]:
        return {"failed"}

    def get_container_status(self) -> str:
        return self.watch_of_test.status

    def describe_failure(self) -> str:
        return "the backend refused it"

    def launch_watches(self) -> tuple[FakeWatch, ...]:
        return (self.watch_of_test,)

    async def terminate_container_resources(self, restart: bool = False) -> None:
        pass

    async def submit_kernel(self, cmd, env, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.container_name = f"kernel-{self.kernel_id}"


@pytest.mark.asyncio
async def test_a_launch_fails_on_the_watch_change_not_at_the_next_interval() -> None:
    spec = KernelSpec(argv=["python"], display_name="Watched", resource_dir="/specs/w")
    provisioner = WatchedContainers(kernel_id="k-9", kernel_spec=spec, image_name="img:1")
    await provisioner.submit_kernel([], {})
    provisioner.watch_of_test.set_later("failed", 0.2)
    started = time.monotonic()
    with pytest.raises(LaunchFailedError, match="kernel-k-9 is failed"):
        await provisioner.receive_connection_info()
    assert time.monotonic() - started < 30  # the change, not the 60 s interval, ended it
