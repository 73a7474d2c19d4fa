"""Swarm task states, read for every watched kernel service in one call per interval.

Docker emits no events for task state changes, and a task that never got a container (its
image is missing, no node can take it) shows only in the task list.  The swarm provisioner
therefore watches its service with gp-provisioners-core's shared ``BatchedStatusWatcher``: one
``GET /tasks`` (filtered by the kernel label) per interval for all kernel services of the
process, every 0.25 s while one is launching and every few seconds after.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gp_provisioners_core.watcher import BatchedStatusWatcher

from .builders import KERNEL_ID_LABEL

IDLE_INTERVAL = 3.0
LAUNCH_INTERVAL = 0.25


@dataclass(frozen=True)
class TaskStatus:
    """The newest task of a service: its state (``new`` .. ``running``, ``complete``,
    ``failed``, ``rejected``, ``shutdown``, ...), Swarm's message and error, and its container."""

    task_id: str
    state: str
    message: str = ""
    error: str = ""
    container_id: str = ""
    exit_code: int | None = None
    node_id: str = ""


def newest_tasks(tasks: Iterable[Mapping[str, Any]]) -> dict[str, TaskStatus]:
    """The newest task of each service in a ``GET /tasks`` answer, by service id."""
    newest: dict[str, tuple[tuple[int, str], TaskStatus]] = {}
    for task in tasks:
        service_id = str(task.get("ServiceID") or "")
        if not service_id:
            continue
        status: Mapping[str, Any] = task.get("Status") or {}
        container: Mapping[str, Any] = status.get("ContainerStatus") or {}
        exit_code = container.get("ExitCode")
        order = (int((task.get("Version") or {}).get("Index") or 0), str(task.get("CreatedAt")))
        parsed = TaskStatus(
            task_id=str(task.get("ID") or ""),
            state=str(status.get("State") or ""),
            message=str(status.get("Message") or ""),
            error=str(status.get("Err") or ""),
            container_id=str(container.get("ContainerID") or ""),
            exit_code=int(exit_code) if isinstance(exit_code, int) else None,
            node_id=str(task.get("NodeID") or ""),
        )
        if service_id not in newest or order >= newest[service_id][0]:
            newest[service_id] = (order, parsed)
    return {service_id: entry[1] for service_id, entry in newest.items()}


def task_fetcher(
    client_factory: Callable[[], Any],
) -> Callable[[Collection[str]], Mapping[str, TaskStatus]]:
    """The batched query: the newest task of each watched service.  A service that has no
    task yet is ``new`` (asked with one more call, only then); one that is absent is gone."""

    def fetch(service_ids: Collection[str]) -> Mapping[str, TaskStatus]:
        client = client_factory()
        label_filter = {"label": [KERNEL_ID_LABEL]}
        wanted = set(service_ids)
        tasks = client.api.tasks(filters=label_filter)
        answer = {sid: t for sid, t in newest_tasks(tasks).items() if sid in wanted}
        if len(answer) < len(wanted):
            existing = {str(s["ID"]) for s in client.api.services(filters=label_filter)}
            for service_id in (wanted - answer.keys()) & existing:
                answer[service_id] = TaskStatus(task_id="", state="new")
        return answer

    return fetch


def shared_task_watcher(
    key: str, client_factory: Callable[[], Any]
) -> BatchedStatusWatcher[TaskStatus]:
    """The process's task watcher for the daemon ``key``."""
    return BatchedStatusWatcher.get_or_create(
        f"docker-swarm-tasks:{key}",
        task_fetcher(client_factory),
        interval=IDLE_INTERVAL,
        launch_interval=LAUNCH_INTERVAL,
    )
