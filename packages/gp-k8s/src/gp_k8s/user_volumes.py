"""The user's own PersistentVolumeClaim: created once when the operator asks for it, and kept.

Called by the provisioner's ``submit_kernel`` after the kernel's namespace is known and before
its pod is created.  The claim's name is :func:`gp_k8s.pod_options.user_claim_name` of the
kernel's user (already validated in ``pre_launch``); the claim is not labelled as a kernel's
object, so no kernel's clean-up or orphan sweep deletes a user's data.
"""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from . import operations as ops
from .client import path, request
from .parameters import KernelParameters
from .pod_options import OptionLimits, build_user_claim


def create_claim_if_missing(api_client: k8s.ApiClient, claim: dict[str, object]) -> bool:
    """Create ``claim`` unless one of its name exists; True when created (blocking)."""
    metadata = claim["metadata"]
    assert isinstance(metadata, dict)
    namespace, name = str(metadata["namespace"]), str(metadata["name"])
    try:
        request(
            api_client,
            "GET",
            path("/api/v1/namespaces/{}/persistentvolumeclaims/{}", namespace, name),
        )
        return False
    except ApiException as err:
        if err.status != 404:
            raise
    try:
        request(
            api_client,
            "POST",
            path("/api/v1/namespaces/{}/persistentvolumeclaims", namespace),
            body=claim,
        )
    except ApiException as err:
        if err.status != 409:  # another kernel of the same user made it first
            raise
        return False
    return True


async def ensure_user_claim(
    api_client: k8s.ApiClient, parameters: KernelParameters, limits: OptionLimits, username: str
) -> None:
    """With ``create_user_volume_claim``, create the kernel's user claim when missing.
    ``ApiException`` goes through (the launch fails naming the refusal)."""
    claim = limits.user_volume_claim
    name = parameters.options.user_claim
    if not (claim.create and name):
        return
    body = build_user_claim(name, parameters.namespace, username, claim)
    await ops.run_blocking(create_claim_if_missing, api_client, body)
