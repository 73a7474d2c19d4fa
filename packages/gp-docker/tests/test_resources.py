"""Docker limits and mounts: bounds, allow-list and the data the builders hand to Docker."""

from __future__ import annotations

import pytest

from gp_docker.resources import (
    MountSource,
    ResourceLimits,
    host_config_resources,
    mount_sources,
    resolve_resources,
    service_resources,
)
from gp_provisioners_core.errors import InvalidLaunchParameterError

LIMITS = ResourceLimits(
    max_cpus=2, max_memory=2 * 1024**3, max_gpus=1, allowed_mounts={"d": MountSource("/srv/d")}
)


def test_request_becomes_host_config_and_service_limits() -> None:
    env = {
        "KERNEL_CPUS": "1500m",
        "KERNEL_MEMORY": "1G",
        "KERNEL_GPUS": "1",
        "KERNEL_MOUNTS": "d=/d:ro",
    }
    resources = resolve_resources(env, LIMITS, "k")
    host = host_config_resources(resources)
    assert host["nano_cpus"] == 1_500_000_000
    assert host["mem_limit"] == 10**9
    assert host["device_requests"] == [{"Driver": "", "Count": 1, "Capabilities": [["gpu"]]}]
    assert host["mounts"] == [
        {"Type": "bind", "Source": "/srv/d", "Target": "/d", "ReadOnly": True}
    ]
    limits, mounts = service_resources(resources)
    assert limits == {"Limits": {"NanoCPUs": 1_500_000_000, "MemoryBytes": 10**9}}
    assert mounts == host["mounts"]


def test_defaults_apply_without_a_request() -> None:
    limits = ResourceLimits(default_cpus=1, default_memory=512 * 1024**2)
    assert host_config_resources(resolve_resources({}, limits, "k")) == {
        "nano_cpus": 10**9,
        "mem_limit": 512 * 1024**2,
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KERNEL_CPUS", "nan"),
        ("KERNEL_MEMORY", "1Ti"),
        ("KERNEL_GPUS", "01x"),
        ("KERNEL_MOUNTS", "d=/"),
    ],
)
def test_refusals_name_the_variable_and_kernel(variable: str, value: str) -> None:
    with pytest.raises(InvalidLaunchParameterError) as refused:
        resolve_resources({variable: value}, LIMITS, "kernel-7")
    assert f"{variable}={value!r}" in str(refused.value)
    assert "kernel-7" in str(refused.value)


def test_bad_allowed_mounts_setting_names_the_entry() -> None:
    with pytest.raises(ValueError, match="allowed_mounts\\['x'\\]"):
        mount_sources({"x": {"type": "tmpfs", "source": "/a"}})
