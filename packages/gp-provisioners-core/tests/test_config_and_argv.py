"""Settings, authorization and argv building: pure logic, no kernel."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_provisioners_core import KernelSpecConfigError, RemoteProvisionerBase, UnauthorizedUserError
from gp_provisioners_core.argv import is_valid_kernel_id, substitute_argv, travelling_env
from gp_provisioners_core.config import env_bool, parse_port_range
from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.response_manager import ResponseManager


class Provisioner(RemoteProvisionerBase):
    """The smallest concrete provisioner: settings and authorization only."""

    has_process = False

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        raise NotImplementedError

    async def confirm_remote_startup(self) -> None:
        raise NotImplementedError

    def log_kernel_launch(self, cmd: list[str]) -> None:
        pass

    async def poll(self) -> int | None:
        return 0

    async def send_signal(self, signum: int) -> None:
        pass

    async def kill(self, restart: bool = False) -> None:
        pass

    async def terminate(self, restart: bool = False) -> None:
        pass


def make(**config: Any) -> Provisioner:
    spec = KernelSpec(argv=["python"], display_name="Spec Under Test", resource_dir="/specs/x")
    return Provisioner(kernel_id="k-1", kernel_spec=spec, **config)


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_AUTHORIZED_USERS", "alice, bob")
    monkeypatch.setenv("GP_UNAUTHORIZED_USERS", "root,mallory")
    monkeypatch.setenv("GP_PORT_RANGE", "40000..41000")
    monkeypatch.setenv("GP_LAUNCH_TIMEOUT", "45")
    monkeypatch.setenv("GP_ALLOW_LEGACY_LAUNCHERS", "true")
    p = make()
    assert p.authorized_users == {"alice", "bob"}
    assert p.unauthorized_users == {"root", "mallory"}
    assert (p.port_range, p.launch_timeout, p.allow_legacy_launchers) == ("40000..41000", 45, True)


def test_plain_defaults() -> None:
    p = make()
    assert p.unauthorized_users == {"root"}
    assert p.authorized_users == set()
    assert (p.port_range, p.launch_timeout, p.allow_legacy_launchers) == ("0..0", 30, False)


@pytest.mark.parametrize(
    ("raw", "value"), [("false", False), ("0", False), ("No", False), ("TRUE", True)]
)
def test_booleans_are_parsed_not_guessed(
    monkeypatch: pytest.MonkeyPatch, raw: str, value: bool
) -> None:
    monkeypatch.setenv("GP_FLAG", raw)
    assert env_bool("GP_FLAG", not value) is value


def test_a_non_boolean_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_FLAG", "maybe")
    with pytest.raises(ValueError, match="GP_FLAG='maybe'"):
        env_bool("GP_FLAG", False)


@pytest.mark.parametrize(
    "text", ["5..3", "1..2000", "40000..70000", "abc", "10-20", "40000..40000"]
)
def test_bad_port_ranges_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="port range"):
        parse_port_range(text)


def test_kernelspec_overrides_win_and_bad_ones_name_the_spec() -> None:
    assert make(launch_timeout=90).launch_timeout == 90
    with pytest.raises(KernelSpecConfigError) as failure:
        make(launch_timout=90)
    assert "'launch_timout'" in str(failure.value)
    assert "Spec Under Test" in str(failure.value)
    assert "/specs/x" in str(failure.value)


@pytest.mark.parametrize(
    ("authorized", "unauthorized", "user", "allowed"),
    [
        (set(), {"root"}, "alice", True),
        (set(), {"root"}, "root", False),
        ({"alice"}, set(), "bob", False),
        ({"alice"}, {"alice"}, "alice", False),  # denial wins
        ({"alice"}, {"root"}, "alice", True),
        # Compared after NFKC, trimming and case folding, on both sides.
        (set(), {"root"}, "ROOT", False),
        (set(), {"root"}, " root\t", False),
        (set(), {"root"}, "\uff52\uff4f\uff4f\uff54", False),  # full-width letters
        (set(), {" Root "}, "root", False),
        ({"Alice"}, set(), "alice", True),
        ({"alice"}, set(), "", False),
    ],
)
def test_authorization(
    authorized: set[str], unauthorized: set[str], user: str, allowed: bool
) -> None:
    p = make(authorized_users=authorized, unauthorized_users=unauthorized)
    if allowed:
        p.authorize_user(user)
    else:
        with pytest.raises(UnauthorizedUserError) as refused:
            p.authorize_user(user)
        assert refused.value.status_code == 403
        assert "not authorized" in str(refused.value)


def test_argv_values_stay_inside_their_argument() -> None:
    hostile = "x; rm -rf / $(id) `id` 'q' \"d\"\nnext"
    argv, unknown = substitute_argv(
        ["launch", "--kernel-id", "{kernel_id}", "--range={port_range}", "{mystery}"],
        {"kernel_id": hostile, "port_range": "0..0"},
    )
    assert argv == ["launch", "--kernel-id", hostile, "--range=0..0", "{mystery}"]
    assert unknown == {"mystery"}


@pytest.mark.parametrize(
    ("kernel_id", "valid"),
    [
        ("3f2b-11", True),
        ("a.b_c-d", True),
        ("x;y", False),
        ("-leading", False),
        ("", False),
        ("a" * 129, False),
        ("abc\n", False),  # a trailing newline passes ^...$ with re.match, not fullmatch
        ("abc\r", False),
        ("k\u0661", False),  # a non-ASCII digit
    ],
)
def test_kernel_id_validation(kernel_id: str, valid: bool) -> None:
    assert is_valid_kernel_id(kernel_id) is valid


def test_only_kernel_variables_and_the_allow_list_travel() -> None:
    env = {"KERNEL_USERNAME": "a", "KERNEL_X": "1", "PATH": "/bin", "AWS_SECRET": "s", "LANG": "C"}
    # the server's own settings (an ssh key file, a Slurm token) stay on the server
    env |= {"HOME": "/root", "GP_SSH_KEY_FILE": "/keys/gp", "GP_SLURM_JWT": "token"}
    assert travelling_env(env, ["LANG"]) == {"KERNEL_USERNAME": "a", "KERNEL_X": "1", "LANG": "C"}


def test_launch_variables_and_spec_names_travel_too() -> None:
    env = {"GP_LAUNCH_SECRET": "s", "GP_TRANSPORT_ENCRYPTION": "none", "SPEC": "x", "HOME": "/r"}
    assert travelling_env(env, spec_env=["SPEC"]) == {
        "GP_LAUNCH_SECRET": "s",
        "GP_TRANSPORT_ENCRYPTION": "none",
        "SPEC": "x",
    }


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KERNEL_A=B": "c"}, "'KERNEL_A=B' is not a valid variable name"),
        ({"KERNEL_A;rm": "c"}, "'KERNEL_A;rm' is not a valid variable name"),
        ({"KERNEL_A B": "c"}, "'KERNEL_A B' is not a valid variable name"),
        ({"KERNEL_A-B": "c"}, "'KERNEL_A-B' is not a valid variable name"),
        ({"KERNEL_A": "b\0c"}, "KERNEL_A holds a NUL byte"),
    ],
)
def test_variables_that_cannot_be_passed_as_data_are_named(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        travelling_env(env)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GP_LAUNCH_TIMEOUT", "abc"),
        ("GP_LAUNCH_TIMEOUT", "nan"),
        ("GP_MAX_LAUNCH_TIMEOUT", "1e999"),
        ("GP_MIN_PORT_RANGE_SIZE", "lots"),
        ("GP_PORT_RANGE", "9000-9100"),
        ("GP_PORT_RANGE", "1..70000"),
    ],
)
def test_a_bad_variable_is_named_when_the_provisioner_is_made(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(KernelSpecConfigError) as caught:
        make()
    assert variable in str(caught.value)
    assert repr(value) in str(caught.value)


def test_bad_request_numbers_are_400(monkeypatch: pytest.MonkeyPatch) -> None:
    from gp_provisioners_core import InvalidLaunchParameterError

    p = make()
    for raw in ("abc", "nan", "inf", "-1", "1e999", "\u0661\u0662"):
        with pytest.raises(InvalidLaunchParameterError) as caught:
            p._requested_launch_timeout({"KERNEL_LAUNCH_TIMEOUT": raw})
        assert caught.value.status_code == 400
        assert "KERNEL_LAUNCH_TIMEOUT" in str(caught.value)


@pytest.mark.parametrize(
    ("section", "allowed", "expected"),
    [
        ({}, True, False),  # the operator allows, the kernelspec does not declare v1
        ({"launcher_protocol_version": 1}, False, False),  # declared, not allowed
        ({"launcher_protocol_version": 1}, True, True),
        ({"launcher_protocol_version": 2}, True, False),
    ],
)
def test_legacy_needs_the_kernelspec_declaration_and_the_operator(
    section: dict[str, int], allowed: bool, expected: bool
) -> None:
    spec = KernelSpec(
        argv=["python"],
        display_name="Spec",
        metadata={"kernel_provisioner": {"provisioner_name": "x", "config": {}, **section}},
    )
    p = Provisioner(kernel_id="k-1", kernel_spec=spec, allow_legacy_launchers=allowed)
    assert p.legacy_allowed() is expected


def test_a_bad_launcher_protocol_declaration_names_the_kernelspec() -> None:
    spec = KernelSpec(
        argv=["python"],
        display_name="Spec",
        metadata={"kernel_provisioner": {"launcher_protocol_version": "1"}},
    )
    with pytest.raises(KernelSpecConfigError, match="launcher_protocol_version"):
        Provisioner(kernel_id="k-1", kernel_spec=spec).legacy_allowed()


class FailingProvisioner(Provisioner):
    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        self.fail_launch("the backend said no")


@pytest.mark.asyncio
async def test_a_launch_failure_is_raised_not_logged_by_the_provisioner(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # jupyter_client's KernelManager logs a failed start once; the provisioner must not add
    # records of its own (gp-distributed's tests check the one record through a manager).
    from gp_provisioners_core import LaunchFailedError

    spec = KernelSpec(argv=["python"], display_name="Spec", resource_dir="/specs/x")
    p = FailingProvisioner(kernel_id="k-fail", kernel_spec=spec)
    with caplog.at_level(logging.ERROR), pytest.raises(LaunchFailedError, match="said no"):
        await p.launch_kernel(["python"], env={})
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_response_manager_takes_the_servers_traitlets_config() -> None:
    from traitlets.config import Config

    from gp_provisioners_core import ResponseManager

    saved = ResponseManager._instance
    ResponseManager.clear_instance()
    config = Config()
    config.ResponseManager.response_ip = "127.0.0.1"
    config.ResponseManager.response_port = 0
    config.ResponseManager.key_size = 2048
    config.ResponseManager.read_timeout = 2.5
    config.ResponseManager.max_connections = 9
    spec = KernelSpec(argv=["python"], display_name="Spec", resource_dir="/specs/x")
    try:
        manager = Provisioner(kernel_id="k-1", kernel_spec=spec, config=config).response_manager
        assert (manager.key_size, manager.read_timeout, manager.max_connections) == (2048, 2.5, 9)
        assert manager.response_address.startswith("127.0.0.1:")
    finally:
        ResponseManager.instance().stop_response_manager()
        ResponseManager.clear_instance()
        ResponseManager._instance = saved


@pytest.mark.asyncio
async def test_cleanup_does_not_start_the_response_manager() -> None:
    from gp_provisioners_core import ResponseManager

    saved = ResponseManager._instance
    ResponseManager.clear_instance()
    try:
        await make().cleanup()  # e.g. a re-attached kernel: no RSA key made on the loop
        assert ResponseManager.instance()._thread is None
    finally:
        ResponseManager.clear_instance()
        ResponseManager._instance = saved


class ValidatingProvisioner(Provisioner):
    """Refuses every request in its validation hook, and records that it was asked."""

    validated: list[dict[str, str]]

    async def validate_launch(self, env: dict[str, str]) -> None:
        self.validated.append(env)
        raise InvalidLaunchParameterError(
            f"KERNEL_CPUS={env.get('KERNEL_CPUS')!r} is not a number", kernel_id="k-1"
        )


def validating(**config: Any) -> ValidatingProvisioner:
    spec = KernelSpec(argv=["python"], display_name="Spec Under Test", resource_dir="/specs/x")
    p = ValidatingProvisioner(kernel_id="k-1", kernel_spec=spec, **config)
    p.validated = []
    return p


async def test_an_unauthorised_user_gets_403_whatever_else_is_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered: list[str] = []
    monkeypatch.setattr(
        ResponseManager, "register_event", lambda self, kid, *a, **k: registered.append(kid)
    )
    p = validating(unauthorized_users={"mallory"})
    with pytest.raises(UnauthorizedUserError) as refused:
        await p.pre_launch(env={"KERNEL_USERNAME": "mallory", "KERNEL_CPUS": "lots"})
    assert refused.value.status_code == 403
    assert p.validated == []  # the backend never looked at the bad parameter
    assert registered == []


async def test_a_refused_request_leaves_nothing_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[str] = []
    monkeypatch.setattr(
        ResponseManager, "register_event", lambda self, kid, *a, **k: registered.append(kid)
    )
    p = validating()
    with pytest.raises(InvalidLaunchParameterError, match="KERNEL_CPUS='lots'") as refused:
        await p.pre_launch(env={"KERNEL_USERNAME": "alice", "KERNEL_CPUS": "lots"})
    assert refused.value.status_code == 400
    assert [env["KERNEL_CPUS"] for env in p.validated] == ["lots"]
    assert registered == []  # nothing to unregister by hand
