"""Who a kernel runs for when the start request does not say, and the advice a refused root
gets.  Pure: the process environment is handed in."""

from __future__ import annotations

import getpass

import pytest
from test_config_and_argv import make

from gp_provisioners_core import UnauthorizedUserError
from gp_provisioners_core.users import (
    FROM_HUB,
    FROM_PROCESS,
    FROM_REQUEST,
    FROM_SETTING,
    kernel_username,
)


@pytest.mark.parametrize(
    ("request_env", "setting", "process_env", "expected"),
    [
        (
            {"KERNEL_USERNAME": "alice"},
            "jovyan",
            {"JUPYTERHUB_USER": "carol"},
            ("alice", FROM_REQUEST),
        ),
        ({}, "jovyan", {"JUPYTERHUB_USER": "carol"}, ("jovyan", FROM_SETTING)),
        ({}, "", {"JUPYTERHUB_USER": "carol"}, ("carol", FROM_HUB)),
        ({"KERNEL_USERNAME": ""}, "", {"JUPYTERHUB_USER": "carol"}, ("carol", FROM_HUB)),
        # A client cannot pose as the Hub's user: only the server's own environment counts.
        ({"JUPYTERHUB_USER": "mallory"}, "", {}, (getpass.getuser(), FROM_PROCESS)),
        ({}, "", {}, (getpass.getuser(), FROM_PROCESS)),
    ],
)
def test_the_kernel_user_and_where_it_came_from(
    request_env: dict[str, str],
    setting: str,
    process_env: dict[str, str],
    expected: tuple[str, str],
) -> None:
    user = kernel_username(request_env, setting, process_env)
    assert (user.name, user.source) == expected


def test_the_provisioner_uses_the_hub_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTERHUB_USER", "carol")
    monkeypatch.delenv("GP_DEFAULT_KERNEL_USERNAME", raising=False)
    assert make().requested_user({}).name == "carol"
    assert make(default_kernel_username="jovyan").requested_user({}).name == "jovyan"


def test_a_refused_root_server_is_told_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    p = make()
    user = kernel_username({}, "", {})
    root = type(user)("root", FROM_PROCESS)
    with pytest.raises(UnauthorizedUserError) as refused:
        p.authorize_user("root", root)
    message = str(refused.value)
    assert "came from the server process's owner" in message
    assert "non-root" in message
    assert "c.Provisioner.default_kernel_username" in message
    assert "GP_DEFAULT_KERNEL_USERNAME" in message
    assert "c.Provisioner.unauthorized_users" in message


def test_a_request_naming_root_is_told_to_name_another() -> None:
    with pytest.raises(UnauthorizedUserError) as refused:
        make().authorize_user("root")
    message = str(refused.value)
    assert "another KERNEL_USERNAME" in message
    assert "non-root" not in message  # the server's own user is not the question here


def test_a_uid_without_a_name_is_named_by_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_name() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_name)
    user = kernel_username({}, "", {})
    assert user.name.startswith("uid-")
    assert user.source == FROM_PROCESS
