"""A fake Docker client for the watcher tests: an events stream the test feeds, and a listing."""

from __future__ import annotations

import queue
from collections import Counter
from collections.abc import Iterator
from typing import Any

from gp_docker.builders import KERNEL_ID_LABEL, SWARM_SERVICE_ID_LABEL


class FakeStream:
    def __init__(self) -> None:
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            item = self.queue.get()
            if item is None:
                return
            yield item

    def push(self, event: dict[str, Any]) -> None:
        self.queue.put(event)

    def end(self) -> None:
        self.queue.put(None)

    def close(self) -> None:
        self.closed = True
        self.queue.put(None)


class FakeApi:
    def __init__(self) -> None:
        self.listing: list[dict[str, Any]] = []
        self.streams: list[FakeStream] = []
        self.tasks_answer: list[dict[str, Any]] = []
        self.services_answer: list[dict[str, Any]] = []
        self.calls: Counter[str] = Counter()
        self.filters: dict[str, Any] = {}

    def events(self, decode: bool, filters: dict[str, Any]) -> FakeStream:
        self.calls["events"] += 1
        self.filters["events"] = filters
        stream = FakeStream()
        self.streams.append(stream)
        return stream

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls["containers"] += 1
        self.filters["containers"] = filters
        return list(self.listing)

    def tasks(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls["tasks"] += 1
        self.filters["tasks"] = filters
        return list(self.tasks_answer)

    def services(self, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.calls["services"] += 1
        return list(self.services_answer)


class FakeClient:
    def __init__(self) -> None:
        self.api = FakeApi()


def event(
    action: str, container_id: str, kernel_id: str, service_id: str = "", **attributes: str
) -> dict[str, Any]:
    attrs = {KERNEL_ID_LABEL: kernel_id, "name": f"gp-{kernel_id}", **attributes}
    if service_id:
        attrs[SWARM_SERVICE_ID_LABEL] = service_id
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": container_id, "Attributes": attrs},
    }


def listed(container_id: str, kernel_id: str, state: str, status: str = "") -> dict[str, Any]:
    return {
        "Id": container_id,
        "Names": [f"/gp-{kernel_id}"],
        "Labels": {KERNEL_ID_LABEL: kernel_id},
        "State": state,
        "Status": status,
    }
