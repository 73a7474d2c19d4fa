"""The shared pod watch against the real kube-apiserver: resume on resourceVersion, re-list
on 410 Gone, one cache for every kernel.  Pods run through OUR NODE AGENT, NOT A KUBELET."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from backends.k8s_cluster import (
    K8sCluster,
    ensure_namespace,
    raw,
)

from gp_k8s.client import CountingApiClient, get_api_client
from gp_k8s.manifests import kernel_labels
from gp_k8s.pod_cache import PodWatchCache

NAMESPACE = "gp-watch"


def wait_for(predicate: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def pod_body(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": kernel_labels(name)},
        "spec": {
            "restartPolicy": "Never",
            # not in the node agent's image list: it stays Pending with ErrImagePull
            "containers": [{"name": "kernel", "image": "gp-test/absent:1", "command": ["true"]}],
        },
    }


@pytest.fixture
def api(k8s_cluster: K8sCluster) -> CountingApiClient:
    ensure_namespace(k8s_cluster.api_client(), NAMESPACE)
    return get_api_client(str(k8s_cluster.admin_kubeconfig))


def create(api: CountingApiClient, name: str) -> None:
    raw(api, "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod_body(name))


def delete(api: CountingApiClient, name: str) -> None:
    raw(
        api,
        "DELETE",
        f"/api/v1/namespaces/{NAMESPACE}/pods/{name}",
        {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0},
    )


def test_watch_resumes_and_relists_after_gone(
    api: CountingApiClient, k8s_cluster: K8sCluster
) -> None:
    cluster = k8s_cluster
    cache = PodWatchCache(api, NAMESPACE)
    cache.start()
    try:
        assert cache.synced.wait(15)
        first_version = cache.resource_version
        create(api, "watch-a")
        assert wait_for(lambda: cache.get(NAMESPACE, "watch-a") is not None)
        assert cache.lists == 1

        # A dropped connection resumes from the last resourceVersion: no new list.
        watches = cache.watches
        cache.reconnect()
        create(api, "watch-b")
        assert wait_for(lambda: cache.get(NAMESPACE, "watch-b") is not None)
        assert cache.watches > watches
        assert cache.lists == 1

        # The API server restarts (an upgrade) while the watch is away for longer than the
        # server's watch window: the resumed watch gets 410 Gone and the cache lists again.
        if not any(c.name == "kube-apiserver" for c in cluster.components):
            pytest.skip("this cluster was started by another process: cannot restart it")
        argv = cluster.stop_apiserver()
        cache.resource_version = first_version  # what it held before watch-a and watch-b
        cluster.start_apiserver(argv)
        assert wait_for(lambda: cache.relists_after_gone >= 1, timeout=60)
        assert wait_for(lambda: cache.lists >= 2, timeout=30)
        delete(api, "watch-a")
        assert wait_for(lambda: cache.get(NAMESPACE, "watch-a") is None)
        assert cache.get(NAMESPACE, "watch-b") is not None
        assert cache.has_seen(NAMESPACE, "watch-a")
    finally:
        cache.stop()
        for name in ("watch-a", "watch-b"):
            try:
                delete(api, name)
            except Exception:
                pass


def test_one_shared_cache_per_scope(api: CountingApiClient) -> None:
    first = PodWatchCache.shared(api, NAMESPACE)
    assert PodWatchCache.shared(api, NAMESPACE) is first
    assert PodWatchCache.shared(api, "") is not first
