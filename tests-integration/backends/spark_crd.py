"""The SparkApplication CRD (sparkoperator.k8s.io/v1beta2) as we install it in the test cluster.

A structural schema WE WROTE from the Spark operator's published API, holding only the fields
gp-crd and our operator emulator use (other fields are refused by pruning, as a real schema
would prune unknown ones).  Not the operator's own CRD.
"""

from __future__ import annotations

import time
from typing import Any

from kubernetes.client.exceptions import ApiException

from backends.k8s_cluster import ClusterUnavailable, raw

CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_STR: dict[str, Any] = {"type": "string"}
_INT: dict[str, Any] = {"type": "integer"}
_STR_MAP: dict[str, Any] = {"type": "object", "additionalProperties": _STR}
_FREE: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_ENV_VAR: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STR, "value": _STR, "valueFrom": _FREE},
}
_POD_SPEC: dict[str, Any] = {
    "type": "object",
    "properties": {
        "cores": {"type": "integer", "minimum": 1},
        "coreLimit": _STR,
        "memory": _STR,
        "gpu": {"type": "object", "properties": {"name": _STR, "quantity": _INT}},
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
        "serviceAccount": _STR,
        "terminationGracePeriodSeconds": _INT,
        "env": {"type": "array", "items": _ENV_VAR},
        "envSecretKeyRefs": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["name", "key"],
                "properties": {"name": _STR, "key": _STR},
            },
        },
        "securityContext": _FREE,
        "nodeSelector": _STR_MAP,
        "tolerations": {"type": "array", "items": _FREE},
        "coreRequest": _STR,
        "volumeMounts": {"type": "array", "items": _FREE},
        "affinity": _FREE,
        "priorityClassName": _STR,
        "runtimeClassName": _STR,
    },
}
SPARK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["type", "mode", "mainApplicationFile", "sparkVersion"],
            "properties": {
                "type": {"type": "string", "enum": ["Java", "Python", "Scala", "R"]},
                "pythonVersion": {"type": "string", "enum": ["2", "3"]},
                "mode": {"type": "string", "enum": ["cluster", "client"]},
                "image": _STR,
                "imagePullPolicy": _STR,
                "sparkVersion": _STR,
                "mainApplicationFile": _STR,
                "arguments": {"type": "array", "items": _STR},
                "sparkConf": _STR_MAP,
                "imagePullSecrets": {"type": "array", "items": _STR},
                "volumes": {"type": "array", "items": _FREE},
                "restartPolicy": {"type": "object", "properties": {"type": _STR}},
                "driver": _POD_SPEC,
                "executor": {
                    **_POD_SPEC,
                    "properties": {**_POD_SPEC["properties"], "instances": _INT},
                },
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "sparkApplicationId": _STR,
                "submissionID": _STR,
                "lastSubmissionAttemptTime": _STR,
                "terminationTime": _STR,
                "submissionAttempts": _INT,
                "driverInfo": {
                    "type": "object",
                    "properties": {"podName": _STR, "webUIServiceName": _STR},
                },
                "applicationState": {
                    "type": "object",
                    "properties": {"state": _STR, "errorMessage": _STR},
                },
            },
        },
    },
}


def crd(
    group: str,
    version: str,
    plural: str,
    kind: str,
    schema: dict[str, Any],
    short_names: list[str] | None = None,
) -> dict[str, Any]:
    """A namespaced CRD (apiextensions v1) with a status subresource."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{group}",
            # *.k8s.io groups are protected; the operator's own CRD carries this annotation.
            "annotations": (
                {
                    "api-approved.kubernetes.io": "https://github.com/kubeflow/spark-operator/pull/1298"
                }
                if group.endswith(".k8s.io")
                else {}
            ),
        },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {
                "plural": plural,
                "singular": kind.lower(),
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short_names or [],
            },
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }


SPARK_CRD = crd(
    "sparkoperator.k8s.io",
    "v1beta2",
    "sparkapplications",
    "SparkApplication",
    SPARK_SCHEMA,
    ["sparkapp"],
)


def install_crd(api_client: Any, definition: dict[str, Any], timeout: float = 30) -> None:
    """Create the CRD (kept if it exists) and wait until it is Established and served."""
    try:
        raw(api_client, "POST", CRD_PATH, definition)
    except ApiException as err:
        if err.status != 409:
            raise
    name = definition["metadata"]["name"]
    spec = definition["spec"]
    served = f"/apis/{spec['group']}/{spec['versions'][0]['name']}/{spec['names']['plural']}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = raw(api_client, "GET", f"{CRD_PATH}/{name}")
        conditions = (current.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
            try:
                raw(api_client, "GET", served)
                return
            except ApiException:
                pass
        time.sleep(0.2)
    raise ClusterUnavailable(f"CRD {name} not established after {timeout}s")
