"""The blocking Kubernetes calls a kernel needs, each a small function of plain arguments.

The provisioner runs them on :func:`run_blocking`'s worker threads, never on the event loop.
Each sends and returns plain data (dicts) or raises ``ApiException``; "already gone" (404) on
delete and "already there" (409) on create of an object this kernel owns count as success.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from gp_provisioners_core import blocking

from .client import path, request
from .diagnosis import kernel_stopped
from .pod_cache import pod_state

T = TypeVar("T")
API_POOL = "gp-k8s-api"


async def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` on the gp-k8s worker threads (the core's pool ``gp-k8s-api``,
    see ``gp_provisioners_core.blocking``), raising ``KubernetesUnreachableError`` when the
    API cannot be reached."""
    try:
        return await blocking.run_blocking(API_POOL, function, *args)
    except (Urllib3Error, OSError) as err:
        raise KubernetesUnreachableError.about(function, args, err) from err


class KubernetesUnreachableError(ConnectionError):
    """The Kubernetes API server could not be reached (connection refused, DNS, TLS, retries
    exhausted): one clear message naming the API address and what to check, instead of
    urllib3's ``MaxRetryError`` with its connection-pool internals."""

    @classmethod
    def about(cls, function: Callable[..., Any], args: tuple[Any, ...], err: BaseException) -> Any:
        configuration = getattr(args[0], "configuration", None) if args else None
        host = getattr(configuration, "host", "") or "(unknown address)"
        reason = getattr(err, "reason", None) or err
        step = getattr(function, "__name__", "a call")
        return cls(
            f"The Kubernetes API at {host} is unreachable ({step}: "
            f"{type(reason).__name__}: {str(reason)[:200]}). Check the server's kubeconfig or "
            "in-cluster service account, and that the API server is up and reachable from here."
        )


def api_message(err: ApiException) -> str:
    """The API server's own message of a failed call."""
    try:
        body = json.loads(err.body or "{}")
    except ValueError:
        body = {}
    return str(body.get("message") or err.reason or err)


def create_pod(
    api_client: k8s.ApiClient, pod: Mapping[str, Any], wait_for_service_account: float = 20.0
) -> dict[str, Any]:
    """Create ``pod``; retry while its (new) namespace's service account does not exist yet."""
    namespace = pod["metadata"]["namespace"]
    deadline = time.monotonic() + wait_for_service_account
    while True:
        try:
            created: dict[str, Any] = request(
                api_client, "POST", path("/api/v1/namespaces/{}/pods", namespace), body=pod
            )
            return created
        except ApiException as err:
            message = api_message(err).lower()
            retry = err.status in (403, 500) and (
                "service account" in message or "serviceaccount" in message
            )
            if not retry or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def delete_pod(api_client: k8s.ApiClient, namespace: str, name: str, grace: int) -> bool:
    """Delete a pod with ``grace`` seconds to stop; False when it was already gone."""
    try:
        request(
            api_client,
            "DELETE",
            path("/api/v1/namespaces/{}/pods/{}", namespace, name),
            body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": grace},
        )
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def pod_exists(api_client: k8s.ApiClient, namespace: str, name: str) -> bool:
    try:
        request(api_client, "GET", path("/api/v1/namespaces/{}/pods/{}", namespace, name))
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def pod_stopped(api_client: k8s.ApiClient, namespace: str, name: str) -> bool:
    """Whether the pod's kernel container does not run (the pod is gone, its container
    terminated or never started); one GET, for when the shared watch cannot answer."""
    try:
        pod = request(api_client, "GET", path("/api/v1/namespaces/{}/pods/{}", namespace, name))
    except ApiException as err:
        if err.status == 404:
            return True
        raise
    return kernel_stopped(pod_state(pod))


def create_secret(api_client: k8s.ApiClient, secret: Mapping[str, Any]) -> None:
    """Create the launch's Secret (its name is new for every launch)."""
    namespace = secret["metadata"]["namespace"]
    request(api_client, "POST", path("/api/v1/namespaces/{}/secrets", namespace), body=secret)


def delete_secret(api_client: k8s.ApiClient, namespace: str, name: str) -> None:
    try:
        request(api_client, "DELETE", path("/api/v1/namespaces/{}/secrets/{}", namespace, name))
    except ApiException as err:
        if err.status != 404:
            raise


def create_namespace(
    api_client: k8s.ApiClient, namespace: Mapping[str, Any], role_binding: Mapping[str, Any]
) -> bool:
    """Create the kernel's namespace and its RoleBinding.

    Returns whether the namespace belongs to this kernel: created now, or created for it
    before (a restarted kernel's new provisioner finds it with the kernel's label); False for
    a namespace that exists for another reason, which is then never deleted.
    """
    name = namespace["metadata"]["name"]
    try:
        request(api_client, "POST", "/api/v1/namespaces", body=namespace)
        owned = True
    except ApiException as err:
        if err.status != 409:
            raise
        existing = request(api_client, "GET", path("/api/v1/namespaces/{}", name))
        labels = existing.get("metadata", {}).get("labels") or {}
        owned = labels == {**labels, **namespace["metadata"]["labels"]}
    try:
        request(
            api_client,
            "POST",
            path("/apis/rbac.authorization.k8s.io/v1/namespaces/{}/rolebindings", name),
            body=role_binding,
        )
    except ApiException as err:
        if err.status != 409:
            raise
    return owned


def delete_namespace(api_client: k8s.ApiClient, name: str) -> None:
    try:
        request(api_client, "DELETE", path("/api/v1/namespaces/{}", name))
    except ApiException as err:
        if err.status != 404:
            raise


def namespace_exists(api_client: k8s.ApiClient, name: str) -> bool:
    try:
        request(api_client, "GET", path("/api/v1/namespaces/{}", name))
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


def pod_events(api_client: k8s.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Events about one pod, oldest first (one request; used only when a launch fails)."""
    body = request(
        api_client,
        "GET",
        path("/api/v1/namespaces/{}/events", namespace),
        query={"fieldSelector": f"involvedObject.kind=Pod,involvedObject.name={name}"},
    )
    items = list(body.get("items") or [])
    items.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return items
