"""The pure builders: image choice, numeric ids, env filtering, container and service data."""

from __future__ import annotations

import pytest

from gp_docker.builders import (
    DEFAULT_GID,
    KERNEL_ID_LABEL,
    KernelContainer,
    check_network,
    container_create_args,
    container_env,
    host_config_args,
    kernel_labels,
    kernel_user,
    parse_numeric_id,
    resource_name,
    select_image,
    service_create_args,
)
from gp_provisioners_core.errors import InvalidLaunchParameterError, KernelSpecConfigError

KID = "0f6a0e0c-1d2b-4f00-9a6e-2a1d5b8c9e11"


def spec(**overrides: object) -> KernelContainer:
    values: dict[str, object] = {
        "name": resource_name(KID),
        "image": "gp/kernel-py:latest",
        "command": ("python", "/usr/local/bin/launch_ipykernel.py", "--kernel-id", KID),
        "env": {"KERNEL_ID": KID, "GP_DOCKER_NETWORK": "host"},
        "labels": kernel_labels(KID, "alice"),
    }
    values.update(overrides)
    return KernelContainer(**values)  # type: ignore[arg-type]


def test_labels_and_name_carry_the_kernel_id() -> None:
    assert kernel_labels(KID, "alice") == {
        KERNEL_ID_LABEL: KID,
        "gp.kernel-username": "alice",
        "gp.component": "kernel",
    }
    assert resource_name(KID) == f"gp-{KID}"


class TestSelectImage:
    def test_configured_image_without_a_request(self) -> None:
        assert select_image("gp/kernel-py:1", "", set(), KID) == "gp/kernel-py:1"
        assert select_image("gp/kernel-py:1", "gp/kernel-py:1", set(), KID) == "gp/kernel-py:1"

    def test_request_matching_the_allow_list(self) -> None:
        allowed = {"gp/kernel-*:*", "other/img:2"}
        assert select_image("gp/kernel-py:1", "gp/kernel-r:3", allowed, KID) == "gp/kernel-r:3"
        assert select_image("gp/kernel-py:1", " other/img:2 ", allowed, KID) == "other/img:2"

    @pytest.mark.parametrize(
        ("requested", "allowed"),
        [
            ("evil/miner:latest", set()),
            ("evil/miner:latest", {"gp/*"}),
            ("gp/ok:1 --privileged", {"gp/*"}),
            ("gp/ok:1;rm", {"gp/*"}),
        ],
    )
    def test_request_outside_the_allow_list_is_refused(
        self, requested: str, allowed: set[str]
    ) -> None:
        with pytest.raises(InvalidLaunchParameterError) as refused:
            select_image("gp/kernel-py:1", requested, allowed, KID)
        assert refused.value.status_code == 400
        assert repr(requested.strip()) in str(refused.value)
        assert KID in str(refused.value)

    def test_no_configured_image_is_an_operator_error(self) -> None:
        with pytest.raises(KernelSpecConfigError, match="image_name"):
            select_image("", "", set(), KID)


class TestNumericIds:
    @pytest.mark.parametrize(
        ("raw", "value"), [("1000", 1000), (" 42 ", 42), ("00", 0), ("0", 0), ("", None)]
    )
    def test_parsed_as_numbers(self, raw: str, value: int | None) -> None:
        assert parse_numeric_id("KERNEL_UID", raw, KID) == value

    def test_absent(self) -> None:
        assert parse_numeric_id("KERNEL_UID", None, KID) is None

    @pytest.mark.parametrize(
        "raw", ["-1", "+1", "1_000", "1e3", "0x10", "abc", "\u0661\u0662", "99999999999", "1 2"]
    )
    def test_anything_but_plain_digits_is_refused(self, raw: str) -> None:
        with pytest.raises(InvalidLaunchParameterError) as refused:
            parse_numeric_id("KERNEL_GID", raw, KID)
        assert f"KERNEL_GID={raw!r}" in str(refused.value)
        assert KID in str(refused.value)

    @pytest.mark.parametrize("name", ["KERNEL_UID", "KERNEL_GID"])
    @pytest.mark.parametrize("raw", ["0", "00", " 000 "])
    def test_root_is_refused_however_spelled(self, name: str, raw: str) -> None:
        env = {"KERNEL_UID": "1000", "KERNEL_GID": "100", name: raw}
        with pytest.raises(InvalidLaunchParameterError) as refused:
            kernel_user(env, KID, allow_root=False)
        assert f"{name}={raw!r}" in str(refused.value)
        assert KID in str(refused.value)
        assert "root" in str(refused.value)

    def test_root_when_explicitly_allowed(self) -> None:
        assert kernel_user({"KERNEL_UID": "00", "KERNEL_GID": "0"}, KID, allow_root=True) == "0:0"

    def test_user_and_group(self) -> None:
        assert kernel_user({}, KID, allow_root=False) is None
        assert kernel_user({"KERNEL_UID": "1001"}, KID, False) == f"1001:{DEFAULT_GID}"
        assert kernel_user({"KERNEL_UID": "1001", "KERNEL_GID": "007"}, KID, False) == "1001:7"
        with pytest.raises(InvalidLaunchParameterError, match="needs KERNEL_UID"):
            kernel_user({"KERNEL_GID": "100"}, KID, False)


def test_env_holds_only_kernel_variables_the_allow_list_and_launcher_needs() -> None:
    server_env = {
        "KERNEL_ID": KID,
        "KERNEL_USERNAME": "alice",
        "GP_LAUNCH_SECRET": "s3cret",
        "GP_TRANSPORT_ENCRYPTION": "none",
        "AWS_SECRET_ACCESS_KEY": "leak",
        "PATH": "/usr/bin",
        "HOME": "/root",
        "SPARK_OPTS": "--x",
        "GP_DOCKER_NETWORK": "server-value",
    }
    env = container_env(server_env, {"SPARK_OPTS"}, "gp-net")
    assert env == {
        "GP_DOCKER_NETWORK": "gp-net",
        "GP_LAUNCH_SECRET": "s3cret",
        "GP_TRANSPORT_ENCRYPTION": "none",
        "KERNEL_ID": KID,
        "KERNEL_USERNAME": "alice",
        "SPARK_OPTS": "--x",
    }


def test_network_names() -> None:
    for name in ("host", "none", "bridge", "my_net-1", "container:abc"):
        assert check_network(name) == name
    for bad in ("", "a b", "-x", "net;rm"):
        with pytest.raises(ValueError, match="not a network"):
            check_network(bad)


def test_container_arguments_are_data() -> None:
    kernel = spec(user="1000:100", env={"KERNEL_ID": KID, "KERNEL_X": "$(rm -rf /); `x`"})
    args = container_create_args(kernel)
    assert args["command"] == list(kernel.command)
    assert args["environment"]["KERNEL_X"] == "$(rm -rf /); `x`"
    assert args["labels"][KERNEL_ID_LABEL] == KID
    assert args["name"] == f"gp-{KID}"
    assert args["user"] == "1000:100"
    assert args["image"] == "gp/kernel-py:latest"
    assert "user" not in container_create_args(spec())
    assert host_config_args(kernel) == {"network_mode": "host", "init": True}
    assert host_config_args(spec(network="gp-net"))["network_mode"] == "gp-net"


def test_service_arguments() -> None:
    args = service_create_args(spec(network="host", user="1000:100"))
    template = args["task_template"]
    assert args["name"] == f"gp-{KID}"
    assert args["labels"][KERNEL_ID_LABEL] == KID
    container = template["ContainerSpec"]
    assert container["Labels"][KERNEL_ID_LABEL] == KID
    assert container["Image"] == "gp/kernel-py:latest"
    assert container["Args"][:2] == ["python", "/usr/local/bin/launch_ipykernel.py"]
    assert "Command" not in container
    assert container["User"] == "1000:100"
    assert sorted(container["Env"]) == ["GP_DOCKER_NETWORK=host", f"KERNEL_ID={KID}"]
    assert template["RestartPolicy"]["Condition"] == "none"
    assert template["Networks"] == [{"Target": "host"}]
