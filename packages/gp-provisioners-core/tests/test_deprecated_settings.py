"""Renamed settings: the old names keep working, set the new one, and warn once."""

from __future__ import annotations

import logging

import pytest
from traitlets import Set, Unicode
from traitlets.config import Config

from gp_provisioners_core import deprecated_settings
from gp_provisioners_core.config import RemoteProvisionerConfigMixin
from gp_provisioners_core.deprecated_settings import deprecated_alias


class OldStyleBackend(RemoteProvisionerConfigMixin):
    renamed_env_allowlist_variables = ("GP_OLD_ENV_ALLOWLIST",)
    old_env_allowlist = deprecated_alias("env_allowlist", Set(Unicode()))


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deprecated_settings, "_warned", set())
    monkeypatch.delenv("GP_ENV_ALLOWLIST", raising=False)
    monkeypatch.delenv("GP_OLD_ENV_ALLOWLIST", raising=False)


def test_old_name_in_a_config_file_sets_the_new_one_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = Config({"OldStyleBackend": {"old_env_allowlist": {"LANG", "TZ"}}})
    with caplog.at_level(logging.WARNING):
        first = OldStyleBackend(config=config)
        second = OldStyleBackend(config=config)
    assert first.env_allowlist == {"LANG", "TZ"}
    assert second.env_allowlist == {"LANG", "TZ"}
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warnings == [
        "OldStyleBackend.old_env_allowlist is deprecated and will be removed: use env_allowlist "
        "(it was applied as env_allowlist)"
    ]


def test_old_name_as_keyword_or_kernelspec_override_is_applied() -> None:
    backend = OldStyleBackend()
    backend.old_env_allowlist = {"PATH"}
    assert backend.env_allowlist == {"PATH"}


def test_renamed_variable_is_read_only_when_the_new_one_is_unset(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GP_OLD_ENV_ALLOWLIST", "A, B")
    with caplog.at_level(logging.WARNING):
        assert OldStyleBackend().env_allowlist == {"A", "B"}
    assert "environment.GP_OLD_ENV_ALLOWLIST is deprecated" in caplog.text
    assert "use GP_ENV_ALLOWLIST" in caplog.text
    monkeypatch.setenv("GP_ENV_ALLOWLIST", "C")
    assert OldStyleBackend().env_allowlist == {"C"}


def test_explicit_setting_beats_any_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_ENV_ALLOWLIST", "FROM_ENV")
    assert OldStyleBackend(env_allowlist={"EXPLICIT"}).env_allowlist == {"EXPLICIT"}


def test_default_lets_nothing_travel() -> None:
    assert OldStyleBackend().env_allowlist == set()
