"""The YARN ResourceManager emulator speaks the RM REST API v1 the way yarn-api-client and the
Hadoop documentation expect (YARN itself is not available here; see backends/yarn_emulator.py).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.yarn_emulator import (
    ResourceManagerPair,
    ResourceManagerServer,
    YarnCluster,
    group_members,
)
from yarn_api_client import ResourceManager  # type: ignore[import-untyped]
from yarn_api_client.errors import APIError  # type: ignore[import-untyped]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[YarnCluster]:
    cluster = YarnCluster(tmp_path)
    yield cluster
    assert cluster.shutdown() == []


@pytest.fixture
def rm(cluster: YarnCluster) -> Iterator[ResourceManagerServer]:
    server = ResourceManagerServer(cluster).start()
    yield server
    server.stop()


def submit(client: ResourceManager, name: str, command: str, **extra: object) -> str:
    app_id = client.cluster_new_application().data["application-id"]
    body = {
        "application-id": app_id,
        "application-name": name,
        "application-type": "SPARK",
        "am-container-spec": {
            "commands": {"command": command},
            "environment": {"entry": [{"key": "GREETING", "value": "hello"}]},
        },
        "max-app-attempts": 1,
        **extra,
    }
    client.cluster_submit_application(body)
    return str(app_id)


def http(method: str, url: str, body: object = None) -> tuple[int, dict[str, str], str]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def test_submit_run_filter_and_finish(rm: ResourceManagerServer, cluster: YarnCluster) -> None:
    client = ResourceManager(service_endpoints=[rm.url], timeout=5)
    assert client.cluster_information().data["clusterInfo"]["haState"] == "ACTIVE"
    assert client.cluster_applications().data == {"apps": None}
    app_id = submit(
        client, "k1", 'echo "$GREETING $CONTAINER_ID" > out.txt; sleep 0.3', queue="default"
    )
    assert cluster.wait_for_state(app_id, ("RUNNING",), 5) == "RUNNING"
    app = client.cluster_application(app_id).data["app"]
    assert (app["name"], app["applicationType"], app["queue"]) == ("k1", "SPARK", "default")
    assert app["amHostHttpAddress"] == "127.0.0.1:8042"
    listed = client.cluster_applications(
        states=["RUNNING"], application_types=["spark"], name="k1"
    ).data["apps"]["app"]
    assert [a["id"] for a in listed] == [app_id]
    assert client.cluster_applications(states=["FINISHED"]).data == {"apps": None}
    assert client.cluster_applications(name="other").data == {"apps": None}
    assert cluster.wait_for_state(app_id, ("FINISHED",), 5) == "FINISHED"
    final = client.cluster_application(app_id).data["app"]
    assert final["finalStatus"] == "SUCCEEDED"
    work = next((cluster.work_dir / "local" / app_id).iterdir())
    assert (work / "out.txt").read_text().startswith("hello container_")
    assert client.cluster_application_state(app_id).data == {"state": "FINISHED"}
    # Killing a finished application answers 200 with its state.
    assert client.cluster_application_kill(app_id).data == {"state": "FINISHED"}


def test_kill_is_accepted_then_final_and_the_group_is_gone(
    rm: ResourceManagerServer, cluster: YarnCluster
) -> None:
    client = ResourceManager(service_endpoints=[rm.url], timeout=5)
    app_id = submit(client, "k2", "sleep 30 & sleep 30")
    cluster.wait_for_state(app_id, ("RUNNING",), 5)
    pgid = cluster.app(app_id).pgid
    status, headers, body = http(
        "PUT", f"{rm.url}/ws/v1/cluster/apps/{app_id}/state", {"state": "KILLED"}
    )
    assert status == 202
    assert json.loads(body) == {"state": "RUNNING"}
    assert headers["Location"].endswith(f"/ws/v1/cluster/apps/{app_id}/state")
    assert cluster.wait_for_state(app_id, ("KILLED",), 5) == "KILLED"
    assert group_members(pgid) == []
    app = client.cluster_application(app_id).data["app"]
    assert (app["finalStatus"], app["diagnostics"]) == ("KILLED", "Application killed by user.")


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "exception"),
    [
        ("GET", "/ws/v1/cluster/apps/application_1_0001", None, 404, "NotFoundException"),
        ("GET", "/ws/v1/cluster/apps/nonsense", None, 400, "BadRequestException"),
        ("GET", "/ws/v1/cluster/apps?states=SLEEPING", None, 400, "BadRequestException"),
        ("GET", "/ws/v1/cluster/apps?limit=0", None, 400, "BadRequestException"),
        (
            "POST",
            "/ws/v1/cluster/apps",
            {"application-id": "application_1_9"},
            400,
            "BadRequestException",
        ),
        ("GET", "/ws/v1/cluster/nothing", None, 404, "NotFoundException"),
        ("DELETE", "/ws/v1/cluster/apps", None, 405, "WebApplicationException"),
    ],
)
def test_errors_are_remote_exceptions(
    rm: ResourceManagerServer, method: str, path: str, body: object, status: int, exception: str
) -> None:
    got, _, text = http(method, rm.url + path, body)
    assert got == status
    assert json.loads(text)["RemoteException"]["exception"] == exception


def test_failed_and_accepted_applications_say_why(
    rm: ResourceManagerServer, cluster: YarnCluster
) -> None:
    client = ResourceManager(service_endpoints=[rm.url], timeout=5)
    bad_queue = submit(client, "q", "true", queue="nope")
    assert cluster.wait_for_state(bad_queue, ("FAILED",), 5) == "FAILED"
    assert "unknown queue: nope" in client.cluster_application(bad_queue).data["app"]["diagnostics"]
    crashing = submit(client, "c", "echo boom >&2; exit 3")
    assert cluster.wait_for_state(crashing, ("FAILED",), 5) == "FAILED"
    diagnostics = client.cluster_application(crashing).data["app"]["diagnostics"]
    assert "exitCode: 3" in diagnostics
    assert "boom" in diagnostics
    cluster.hold_next_in_accepted("Queue's AM resource limit exceeded.")
    held = submit(client, "h", "true")
    time.sleep(0.2)
    app = client.cluster_application(held).data["app"]
    assert (app["state"], app["diagnostics"]) == ("ACCEPTED", "Queue's AM resource limit exceeded.")
    client.cluster_application_kill(held)
    assert cluster.wait_for_state(held, ("KILLED",), 5) == "KILLED"


def test_standby_redirects_and_failover_keeps_the_applications(cluster: YarnCluster) -> None:
    pair = ResourceManagerPair(cluster).start()
    try:
        standby, active = pair.rm1, pair.rm2
        status, headers, body = http("GET", f"{standby.url}/ws/v1/cluster/apps")
        assert status == 307
        assert headers["Location"] == f"{active.url}/ws/v1/cluster/apps"
        assert body.startswith("This is standby RM. The redirect url is:")
        info = json.loads(http("GET", f"{standby.url}/ws/v1/cluster/info")[2])["clusterInfo"]
        assert info["haState"] == "STANDBY"
        # yarn-api-client follows the redirect (its own /cluster check even picks the standby).
        through_standby = ResourceManager(service_endpoints=[standby.url], timeout=5)
        app_id = submit(through_standby, "ha", "sleep 30")
        cluster.wait_for_state(app_id, ("RUNNING",), 5)
        assert pair.fail_over() is standby
        with pytest.raises(OSError, match="refused"):
            urllib.request.urlopen(f"{active.url}/ws/v1/cluster/info", timeout=2)
        client = ResourceManager(service_endpoints=[active.url, standby.url], timeout=5)
        assert client.get_active_endpoint() == standby.url
        assert client.cluster_application(app_id).data["app"]["state"] == "RUNNING"
        client.cluster_application_kill(app_id)
        assert cluster.wait_for_state(app_id, ("KILLED",), 5) == "KILLED"
        # yarn-api-client's own check picks a standby that redirects to the active RM...
        pair.restore_standby()
        via_standby = ResourceManager(service_endpoints=[active.url], timeout=5)
        assert via_standby.get_active_endpoint() == active.url
        # ...and with the active RM gone, the standby can only answer 307 without a Location.
        pair.rm1.stop()
        status, headers, _ = http("GET", f"{active.url}/ws/v1/cluster/apps")
        assert status == 307
        assert "Location" not in headers
        assert "Refresh" in headers
        with pytest.raises(APIError, match="status: 307"):
            via_standby.cluster_applications()
        with pytest.raises(Exception, match="No active RMs found"):
            ResourceManager(service_endpoints=[active.url], timeout=5)
    finally:
        pair.stop()
    # The one new-application request reached the standby first and was redirected.
    new_app = "/ws/v1/cluster/apps/new-application"
    assert cluster.requests.count(path=new_app, server="rm1") == 1
    assert cluster.requests.count(path=new_app, server="rm2") == 1
