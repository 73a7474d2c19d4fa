"""gp-crd's shipped RBAC (packages/gp-crd/deploy/rbac-spark-operator.yaml) against the real
kube-apiserver: a server-side dry run of every document, then, applied for real,
SubjectAccessReviews showing least privilege: the host application's service account may do
exactly what SparkOperatorProvisioner does, in the kernels' namespace only.  (The Spark-operator
conformance suite runs the provisioner as this account.)"""

from __future__ import annotations

from typing import Any

import pytest
from backends.crd_fixtures import CRD_RBAC, SPARK_GROUP
from backends.k8s_cluster import (
    K8sCluster,
    apply_manifests,
    can,
    ensure_namespace,
    load_manifests,
    raw,
    wait_until_allowed,
)

APPS = {"resource": "sparkapplications", "group": SPARK_GROUP}


def test_server_side_dry_run(k8s_cluster: K8sCluster) -> None:
    api = k8s_cluster.api_client()
    ensure_namespace(api, "crd-dry-srv")
    ensure_namespace(api, "crd-dry-kern")
    docs = load_manifests(CRD_RBAC, {"jupyter": "crd-dry-srv", "kernels": "crd-dry-kern"})
    assert [d["kind"] for d in docs] == ["ServiceAccount", "Role", "RoleBinding"]
    answers = apply_manifests(api, docs, dry_run=True)
    assert [a["kind"] for a in answers] == [d["kind"] for d in docs]
    role = next(a for a in answers if a["kind"] == "Role")
    granted = {(rule["apiGroups"][0], r) for rule in role["rules"] for r in rule["resources"]}
    assert (SPARK_GROUP, "sparkapplications") in granted
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as missing:  # a dry run persists nothing
        raw(api, "GET", "/api/v1/namespaces/crd-dry-srv/serviceaccounts/gateway-provisioners")
    assert missing.value.status == 404


def test_role_is_least_privilege(k8s_cluster: K8sCluster) -> None:
    api = k8s_cluster.api_client()
    ensure_namespace(api, "crd-lp-srv")
    ensure_namespace(api, "crd-lp-kern")
    apply_manifests(
        api, load_manifests(CRD_RBAC, {"jupyter": "crd-lp-srv", "kernels": "crd-lp-kern"})
    )
    user = "system:serviceaccount:crd-lp-srv:gateway-provisioners"

    def allowed(verb: str, resource: str, namespace: str = "crd-lp-kern", **extra: Any) -> bool:
        return can(api, user, verb, resource, namespace, **extra)

    wait_until_allowed(api, user, "create", "sparkapplications", "crd-lp-kern", group=SPARK_GROUP)
    for verb in ("create", "delete", "list", "watch"):
        assert allowed(verb, **APPS), verb
    for verb in ("list", "watch", "delete"):
        assert allowed(verb, "pods"), verb
    assert allowed("create", "secrets")
    assert allowed("delete", "secrets")
    # nothing more: no edits, no reading secrets, no pods of its own, no other namespace
    assert not allowed("update", **APPS)
    assert not allowed("patch", **APPS)
    assert not allowed("update", "sparkapplications/status", group=SPARK_GROUP)
    assert not allowed("create", "scheduledsparkapplications", group=SPARK_GROUP)
    assert not allowed("get", "secrets")
    assert not allowed("list", "secrets")
    assert not allowed("create", "pods")
    assert not allowed("create", "pods/exec")
    assert not allowed("create", "sparkapplications", "default", group=SPARK_GROUP)
    assert not allowed("list", "sparkapplications", "", group=SPARK_GROUP)
    assert not allowed("list", "pods", "")
