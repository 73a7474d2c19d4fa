"""The Kubernetes API request labels of gp_backend_api_requests_total stay bounded: verbs and
resource kinds, never namespaces or object names (which hold kernel ids and user names)."""

from __future__ import annotations

import pytest

from gp_k8s.api_metrics import api_operation


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("GET", "https://k:6443/api/v1/namespaces/alice-k1/pods/kernel-k1/log", "GET pods/log"),
        ("POST", "https://k:6443/api/v1/namespaces/alice-k1/pods", "POST pods"),
        ("DELETE", "https://k:6443/api/v1/namespaces/alice-k1", "DELETE namespaces"),
        ("GET", "https://k:6443/api/v1/pods?labelSelector=kernel-id&watch=true", "WATCH pods"),
        (
            "PATCH",
            "https://k:6443/apis/sparkoperator.k8s.io/v1beta2/namespaces/n/sparkapplications/k-9",
            "PATCH sparkapplications",
        ),
        ("GET", "https://k:6443/api/v1/namespaces/n/events?fieldSelector=x", "GET events"),
    ],
)
def test_labels_name_the_verb_and_kind_only(method: str, url: str, expected: str) -> None:
    assert api_operation(method, url) == expected
