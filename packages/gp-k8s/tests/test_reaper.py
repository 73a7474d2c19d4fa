"""The reaper sees deleted objects through: from a cache, from the API, deleting again."""

from __future__ import annotations

import threading

import pytest
from kubernetes.client.exceptions import ApiException

from gp_k8s import reaper as reaper_module
from gp_k8s.reaper import Deletion, Reaper


def test_an_object_is_done_when_the_cache_sees_it_go() -> None:
    reaper = Reaper()
    gone = threading.Event()
    forgotten: list[str] = []
    reaper.track(
        Deletion(
            "k1",
            "pod",
            "pod ns/a",
            gone=gone.is_set,
            confirm=lambda: pytest.fail("the cache answers"),
            retry=lambda: None,
            timeout=30,
            on_gone=lambda: forgotten.append("a"),
        )
    )
    assert reaper.pending("k1") == ["pod ns/a"]
    assert reaper.pending("k2") == []
    assert reaper.drain(0.3) == ["pod ns/a"]
    gone.set()
    assert reaper.drain(5) == []
    assert forgotten == ["a"]


def test_the_api_answers_when_the_cache_cannot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reaper_module, "API_CHECK_INTERVAL", 0.05)
    reaper = Reaper()
    answers = iter([False, False, True])
    reaper.track(
        Deletion(
            "k1", "namespace", "namespace n", lambda: None, lambda: next(answers), lambda: None, 30
        )
    )
    assert reaper.drain(5) == []


def test_an_object_that_outlives_its_timeout_is_deleted_again_then_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(reaper_module, "MAX_ROUNDS", 2)
    reaper = Reaper()
    retries: list[int] = []
    reaper.track(
        Deletion(
            "k1", "pod", "pod ns/b", lambda: False, lambda: False, lambda: retries.append(1), 0.1
        )
    )
    assert reaper.drain(5) == []
    assert len(retries) == 2
    assert reaper.abandoned == ["pod ns/b"]


async def test_settled_waits_for_one_kind_of_one_kernel() -> None:
    reaper = Reaper()
    gone = threading.Event()
    reaper.track(
        Deletion("k1", "namespace", "namespace n", gone.is_set, lambda: False, lambda: None, 30)
    )
    pod_gone = threading.Event()
    reaper.track(Deletion("k1", "pod", "pod n/p", pod_gone.is_set, lambda: False, lambda: None, 30))
    assert not await reaper.settled("k1", 0.2, kind="namespace")
    assert await reaper.settled("k2", 0.2)
    gone.set()
    assert await reaper.settled("k1", 5, kind="namespace")
    assert reaper.pending("k1") == ["pod n/p"]
    pod_gone.set()
    assert reaper.drain(5) == []


def test_a_deletion_the_server_may_no_longer_check_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """After ``helm uninstall`` removed the server's RBAC, confirming a kernel namespace's
    deletion answers 403 forever: the reaper stops waiting at once (a server stopping would
    otherwise wait its whole exit drain) and says why."""
    monkeypatch.setattr(reaper_module, "API_CHECK_INTERVAL", 0.05)
    reaper = Reaper()

    def forbidden() -> bool:
        raise ApiException(status=403, reason="Forbidden")

    reaper.track(
        Deletion("k1", "namespace", "namespace kernel-1", lambda: None, forbidden, lambda: None, 30)
    )
    assert reaper.drain(5) == []
    assert reaper.abandoned == ["namespace kernel-1"]
    assert "cannot confirm the deletion of namespace kernel-1 (HTTP 403" in caplog.text
