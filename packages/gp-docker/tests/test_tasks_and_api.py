"""Swarm task states from one batched query, and the API call counter."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from docker_fakes import FakeClient

from gp_docker.builders import KERNEL_ID_LABEL
from gp_docker.docker_api import ApiCallCounter, endpoint_of
from gp_docker.tasks import TaskStatus, newest_tasks, task_fetcher


def task(service: str, task_id: str, index: int, state: str, **status: Any) -> dict[str, Any]:
    return {
        "ID": task_id,
        "ServiceID": service,
        "NodeID": "n1",
        "Version": {"Index": index},
        "Status": {"State": state, **status},
    }


def test_newest_task_per_service() -> None:
    tasks = [
        task("s1", "t1", 10, "failed", Err="task: non-zero exit (1)"),
        task("s1", "t2", 12, "running", ContainerStatus={"ContainerID": "c2", "ExitCode": 0}),
        task("s2", "t3", 5, "rejected", Err="No such image: gp/nope:1", Message="preparing"),
        {"ID": "t4", "Status": {"State": "running"}},
    ]
    newest = newest_tasks(tasks)
    assert set(newest) == {"s1", "s2"}
    assert newest["s1"] == TaskStatus("t2", "running", container_id="c2", exit_code=0, node_id="n1")
    assert newest["s2"].error == "No such image: gp/nope:1"
    assert newest["s2"].message == "preparing"


def test_fetch_is_one_call_for_all_services() -> None:
    client = FakeClient()
    client.api.tasks_answer = [task(f"s{i}", f"t{i}", i, "running") for i in range(20)]
    fetch = task_fetcher(lambda: client)
    answer = fetch({f"s{i}" for i in range(20)})
    assert len(answer) == 20
    assert client.api.calls == {"tasks": 1}
    assert client.api.filters["tasks"] == {"label": [KERNEL_ID_LABEL]}


def test_a_service_without_a_task_yet_is_new_and_a_missing_one_is_absent() -> None:
    client = FakeClient()
    client.api.services_answer = [{"ID": "s-new"}]
    answer = task_fetcher(lambda: client)({"s-new", "s-gone"})
    assert answer == {"s-new": TaskStatus("", "new")}
    assert client.api.calls == {"tasks": 1, "services": 1}


def test_endpoints_are_named_without_ids() -> None:
    assert endpoint_of("/v1.41/containers/json?all=1") == "containers/json"
    assert endpoint_of("/v1.41/containers/3f2a9b/start") == "containers/{id}/start"
    assert endpoint_of("/v1.41/containers/3f2a9b?force=True") == "containers/{id}"
    assert endpoint_of("/v1.41/services/create") == "services/create"
    assert endpoint_of("/v1.41/events?filters=x") == "events"
    assert endpoint_of("/version") == "version"


def test_counter_counts_each_response() -> None:
    counter = ApiCallCounter()
    for path in ("/v1.41/tasks?filters=x", "/v1.41/tasks", "/v1.41/containers/abc/logs"):
        counter.hook(SimpleNamespace(request=SimpleNamespace(method="GET", path_url=path)))
    assert counter.snapshot() == {"GET tasks": 2, "GET containers/{id}/logs": 1}
    assert counter.total() == 3


def test_an_unreachable_daemon_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gp_docker import docker_api

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    docker_api.reset_clients()
    with pytest.raises(docker_api.DockerUnreachableError) as caught:
        docker_api.docker_client()
    assert f"unix://{tmp_path}/no-such.sock" in str(caught.value)
    assert "DOCKER_HOST" in str(caught.value)
