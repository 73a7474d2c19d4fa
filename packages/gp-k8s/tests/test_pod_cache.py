"""The shared pod cache's bookkeeping, fed watch events by hand (no cluster, no thread)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import ApiClient

from gp_k8s.event_cache import PodEventWatchCache
from gp_k8s.pod_cache import PodWatchCache


def event(kind: str, name: str, rv: str, **status: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "object": {
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv},
            "status": status,
        },
    }


def test_events_update_the_cache_and_the_resource_version() -> None:
    cache = PodWatchCache(api_client=ApiClient(), namespace="ns")
    assert cache.apply(event("ADDED", "a", "10", phase="Pending"))
    assert cache.get("ns", "a") is not None
    assert cache.resource_version == "10"
    version = cache.version
    assert cache.apply(event("MODIFIED", "a", "11", phase="Running"))
    state = cache.get("ns", "a")
    assert state is not None
    assert state.phase == "Running"
    assert cache.version > version
    assert cache.apply({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}})
    assert cache.resource_version == "15"
    assert cache.apply(event("DELETED", "a", "16"))
    assert cache.get("ns", "a") is None
    assert cache.has_seen("ns", "a")
    cache.forget("ns", "a")
    assert not cache.has_seen("ns", "a")


def test_gone_clears_the_resource_version_for_a_new_list() -> None:
    cache = PodWatchCache(api_client=ApiClient(), namespace="ns")
    cache.resource_version = "5"
    assert not cache.apply({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    assert cache.resource_version == ""
    assert cache.relists_after_gone == 1
    with pytest.raises(RuntimeError, match="forbidden"):
        cache.apply({"type": "ERROR", "object": {"code": 403, "message": "forbidden"}})


def test_the_event_cache_selects_pod_warnings_by_field_and_keys_them_by_pod() -> None:
    cache = PodEventWatchCache(api_client=ApiClient(), namespace="ns")
    assert cache.selector_query() == {"fieldSelector": "involvedObject.kind=Pod,type=Warning"}
    assert cache.collection_path() == "/api/v1/namespaces/ns/events"

    def warning(name: str, pod: str, uid: str, when: str) -> dict[str, Any]:
        return {
            "type": "ADDED",
            "object": {
                "metadata": {"name": name, "namespace": "ns", "resourceVersion": "1"},
                "involvedObject": {"kind": "Pod", "name": pod, "uid": uid},
                "type": "Warning",
                "reason": "FailedMount",
                "message": name,
                "series": {"count": 3, "lastObservedTime": when},
            },
        }

    cache.apply(warning("late", "a", "u2", "2026-01-01T00:00:09Z"))
    cache.apply(warning("early", "a", "u2", "2026-01-01T00:00:01Z"))
    cache.apply(warning("older-pod", "a", "u1", "2026-01-01T00:00:00Z"))
    cache.apply(warning("other", "b", "u3", "2026-01-01T00:00:00Z"))
    found = cache.warnings_for("ns", "a", "u2")
    assert [e.message for e in found] == ["early", "late"]
    assert found[0].count == 3
    assert found[0].as_event()["reason"] == "FailedMount"
    assert len(cache.warnings_for("ns", "a")) == 3
