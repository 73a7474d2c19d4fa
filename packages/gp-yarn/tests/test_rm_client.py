"""The ResourceManager client: choosing the ACTIVE RM by haState, failing over, SPNEGO."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from yarn_api_client.errors import APIError  # type: ignore[import-untyped]

from gp_provisioners_core.errors import KernelSpecConfigError
from gp_yarn import rm_client
from gp_yarn.rm_client import (
    ResourceManagerClient,
    RMRequestError,
    RMSettings,
    RMUnavailableError,
    spnego_auth,
)


class Answer:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data


class FakeCluster:
    """RMs by endpoint: their haState, or None when down."""

    def __init__(self, states: dict[str, str | None]) -> None:
        self.states = states
        self.built: list[str] = []
        self.calls: list[tuple[str, str]] = []


def fake_rm_class(cluster: FakeCluster) -> type:
    class FakeResourceManager:
        def __init__(self, service_endpoints: list[str], **kwargs: Any) -> None:
            (self.endpoint,) = service_endpoints
            cluster.built.append(self.endpoint)
            if cluster.states.get(self.endpoint) is None:
                raise Exception("No active RMs found")  # what yarn-api-client raises

        def _up(self, what: str) -> str | None:
            cluster.calls.append((self.endpoint, what))
            state = cluster.states.get(self.endpoint)
            if state is None:
                raise ConnectionError(f"connection refused by {self.endpoint}")
            return state

        def cluster_information(self) -> Answer:
            return Answer({"clusterInfo": {"haState": self._up("info")}})

        def cluster_applications(self, **kwargs: Any) -> Answer:
            if self._up("apps") != "ACTIVE":
                raise APIError("Response finished with status: 307. Details: standby")
            return Answer({"apps": {"app": [{"id": "application_1_0001", "name": "k"}]}})

        def cluster_application(self, app_id: str) -> Answer:
            self._up("app")
            raise APIError(f"Response finished with status: 404. Details: {app_id} not found")

        def cluster_application_kill(self, app_id: str) -> Answer:
            self._up("kill")
            return Answer({"state": "RUNNING"})

    return FakeResourceManager


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster({"http://rm1:8088": "STANDBY", "http://rm2:8088": "ACTIVE"})
    monkeypatch.setattr(rm_client, "ResourceManager", fake_rm_class(fake))
    return fake


def client() -> ResourceManagerClient:
    settings = RMSettings(("http://rm1:8088", "http://rm2:8088"))
    return ResourceManagerClient(settings, resolve_pause=0.01)


def test_the_active_rm_is_chosen_by_ha_state(cluster: FakeCluster) -> None:
    rm = client()
    assert rm.applications(application_types=("SPARK",), started_time_begin=None)[0]["name"] == "k"
    assert rm.active_endpoint == "http://rm2:8088"
    assert cluster.calls[-1] == ("http://rm2:8088", "apps")


def test_failover_when_the_active_rm_goes_away(cluster: FakeCluster) -> None:
    rm = client()
    assert rm.kill("application_1_0001") == "RUNNING"
    cluster.states.update({"http://rm2:8088": None, "http://rm1:8088": "ACTIVE"})
    assert rm.kill("application_1_0001") == "RUNNING"
    assert rm.active_endpoint == "http://rm1:8088"
    assert rm.failovers == 1
    # The active RM turning standby (it answers 307) also makes the client look again.
    cluster.states.update({"http://rm2:8088": "ACTIVE", "http://rm1:8088": "STANDBY"})
    assert rm.applications(application_types=(), started_time_begin=5)
    assert rm.active_endpoint == "http://rm2:8088"
    assert rm.failovers == 2


def test_no_active_rm_is_reported_with_each_reason(cluster: FakeCluster) -> None:
    cluster.states.update({"http://rm2:8088": None})
    with pytest.raises(RMUnavailableError) as error:
        client().kill("application_1_0001")
    assert "http://rm1:8088: haState STANDBY" in str(error.value)
    assert "http://rm2:8088: Exception: No active RMs found" in str(error.value)


def test_refusals_are_not_failovers(cluster: FakeCluster) -> None:
    rm = client()
    assert rm.application("application_1_0001") is None  # 404 means: unknown application
    assert rm.failovers == 0


def test_security_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "requests_kerberos", None)
    monkeypatch.setitem(sys.modules, "requests_gssapi", None)
    with pytest.raises(KernelSpecConfigError, match=r"pip install 'gp-yarn\[kerberos\]'"):
        spnego_auth()
    with pytest.raises(KernelSpecConfigError):
        ResourceManagerClient(RMSettings(("http://rm1:8088",), security_enabled=True))


def test_security_uses_requests_kerberos(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("requests_kerberos")

    class HTTPKerberosAuth:
        pass

    module.HTTPKerberosAuth = HTTPKerberosAuth  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "requests_kerberos", module)
    assert isinstance(spnego_auth(), HTTPKerberosAuth)


def test_request_errors_carry_the_status() -> None:
    error = RMRequestError("refused", 403)
    assert error.status == 403
    assert rm_client.status_of(APIError("Response finished with status: 503. Details: x")) == 503
