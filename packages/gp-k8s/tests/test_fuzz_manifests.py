"""Fuzzing (Hypothesis) of the pod builder and the request parameters it is built from: any
KERNEL_* values give a 400 (InvalidLaunchParameterError) or a pod whose values are data."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gp_k8s.manifests import PodRequest, build_pod, dns_name
from gp_k8s.parameters import PARAMETER_VARIABLES, Limits, resolve_parameters
from gp_provisioners_core.argv import travelling_env
from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.testing.fuzz import count_case

KERNEL_ID = "3f1c2a9e-8d7b-4c6a-9e5f-0123456789ab"
LIMITS = Limits(
    image="kernel:1",
    allowed_images=frozenset(["kernel:2"]),
    allowed_namespaces=frozenset(["other"]),
    max_cpus=8,
    max_gpus=2,
    allowed_node_selector_keys=frozenset(["zone"]),
    allowed_toleration_keys=frozenset(["gpu"]),
)
values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["0", "00", "1000", "-1", "1e3", "nan", "2Gi", "1.5", "kernel:2", "other"]),
    st.sampled_from(["zone=a", "gpu:NoSchedule", "x\nkind: Secret", "{{ kernel_id }}", "\u0661"]),
)
requests = st.dictionaries(st.sampled_from(sorted(PARAMETER_VARIABLES)), values, max_size=8)
extra = st.dictionaries(st.from_regex(r"KERNEL_[A-Z]{1,8}", fullmatch=True), st.text(max_size=30))


@given(request=requests, other=extra)
def test_pod_builder_takes_any_request(request: dict[str, str], other: dict[str, str]) -> None:
    count_case("pod")
    env = {**other, **request, "KERNEL_USERNAME": "alice"}
    try:
        parameters = resolve_parameters(env, LIMITS, KERNEL_ID)
    except InvalidLaunchParameterError as refused:
        assert refused.status_code == 400
        return
    try:
        travelling = travelling_env(env)
    except ValueError:
        return  # a NUL byte: refused before any pod is built
    pod = build_pod(
        PodRequest(
            kernel_id=KERNEL_ID,
            name=dns_name("kernel", KERNEL_ID, "abc123"),
            parameters=parameters,
            command=["python3", "/opt/launch_ipykernel.py"],
            env=travelling,
            username="alice",
        )
    )
    json.dumps(pod)  # plain data
    container = pod["spec"]["containers"][0]
    by_name = {item["name"]: item.get("value") for item in container.get("env", [])}
    for name, value in travelling.items():
        assert by_name.get(name) == value  # each value verbatim, as data
    assert pod["spec"].get("securityContext", {}).get("runAsUser") != 0
