"""The pod customisations: user names become claim names as data, the schema lists the
allowed values, and the builder keeps the template's own entries."""

from __future__ import annotations

import re

import pytest

from gp_k8s.manifests import PodRequest, build_pod
from gp_k8s.parameters import Limits, parameter_schema, resolve_parameters
from gp_k8s.pod_options import (
    OptionLimits,
    UserVolumeClaim,
    check_claim_pattern,
    safe_username,
    user_claim_name,
)
from gp_provisioners_core.errors import InvalidLaunchParameterError

KERNEL_ID = "k-1"
OPTIONS = OptionLimits(
    allowed_image_pull_secrets=frozenset({"regcred"}),
    allowed_priority_classes=frozenset({"batch"}),
    allowed_volumes={"data": {"persistentVolumeClaim": {"claimName": "data-{username}"}}},
    user_volume_claim=UserVolumeClaim(name="home-{username}", mount_path="/home/jovyan"),
)
LIMITS = Limits(image="kernel:1", options=OPTIONS)


@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", "alice"), ("Alice", "alice-3bc51062"), ("a.b@example.com", "a-b-example-com-")],
)
def test_user_names_become_dns_names(user: str, expected: str) -> None:
    assert safe_username(user).startswith(expected)
    assert check_claim_pattern(f"home-{safe_username(user)}")


def test_hostile_user_name_stays_one_name() -> None:
    name = user_claim_name("home-{username}", "x\n---\nkind: Secret {{ a }}")
    assert re.fullmatch(r"home-x-+kind-secret-a-[0-9a-f]{8}", name), name


def test_user_volumes_carry_the_users_names_as_data() -> None:
    env = {"KERNEL_USERNAME": "Bob", "KERNEL_VOLUMES": "data=/data:ro"}
    parameters = resolve_parameters(env, LIMITS, KERNEL_ID)
    template = {"spec": {"volumes": [{"name": "keep", "emptyDir": {}}]}}
    pod = build_pod(
        PodRequest(KERNEL_ID, "kernel-k-1", parameters, ["python"], {}, template=template)
    )
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    bob = safe_username("Bob")
    assert volumes["user-volume"]["persistentVolumeClaim"]["claimName"] == f"home-{bob}"
    assert volumes["v-data"]["persistentVolumeClaim"]["claimName"] == f"data-{bob}"
    assert "keep" in volumes
    mounts = pod["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "v-data", "mountPath": "/data", "readOnly": True} in mounts


def test_schema_lists_what_clients_may_choose() -> None:
    properties = parameter_schema(LIMITS)["properties"]
    assert properties["KERNEL_PRIORITY_CLASS_NAME"]["enum"] == ["batch"]
    assert "regcred" in properties["KERNEL_IMAGE_PULL_SECRETS"]["description"]
    assert "data" in properties["KERNEL_VOLUMES"]["description"]


def test_bad_claim_pattern_is_refused() -> None:
    with pytest.raises(ValueError, match="claim name"):
        check_claim_pattern("Home_{username}")


def test_refusal_names_variable_value_and_allowed() -> None:
    with pytest.raises(InvalidLaunchParameterError) as refused:
        resolve_parameters({"KERNEL_PRIORITY_CLASS_NAME": "critical"}, LIMITS, KERNEL_ID)
    text = str(refused.value)
    assert "KERNEL_PRIORITY_CLASS_NAME='critical'" in text
    assert "batch" in text
    assert KERNEL_ID in text
