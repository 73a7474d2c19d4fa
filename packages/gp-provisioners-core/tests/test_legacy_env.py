"""gateway_provisioners' dropped GP_* variables are honoured through ours or reported once,
naming what replaces them; gateway_provisioners installed alongside is reported."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from gp_provisioners_core import coexistence, legacy_env
from gp_provisioners_core.legacy_env import DROPPED, apply_legacy_environment

BRIEF = (
    "GP_SHARED_NAMESPACE GP_RESPONSE_ADDR_ANY GP_REMOTE_USER GP_REMOTE_PWD GP_REMOTE_GSS_SSH "
    "GP_ENABLE_TUNNELING GP_MIRROR_WORKING_DIRS GP_USE_INCLUSTER_CONFIG GP_POLL_INTERVAL "
    "GP_SOCKET_TIMEOUT GP_YARN_SHUTDOWN_WAIT_TIME"
).split()


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy_env, "_reported", set())
    monkeypatch.setattr(coexistence, "_reported", False)


def test_every_dropped_variable_is_covered() -> None:
    assert sorted(item.name for item in DROPPED) == sorted(BRIEF)


@pytest.mark.parametrize(
    ("old", "value", "ours", "expected"),
    [
        ("GP_SHARED_NAMESPACE", "False", "GP_CREATE_KERNEL_NAMESPACE", "true"),
        ("GP_SHARED_NAMESPACE", "true", "GP_CREATE_KERNEL_NAMESPACE", "false"),
        ("GP_REMOTE_USER", "alice", "GP_SSH_USER", "alice"),
    ],
)
def test_mapped_variables_set_ours_and_say_so(
    old: str, value: str, ours: str, expected: str
) -> None:
    env = {old: value}
    (message,) = apply_legacy_environment(env)
    assert env[ours] == expected
    assert f"honoured as {ours}={expected!r}" in message


def test_an_explicit_setting_of_ours_wins() -> None:
    env = {"GP_REMOTE_USER": "alice", "GP_SSH_USER": "bob"}
    (message,) = apply_legacy_environment(env)
    assert env["GP_SSH_USER"] == "bob"
    assert "GP_SSH_USER is set and replaces it" in message


def test_unmapped_variables_name_the_replacement_once_and_hide_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {name: "s3cret" for name in BRIEF if name not in ("GP_SHARED_NAMESPACE",)}
    with caplog.at_level(logging.WARNING):
        first = apply_legacy_environment(env)
        again = apply_legacy_environment(env)
    assert len(first) == len(BRIEF) - 1
    assert again == []
    pwd = next(m for m in first if m.startswith("GP_REMOTE_PWD"))
    assert "s3cret" not in pwd
    assert "GP_SSH_KEY_FILE" in pwd
    shutdown = next(m for m in first if m.startswith("GP_YARN_SHUTDOWN_WAIT_TIME"))
    assert "KernelManager.shutdown_wait_time" in shutdown
    assert "s3cret" not in caplog.text.split("GP_REMOTE_PWD")[1].split("\n")[0]


def test_a_bad_boolean_is_named() -> None:
    (message,) = apply_legacy_environment({"GP_SHARED_NAMESPACE": "maybe"})
    assert "GP_SHARED_NAMESPACE='maybe' is not true or false" in message


def test_gateway_provisioners_alongside_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert coexistence.shadowing_message() == ""
    info = tmp_path / "gateway_provisioners-0.5.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gateway_provisioners\n")
    (info / "entry_points.txt").write_text(
        "[jupyter_client.kernel_provisioners]\n"
        "demo-provisioner = gateway_provisioners.distributed:DistributedProvisioner\n"
    )
    ours = tmp_path / "gp_demo-1.0.dist-info"
    ours.mkdir()
    (ours / "METADATA").write_text("Metadata-Version: 2.1\nName: gp-demo\n")
    (ours / "entry_points.txt").write_text(
        "[jupyter_client.kernel_provisioners]\ndemo-provisioner = gp_demo:Provisioner\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    message = coexistence.warn_if_shadowed()
    assert "demo-provisioner" in message
    assert "gateway_provisioners.distributed:DistributedProvisioner" in message
    assert "pip uninstall gateway_provisioners" in message
    assert coexistence.warn_if_shadowed() == ""  # once per process
