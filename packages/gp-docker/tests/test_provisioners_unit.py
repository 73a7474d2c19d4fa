"""The provisioners' reading of the shared caches, and their refusals, without a daemon."""

from __future__ import annotations

from typing import Any

import pytest
from docker_fakes import FakeClient, event
from jupyter_client.kernelspec import KernelSpec

from gp_docker import DockerProvisioner, DockerSwarmProvisioner
from gp_docker.base import DockerProvisionerBase
from gp_docker.events import DockerEventsWatcher
from gp_docker.tasks import TaskStatus
from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.watcher import Observation

KID = "6c1f1c7e-51b5-4c1e-9a7e-0d6d2f0f4e11"


class FakeTasks:
    def __init__(self) -> None:
        self.observations: dict[str, Observation[TaskStatus]] = {}

    def observe(self, service_id: str) -> Observation[TaskStatus] | None:
        return self.observations.get(service_id)

    def set(self, service_id: str, status: TaskStatus | None) -> None:
        self.observations[service_id] = Observation(status, 0.0)


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def events(client: FakeClient, monkeypatch: pytest.MonkeyPatch) -> DockerEventsWatcher:
    watcher = DockerEventsWatcher(lambda: client, name="unit")  # never started: fed by hand
    monkeypatch.setattr(DockerProvisionerBase, "events", property(lambda self: watcher))
    return watcher


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> FakeTasks:
    fake = FakeTasks()
    monkeypatch.setattr(DockerSwarmProvisioner, "tasks", property(lambda self: fake))
    return fake


def spec() -> KernelSpec:
    return KernelSpec(argv=["python", "/usr/local/bin/launch_ipykernel.py"], display_name="t")


@pytest.mark.asyncio
async def test_docker_poll_reads_the_events_cache(
    events: DockerEventsWatcher, client: FakeClient
) -> None:
    provisioner = DockerProvisioner(kernel_id=KID, kernel_spec=spec(), parent=None)
    provisioner.container_id = "c1"
    assert provisioner.get_container_status() == ""
    events._apply(event("create", "c1", KID))
    events._apply(event("start", "c1", KID))
    assert await provisioner.poll() is None
    events._apply(event("die", "c1", KID, exitCode="137"))
    assert provisioner.get_container_status() in provisioner.get_error_states()
    assert await provisioner.poll() == 1
    events._apply(event("destroy", "c1", KID))
    assert await provisioner.poll() == 1
    assert sum(client.api.calls.values()) == 0


@pytest.mark.asyncio
async def test_docker_poll_says_unknown_while_the_daemon_does_not_answer(
    events: DockerEventsWatcher,
) -> None:
    """A re-attach during a daemon stall: the events stream has not synced, the container is
    not in the cache; the kernel is not reported dead (None) until the listing says so."""
    provisioner = DockerProvisioner(kernel_id=KID, kernel_spec=spec(), parent=None)
    provisioner.container_id = "c1"
    assert not events.synced
    assert await provisioner.poll() is None
    events._replace([], 0.0)
    events.synced = True
    assert await provisioner.poll() == 0


@pytest.mark.asyncio
async def test_swarm_status_from_the_task_container_else_the_task(
    events: DockerEventsWatcher, tasks: FakeTasks, client: FakeClient
) -> None:
    provisioner = DockerSwarmProvisioner(kernel_id=KID, kernel_spec=spec(), parent=None)
    assert provisioner.get_container_status() == ""
    provisioner.service_id = "s1"
    assert provisioner.get_container_status() == "new"
    tasks.set("s1", TaskStatus("t1", "preparing"))
    assert provisioner.get_container_status() in provisioner.get_initial_states()
    assert await provisioner.poll() is None
    events._apply(event("start", "c1", KID, service_id="s1"))
    tasks.set("s1", TaskStatus("t1", "starting"))  # the task list lags behind the events
    assert provisioner.get_container_status() == "running"
    events._apply(event("die", "c1", KID, service_id="s1", exitCode="3"))
    assert provisioner.get_container_status() == "exited"
    assert await provisioner.poll() == 1
    assert sum(client.api.calls.values()) == 0


def test_swarm_task_refused_or_service_gone(events: DockerEventsWatcher, tasks: FakeTasks) -> None:
    provisioner = DockerSwarmProvisioner(kernel_id=KID, kernel_spec=spec(), parent=None)
    provisioner.service_id = "s2"
    tasks.set("s2", TaskStatus("t2", "rejected", error="No such image: gp/x:1"))
    assert provisioner.get_container_status() in provisioner.get_error_states()
    tasks.set("s2", None)
    assert provisioner.get_container_status() == "removed"


@pytest.mark.asyncio
@pytest.mark.parametrize("cls", [DockerProvisioner, DockerSwarmProvisioner])
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KERNEL_UID": "00"}, "KERNEL_UID='00'"),
        ({"KERNEL_GID": "0", "KERNEL_UID": "5"}, "KERNEL_GID='0'"),
        ({"KERNEL_IMAGE": "other/image:1"}, "KERNEL_IMAGE='other/image:1'"),
        ({"KERNEL_X=Y": "z"}, "'KERNEL_X=Y' is not a valid variable name"),
        ({"KERNEL_NOTE": "a\0b"}, "KERNEL_NOTE holds a NUL byte"),
    ],
)
async def test_pre_launch_refuses_before_anything_is_registered(
    cls: Any, env: dict[str, str], expected: str
) -> None:
    provisioner = cls(kernel_id=KID, kernel_spec=spec(), parent=None, image_name="gp/k:1")
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await provisioner.pre_launch(env={"KERNEL_USERNAME": "alice", **env})
    assert expected in str(refused.value)
    assert KID in str(refused.value)
    assert provisioner.kernel_image == "gp/k:1" or "KERNEL_IMAGE" in expected


@pytest.mark.asyncio
async def test_allowed_image_and_user_are_chosen_before_anything_is_registered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GP_ALLOWED_IMAGES", "gp/*")
    provisioner = DockerProvisioner(kernel_id=KID, kernel_spec=spec(), parent=None)
    provisioner.image_name = "gp/k:1"
    env = {"KERNEL_USERNAME": "alice", "KERNEL_IMAGE": "gp/other:2", "KERNEL_UID": "1000"}
    await provisioner.validate_launch(env)  # the core's pre_launch calls it after authorising
    assert provisioner.kernel_image == "gp/other:2"
    assert provisioner.kernel_user == "1000:100"
    container = provisioner.kernel_container(
        ["python", "x.py"], {**env, "SECRET": "s", "GP_LAUNCH_SECRET": "l"}
    )
    assert container.image == "gp/other:2"
    assert container.user == "1000:100"
    assert "SECRET" not in container.env
    assert container.env["GP_LAUNCH_SECRET"] == "l"
    assert container.labels["gp.kernel-id"] == KID
