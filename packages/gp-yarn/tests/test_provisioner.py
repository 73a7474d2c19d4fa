"""YarnProvisioner without a ResourceManager: settings, and its state machine over a fake
applications view (the shared view is what ``poll`` and the launch checks read)."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchFailedError,
)
from gp_yarn.applications import YarnApp
from gp_yarn.provisioner import YarnProvisioner
from gp_yarn.rm_client import RMSettings, RMUnavailableError

KERNEL_ID = "0b1c2d3e-0000-4000-8000-000000000001"


def provisioner(**config: Any) -> YarnProvisioner:
    spec = KernelSpec(argv=["run.sh"], display_name="YARN test", language="python")
    return YarnProvisioner(kernel_id=KERNEL_ID, kernel_spec=spec, parent=None, **config)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "GP_YARN_ENDPOINT",
        "GP_ALT_YARN_ENDPOINT",
        "GP_YARN_ENDPOINT_SECURITY_ENABLED",
        "GP_IMPERSONATION_ENABLED",
        "YARN_CONF_DIR",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path / "no-conf"))


@pytest.mark.parametrize(
    ("raw", "expected"), [("false", False), ("False", False), ("0", False), ("yes", True)]
)
def test_booleans_are_parsed_strictly(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool
) -> None:
    monkeypatch.setenv("GP_YARN_ENDPOINT_SECURITY_ENABLED", raw)
    monkeypatch.setenv("GP_IMPERSONATION_ENABLED", raw)
    made = provisioner()
    assert made.yarn_endpoint_security_enabled is expected
    assert made.impersonation_enabled is expected


def test_a_bad_boolean_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_YARN_ENDPOINT_SECURITY_ENABLED", "sometimes")
    with pytest.raises(ValueError, match="GP_YARN_ENDPOINT_SECURITY_ENABLED='sometimes'"):
        _ = provisioner().yarn_endpoint_security_enabled


def test_settings_from_env_and_kernelspec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_YARN_ENDPOINT", "http://env-rm:8088")
    assert provisioner().rm_settings().endpoints == ("http://env-rm:8088",)
    overridden = provisioner(yarn_endpoint="rm1:8088", alt_yarn_endpoint="rm2:8088")
    settings = overridden.rm_settings()
    assert settings == RMSettings(("http://rm1:8088", "http://rm2:8088"), False, True, 10.0)
    with pytest.raises(KernelSpecConfigError, match="yarn_endpoint='ftp://x'"):
        provisioner(yarn_endpoint="ftp://x")


def test_missing_configuration_is_a_config_error() -> None:
    with pytest.raises(KernelSpecConfigError, match="GP_YARN_ENDPOINT"):
        provisioner().rm_settings()


@pytest.mark.parametrize("name", ["", "al ice", "-x", "bob\nspark.x=1", "a" * 256])
def test_proxy_users_must_be_plain_names(name: str) -> None:
    with pytest.raises(InvalidLaunchParameterError):
        provisioner()._check_proxy_user(name)


# -- the state machine over a fake applications view ----------------------------------------


class FakeClient:
    def __init__(self) -> None:
        self.settings = RMSettings(("http://rm:8088",))
        self.killed: list[str] = []
        self.unavailable = False

    def kill(self, app_id: str) -> str:
        if self.unavailable:
            raise RMUnavailableError("No active YARN ResourceManager answers")
        self.killed.append(app_id)
        return "RUNNING"


class FakeWatcher:
    def refresh(self, timeout: float = 10.0) -> bool:
        return True


class FakeWatch:
    def __init__(self) -> None:
        self.apps: tuple[YarnApp, ...] | None = None
        self.client = FakeClient()
        self.watcher = FakeWatcher()
        self.last_error = ""
        self.hurried: list[str] = []

    def apps_of(self, kernel_id: str) -> tuple[YarnApp, ...] | None:
        return self.apps

    def hurry(self, kernel_id: str) -> None:
        self.hurried.append(kernel_id)

    def settled(self, kernel_id: str) -> None:
        pass

    def untrack(self, kernel_id: str) -> None:
        pass


def yarn_app(state: str, **fields: Any) -> YarnApp:
    record = {
        "id": "application_9_0001",
        "name": KERNEL_ID,
        "state": state,
        "queue": "research",
        "applicationTags": "gp-tag",
        "amHostHttpAddress": "node3:8042",
        **fields,
    }
    return YarnApp.from_json(record)


@pytest.fixture
def watched() -> tuple[YarnProvisioner, FakeWatch]:
    made = provisioner(yarn_endpoint="rm:8088")
    watch = FakeWatch()
    made._watch = watch  # type: ignore[assignment]
    made.app_tag = "gp-tag"
    return made, watch


async def test_poll_maps_yarn_states(watched: tuple[YarnProvisioner, FakeWatch]) -> None:
    made, watch = watched
    assert await made.poll() is None  # nothing seen yet
    for state in ("NEW", "SUBMITTED", "ACCEPTED", "RUNNING"):
        watch.apps = (yarn_app(state),)
        assert await made.poll() is None
    assert made.application_id == "application_9_0001"
    watch.apps = (yarn_app("KILLED", finalStatus="KILLED"),)
    assert await made.poll() == -9
    watch.apps = (yarn_app("RUNNING"),)
    assert await made.poll() == -9  # an ended application stays ended


async def test_an_application_yarn_forgot_has_ended(
    watched: tuple[YarnProvisioner, FakeWatch],
) -> None:
    made, watch = watched
    watch.apps = (yarn_app("RUNNING"),)
    assert await made.poll() is None
    watch.apps = ()
    assert await made.poll() == 0


async def test_a_failed_application_fails_the_launch_with_its_diagnostics(
    watched: tuple[YarnProvisioner, FakeWatch],
) -> None:
    made, watch = watched
    await made.detect_launch_failure()  # nothing seen: nothing to say
    watch.apps = (yarn_app("FAILED", finalStatus="FAILED", diagnostics="AM exited: 1"),)
    with pytest.raises(LaunchFailedError, match=r"is FAILED .*in queue research.*AM exited: 1"):
        await made.detect_launch_failure()


async def test_waiting_in_accepted_is_reported_once(
    watched: tuple[YarnProvisioner, FakeWatch], caplog: pytest.LogCaptureFixture
) -> None:
    made, watch = watched
    made.yarn_accepted_report_after = 0
    watch.apps = (yarn_app("ACCEPTED", diagnostics="Queue's AM resource limit exceeded"),)
    caplog.set_level(logging.WARNING)
    await made.detect_launch_failure()
    await made.detect_launch_failure()
    reports = [
        r.getMessage() for r in caplog.records if "waits for the scheduler" in r.getMessage()
    ]
    assert len(reports) == 1
    assert "queue research" in reports[0]
    assert "Queue's AM resource limit exceeded." in made._launch_status()


async def test_kill_goes_through_the_rm_and_falls_back_to_the_launcher(
    watched: tuple[YarnProvisioner, FakeWatch], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, watch = watched
    watch.apps = (yarn_app("RUNNING"),)
    await made.kill()
    assert watch.client.killed == ["application_9_0001"]
    assert watch.hurried == [KERNEL_ID]
    signals: list[int] = []

    async def through_channel(signum: int) -> bool:
        signals.append(signum)
        return True

    monkeypatch.setattr(made, "signal_through_channel", through_channel)
    watch.client.unavailable = True
    await made.kill()
    assert signals == [signal.SIGKILL]
    watch.apps = (yarn_app("FINISHED", finalStatus="SUCCEEDED"),)
    await made.kill()  # already ended: nothing to kill
    assert watch.client.killed == ["application_9_0001"]


async def test_restart_never_mistakes_the_previous_application(
    watched: tuple[YarnProvisioner, FakeWatch],
) -> None:
    made, watch = watched
    watch.apps = (yarn_app("FINISHED", finalStatus="SUCCEEDED"),)
    assert await made.poll() == 0
    made._reset_launch_state()  # what submit_kernel does for the next launch
    made.app_tag = "gp-next"
    assert await made.poll() is None
    watch.apps = (
        yarn_app("FINISHED", finalStatus="SUCCEEDED"),
        yarn_app("RUNNING", id="application_9_0002", applicationTags="gp-next"),
    )
    assert await made.poll() is None
    assert made.application_id == "application_9_0002"
