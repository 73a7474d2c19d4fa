"""Pure-builder tests: KERNEL_* values (hostile ones included) change only the field they feed.

No cluster: ``resolve_parameters`` + ``build_pod`` are plain functions of data.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from gp_k8s.manifests import (
    KERNEL_ID_LABEL,
    USERNAME_ANNOTATION,
    PodRequest,
    build_namespace,
    build_pod,
    build_role_binding,
    dns_name,
    kernel_label_value,
)
from gp_k8s.parameters import PARAMETER_VARIABLES, Limits, resolve_parameters
from gp_provisioners_core.argv import travelling_env
from gp_provisioners_core.errors import InvalidLaunchParameterError

KERNEL_ID = "3f1c2a9e-8d7b-4c6a-9e5f-0123456789ab"
COMMAND = ["python3", "/opt/launch_ipykernel.py", "--kernel-id", KERNEL_ID]
HOSTILE = [
    "x\nkind: Secret\nmetadata:\n  name: stolen",
    "{{ kernel_id }}",
    "{kernel_id}",
    "a: b",
    "---\napiVersion: v1\nkind: Pod",
    "$(id) `id` ; rm -rf /",
    '", "privileged": true, "x": "',
    "0",
    "00",
    "-1",
    "1e9",
    "../../../etc/passwd",
    "/ok/path\nsecond: line",
    "key=value,other=v2:NoSchedule",
    "\u202egnp.exe",
]
TEMPLATE = yaml.safe_load(
    """
apiVersion: v1
kind: Pod
metadata:
  labels: {team: data}
  annotations: {owner: ops}
spec:
  priorityClassName: kernels
  containers:
    - name: kernel
      image: will-be-replaced
      env:
        - {name: FROM_TEMPLATE, value: kept}
      volumeMounts:
        - {name: scratch, mountPath: /scratch}
  volumes:
    - name: scratch
      emptyDir: {}
"""
)
PERMISSIVE = Limits(
    image="kernel:1",
    allowed_images=frozenset([*HOSTILE, "kernel:2"]),
    namespace="kernels",
    allowed_namespaces=frozenset([*HOSTILE, "other"]),
    service_account="default",
    allowed_service_accounts=frozenset([*HOSTILE, "reader"]),
    max_cpus=64,
    max_memory=64 * 1024**3,
    max_gpus=8,
    allowed_node_selector_keys=frozenset({"key", "zone"}),
    allowed_toleration_keys=frozenset({"key", "gpu"}),
)
STRICT = Limits(image="kernel:1", namespace="kernels")

# The manifest fields each variable feeds (besides its own env entry).
FIELDS: dict[str, tuple[str, ...]] = {
    "KERNEL_IMAGE": ("spec.containers.0.image",),
    "KERNEL_NAMESPACE": ("metadata.namespace",),
    "KERNEL_SERVICE_ACCOUNT_NAME": ("spec.serviceAccountName",),
    "KERNEL_UID": ("spec.securityContext", "spec.containers.0.securityContext"),
    "KERNEL_GID": ("spec.securityContext", "spec.containers.0.securityContext"),
    "KERNEL_CPUS": ("spec.containers.0.resources.requests.cpu",),
    "KERNEL_CPUS_LIMIT": ("spec.containers.0.resources.limits.cpu",),
    "KERNEL_MEMORY": ("spec.containers.0.resources.requests.memory",),
    "KERNEL_MEMORY_LIMIT": ("spec.containers.0.resources.limits.memory",),
    "KERNEL_GPUS": (
        "spec.containers.0.resources.requests.nvidia.com/gpu",
        "spec.containers.0.resources.limits.nvidia.com/gpu",
    ),
    "KERNEL_GPUS_LIMIT": ("spec.containers.0.resources.limits.nvidia.com/gpu",),
    "KERNEL_WORKING_DIR": ("spec.containers.0.workingDir",),
    "KERNEL_NODE_SELECTOR": ("spec.nodeSelector",),
    "KERNEL_TOLERATIONS": ("spec.tolerations",),
    "KERNEL_USERNAME": (f"metadata.annotations.{USERNAME_ANNOTATION}",),
    "KERNEL_EXTRA_SETTING": (),
    "KERNEL_LAUNCH_TIMEOUT": (),
}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf paths of a manifest; env lists are keyed by variable name."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        if prefix.endswith(".env"):
            return {
                f"{prefix}[{entry['name']}]": entry.get("value", entry.get("valueFrom"))
                for entry in value
            }
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}"))
        return out
    return {prefix: value}


def pod_for(env: dict[str, str], limits: Limits = PERMISSIVE) -> dict[str, Any]:
    parameters = resolve_parameters(env, limits, KERNEL_ID)
    return build_pod(
        PodRequest(
            kernel_id=KERNEL_ID,
            name=dns_name("kernel", KERNEL_ID, "abc123"),
            parameters=parameters,
            command=COMMAND,
            env=travelling_env(env),
            username=env.get("KERNEL_USERNAME", ""),
            secret_env={"GP_LAUNCH_SECRET": ("s-launch", "launch-secret")},
            template=TEMPLATE,
        )
    )


def outcome(env: dict[str, str], limits: Limits) -> dict[str, Any] | InvalidLaunchParameterError:
    """The pod, or the refusal."""
    try:
        return pod_for(env, limits)
    except InvalidLaunchParameterError as refused:
        return refused


def changed_paths(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    flat_before, flat_after = flatten(before), flatten(after)
    return {
        key
        for key in flat_before.keys() | flat_after.keys()
        if flat_before.get(key) != flat_after.get(key)
    }


BASE_ENV = {"KERNEL_USERNAME": "alice"}


@pytest.mark.parametrize("variable", sorted(FIELDS))
@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_value_changes_only_its_field_or_is_refused(variable: str, value: str) -> None:
    baseline = pod_for(BASE_ENV)
    pod = outcome(dict(BASE_ENV, **{variable: value}), PERMISSIVE)
    if isinstance(pod, InvalidLaunchParameterError):
        assert variable in str(pod)
        assert KERNEL_ID in str(pod)
        assert pod.status_code == 400
        return
    allowed = {f"spec.containers.0.env[{variable}]"}
    changed = changed_paths(baseline, pod)
    stray = {
        path for path in changed if path not in allowed and not path.startswith(FIELDS[variable])
    }
    assert not stray, f"{variable}={value!r} changed {sorted(stray)}"
    # the value stays one inert string where it lands
    env_entries = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env_entries[variable]["value"] == value
    assert pod["kind"] == "Pod"
    assert pod["metadata"]["name"] == baseline["metadata"]["name"]


@pytest.mark.parametrize("variable", [v for v in PARAMETER_VARIABLES if v != "KERNEL_WORKING_DIR"])
def test_strict_limits_refuse_every_hostile_value(variable: str) -> None:
    for value in HOSTILE:
        result = outcome(dict(BASE_ENV, **{variable: value}), STRICT)
        if isinstance(result, InvalidLaunchParameterError):
            assert variable in str(result)
            assert KERNEL_ID in str(result)
            continue
        # accepted only when it is a plain bounded number or the default itself
        assert variable in {
            "KERNEL_UID",
            "KERNEL_GID",
            "KERNEL_CPUS",
            "KERNEL_CPUS_LIMIT",
            "KERNEL_MEMORY",
            "KERNEL_MEMORY_LIMIT",
            "KERNEL_GPUS",
            "KERNEL_GPUS_LIMIT",
        }, (variable, value)


@pytest.mark.parametrize("uid", ["0", "00", "000", "+0", "0x0", " 0", "-0"])
def test_root_uid_is_refused_in_every_spelling(uid: str) -> None:
    with pytest.raises(InvalidLaunchParameterError) as refused:
        pod_for(dict(BASE_ENV, KERNEL_UID=uid), STRICT)
    assert "KERNEL_UID" in str(refused.value)
    assert repr(uid) in str(refused.value)
    assert KERNEL_ID in str(refused.value)


def test_root_allowed_only_when_the_operator_allows_it() -> None:
    limits = Limits(image="kernel:1", prohibited_uids=frozenset(), prohibited_gids=frozenset())
    pod = pod_for(dict(BASE_ENV, KERNEL_UID="00", KERNEL_GID="0"), limits)
    assert pod["spec"]["securityContext"]["runAsUser"] == 0
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is False


def test_uid_and_gid_are_numbers() -> None:
    pod = pod_for(dict(BASE_ENV, KERNEL_UID="01000", KERNEL_GID="100"), STRICT)
    security = pod["spec"]["securityContext"]
    assert security == {"runAsUser": 1000, "runAsNonRoot": True, "runAsGroup": 100, "fsGroup": 100}
    container = pod["spec"]["containers"][0]["securityContext"]
    assert container["runAsUser"] == 1000
    assert container["allowPrivilegeEscalation"] is False


def test_bounds_name_value_limit_and_kernel() -> None:
    with pytest.raises(InvalidLaunchParameterError) as refused:
        pod_for(dict(BASE_ENV, KERNEL_CPUS="5"), STRICT)
    message = str(refused.value)
    assert "KERNEL_CPUS='5'" in message
    assert "4" in message
    assert KERNEL_ID in message
    with pytest.raises(InvalidLaunchParameterError, match=r"KERNEL_MEMORY='17Gi'.*16Gi"):
        pod_for(dict(BASE_ENV, KERNEL_MEMORY="17Gi"), STRICT)
    with pytest.raises(InvalidLaunchParameterError, match=r"KERNEL_GPUS='1'.*from 0 to 0"):
        pod_for(dict(BASE_ENV, KERNEL_GPUS="1"), STRICT)
    with pytest.raises(InvalidLaunchParameterError, match=r"KERNEL_IMAGE='evil:1'.*kernel:1"):
        pod_for(dict(BASE_ENV, KERNEL_IMAGE="evil:1"), STRICT)
    with pytest.raises(InvalidLaunchParameterError, match="KERNEL_NAMESPACE='kube-system'"):
        pod_for(dict(BASE_ENV, KERNEL_NAMESPACE="kube-system"), STRICT)


@pytest.mark.parametrize("variable", ["KERNEL_UID", "KERNEL_GID", "KERNEL_GPUS"])
def test_thousands_of_digits_are_refused_not_a_server_error(variable: str) -> None:
    # Python refuses to convert more than 4300 digits: that must be a 400, not a ValueError.
    with pytest.raises(InvalidLaunchParameterError) as refused:
        pod_for(dict(BASE_ENV, **{variable: "9" * 5000}), PERMISSIVE)
    assert variable in str(refused.value)
    assert KERNEL_ID in str(refused.value)


def test_resources_are_canonical_quantities() -> None:
    pod = pod_for(
        dict(BASE_ENV, KERNEL_CPUS="500m", KERNEL_MEMORY="1.5Gi", KERNEL_GPUS="2"), PERMISSIVE
    )
    resources = pod["spec"]["containers"][0]["resources"]
    assert resources == {
        "requests": {"cpu": "500m", "memory": str(int(1.5 * 1024**3)), "nvidia.com/gpu": "2"},
        "limits": {"nvidia.com/gpu": "2"},
    }


def test_template_is_kept_and_ours_wins() -> None:
    pod = pod_for(BASE_ENV)
    assert pod["metadata"]["labels"]["team"] == "data"
    assert pod["metadata"]["labels"][KERNEL_ID_LABEL] == KERNEL_ID
    assert pod["metadata"]["annotations"]["owner"] == "ops"
    assert pod["spec"]["priorityClassName"] == "kernels"
    assert pod["spec"]["volumes"] == [{"name": "scratch", "emptyDir": {}}]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "kernel:1"
    assert container["command"] == COMMAND
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    env = {e["name"]: e for e in container["env"]}
    assert env["FROM_TEMPLATE"]["value"] == "kept"
    assert env["GP_LAUNCH_SECRET"] == {
        "name": "GP_LAUNCH_SECRET",
        "valueFrom": {"secretKeyRef": {"name": "s-launch", "key": "launch-secret"}},
    }
    assert env["GP_KERNEL_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert TEMPLATE["spec"]["containers"][0]["image"] == "will-be-replaced"  # not mutated


@pytest.mark.parametrize("image", ["kernel:1", "kernel:latest", "registry.example/kernel"])
def test_pull_policy_defaults_to_if_not_present(image: str) -> None:
    # Without a policy the API turns ":latest" (and no tag) into Always: a registry pull on
    # every launch.  The built pod always says IfNotPresent instead.
    limits = Limits(image=image, namespace="kernels")
    parameters = resolve_parameters({"KERNEL_USERNAME": "alice"}, limits, KERNEL_ID)
    pod = build_pod(PodRequest(KERNEL_ID, "p", parameters, COMMAND, {}))
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_the_templates_pull_policy_wins() -> None:
    template = copy.deepcopy(TEMPLATE)
    template["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    parameters = resolve_parameters(BASE_ENV, PERMISSIVE, KERNEL_ID)
    pod = build_pod(PodRequest(KERNEL_ID, "p", parameters, COMMAND, {}, template=template))
    assert pod["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_node_selector_and_tolerations() -> None:
    pod = pod_for(
        dict(BASE_ENV, KERNEL_NODE_SELECTOR="zone=a", KERNEL_TOLERATIONS="gpu=yes:NoSchedule,key")
    )
    assert pod["spec"]["nodeSelector"] == {"zone": "a"}
    assert pod["spec"]["tolerations"] == [
        {"key": "gpu", "operator": "Equal", "value": "yes", "effect": "NoSchedule"},
        {"key": "key", "operator": "Exists"},
    ]
    with pytest.raises(InvalidLaunchParameterError, match="KERNEL_NODE_SELECTOR"):
        pod_for(dict(BASE_ENV, KERNEL_NODE_SELECTOR="kubernetes.io/hostname=x"))


def test_names_and_labels_for_odd_kernel_ids() -> None:
    odd = "Kernel_ID.with.UPPER_" + "x" * 100
    name = dns_name("kernel", odd, "abc123")
    assert len(name) <= 63
    assert name.startswith("kernel-")
    assert name.endswith("-abc123")
    assert name == name.lower()
    label = kernel_label_value(odd)
    assert label != odd
    assert len(label) <= 63
    assert kernel_label_value(KERNEL_ID) == KERNEL_ID


def test_namespace_and_role_binding() -> None:
    namespace = build_namespace("gp-kernel-x", KERNEL_ID)
    assert namespace["metadata"]["labels"][KERNEL_ID_LABEL] == KERNEL_ID
    binding = build_role_binding("gp-kernel-x", KERNEL_ID, "default", "kernel-controller")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "default", "namespace": "gp-kernel-x"}
    ]
    assert binding["roleRef"]["name"] == "kernel-controller"


def test_builders_do_not_share_state() -> None:
    first = pod_for(BASE_ENV)
    snapshot = copy.deepcopy(first)
    pod_for(dict(BASE_ENV, KERNEL_WORKING_DIR="/tmp"))
    assert first == snapshot
