"""The custom-resource watch cache applies list and watch events without a cluster."""

from __future__ import annotations

from typing import Any

import pytest

from gp_crd.object_cache import ObjectWatchCache, object_state


def app(name: str, state: str = "", rv: str = "1", **status: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"u-{name}",
            "resourceVersion": rv,
            "labels": {"kernel-id": name},
        },
        "status": dict(status),
    }
    if state:
        body["status"]["applicationState"] = {"state": state, "errorMessage": "boom"}
    return body


def test_object_state_reads_the_operator_status() -> None:
    state = object_state(app("k1", "SUBMISSION_FAILED", driverInfo={"podName": "k1-driver"}))
    assert state.state == "SUBMISSION_FAILED"
    assert state.error_message == "boom"
    assert state.driver_pod == "k1-driver"
    assert state.kernel_label == "k1"
    assert object_state({}).state == ""


def test_watch_events_update_the_cache() -> None:
    cache = ObjectWatchCache(object(), "g", "v1", "things", "ns")  # type: ignore[arg-type]
    assert cache.collection_path() == "/apis/g/v1/namespaces/ns/things"
    assert cache.apply({"type": "ADDED", "object": app("k1", rv="5")})
    assert cache.get("ns", "k1") is not None
    assert cache.resource_version == "5"
    assert cache.apply({"type": "MODIFIED", "object": app("k1", "RUNNING", rv="6")})
    state = cache.get("ns", "k1")
    assert state is not None
    assert state.state == "RUNNING"
    assert cache.apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}})
    assert cache.resource_version == "9"
    assert cache.apply({"type": "DELETED", "object": app("k1", rv="10")})
    assert cache.get("ns", "k1") is None
    assert cache.has_seen("ns", "k1")
    cache.forget("ns", "k1")
    assert not cache.has_seen("ns", "k1")


def test_gone_and_errors() -> None:
    cache = ObjectWatchCache(object(), "g", "v1", "things")  # type: ignore[arg-type]
    assert cache.collection_path() == "/apis/g/v1/things"
    cache.resource_version = "3"
    assert not cache.apply({"type": "ERROR", "object": {"code": 410}})
    assert cache.resource_version == ""
    with pytest.raises(RuntimeError, match="watch error"):
        cache.apply({"type": "ERROR", "object": {"code": 500, "message": "bad"}})
