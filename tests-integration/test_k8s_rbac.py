"""The shipped RBAC manifests (packages/gp-k8s/deploy) against the real kube-apiserver.

Server-side dry run of every document, then, applied for real, SubjectAccessReviews showing
least privilege: the host application's service account may do exactly what gp-k8s does, in
the kernels' namespace only.  (The conformance suite runs the provisioner as these accounts.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from backends.k8s_cluster import (
    K8sCluster,
    apply_manifests,
    can,
    ensure_namespace,
    load_manifests,
    raw,
    wait_until_allowed,
)

DEPLOY = Path(__file__).resolve().parents[1] / "packages" / "gp-k8s" / "deploy"
MANIFESTS = ("rbac-shared-namespace.yaml", "rbac-namespace-per-kernel.yaml")


def allowed(
    api: Any, user: str, verb: str, resource: str, namespace: str = "", **extra: str
) -> bool:
    return can(api, user, verb, resource, namespace, **extra)


def settle(api: Any, user: str, *check: str) -> None:
    wait_until_allowed(api, user, *check)


@pytest.mark.parametrize("manifest", MANIFESTS)
def test_server_side_dry_run(k8s_cluster: K8sCluster, manifest: str) -> None:
    api = k8s_cluster.api_client()
    suffix = "dry-" + manifest.split(".")[0].removeprefix("rbac-")
    server, kernels = f"{suffix}-srv"[:63], f"{suffix}-kern"[:63]
    ensure_namespace(api, server)
    ensure_namespace(api, kernels)
    docs = load_manifests(
        DEPLOY / manifest, {"jupyter": server, "kernels": kernels}, cluster_suffix=f"-{server}"
    )
    assert {d["kind"] for d in docs} >= {"ServiceAccount"}
    answers = apply_manifests(api, docs, dry_run=True)
    assert [a["kind"] for a in answers] == [d["kind"] for d in docs]
    # a dry run persists nothing
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as missing:
        raw(api, "GET", f"/api/v1/namespaces/{server}/serviceaccounts/gateway-provisioners")
    assert missing.value.status == 404


def test_shared_namespace_role_is_least_privilege(k8s_cluster: K8sCluster) -> None:
    api = k8s_cluster.api_client()
    ensure_namespace(api, "lp-srv")
    ensure_namespace(api, "lp-kern")
    docs = load_manifests(
        DEPLOY / "rbac-shared-namespace.yaml", {"jupyter": "lp-srv", "kernels": "lp-kern"}
    )
    apply_manifests(api, docs)
    user = "system:serviceaccount:lp-srv:gateway-provisioners"
    settle(api, user, "create", "pods", "lp-kern")
    for verb in ("create", "delete", "get", "list", "watch"):
        assert allowed(api, user, verb, "pods", "lp-kern"), verb
    assert allowed(api, user, "create", "secrets", "lp-kern")
    assert allowed(api, user, "delete", "secrets", "lp-kern")
    assert allowed(api, user, "list", "events", "lp-kern")
    assert allowed(api, user, "watch", "events", "lp-kern")
    # nothing more
    assert not allowed(api, user, "get", "secrets", "lp-kern")
    assert not allowed(api, user, "list", "secrets", "lp-kern")
    assert not allowed(api, user, "update", "pods", "lp-kern")
    assert not allowed(api, user, "create", "pods/exec", "lp-kern")
    assert not allowed(api, user, "create", "pods", "default")
    assert not allowed(api, user, "list", "pods", "")
    assert not allowed(api, user, "create", "namespaces", "")


def test_namespace_per_kernel_role_is_least_privilege(k8s_cluster: K8sCluster) -> None:
    api = k8s_cluster.api_client()
    ensure_namespace(api, "lpn-srv")
    docs = load_manifests(
        DEPLOY / "rbac-namespace-per-kernel.yaml", {"jupyter": "lpn-srv"}, cluster_suffix="-lpn"
    )
    apply_manifests(api, docs)
    user = "system:serviceaccount:lpn-srv:gateway-provisioners"
    settle(api, user, "list", "pods", "")
    assert allowed(api, user, "list", "pods", "")
    assert allowed(api, user, "watch", "pods", "")
    assert allowed(api, user, "watch", "events", "")  # the shared pod warning-event watch
    assert allowed(api, user, "create", "namespaces", "")
    assert allowed(api, user, "delete", "namespaces", "")
    assert allowed(api, user, "create", "rolebindings", "any", group="rbac.authorization.k8s.io")
    assert allowed(
        api,
        user,
        "bind",
        "clusterroles",
        "",
        group="rbac.authorization.k8s.io",
        name="kernel-controller",
    )
    assert not allowed(
        api,
        user,
        "bind",
        "clusterroles",
        "",
        group="rbac.authorization.k8s.io",
        name="cluster-admin",
    )
    assert not allowed(api, user, "get", "secrets", "kube-system")
    assert not allowed(api, user, "update", "namespaces", "")
    assert not allowed(
        api, user, "create", "clusterrolebindings", "", group="rbac.authorization.k8s.io"
    )
