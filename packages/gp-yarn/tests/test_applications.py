"""Application records, matching a launch to its application, and the one batched query."""

from __future__ import annotations

from typing import Any

import pytest

from gp_yarn.applications import CLOCK_SKEW_MS, YarnApp, YarnAppWatch, pick_app
from gp_yarn.rm_client import RMSettings


def app(**fields: Any) -> YarnApp:
    record = {"id": "application_1_0001", "name": "k", "state": "RUNNING", **fields}
    return YarnApp.from_json(record)


def test_from_json_and_host() -> None:
    parsed = YarnApp.from_json(
        {
            "id": "application_1_0007",
            "name": "kid",
            "state": "running",
            "finalStatus": "UNDEFINED",
            "queue": "research",
            "user": "alice",
            "diagnostics": "  ",
            "amHostHttpAddress": "node7.example.com:8042",
            "startedTime": 1700000000000,
            "applicationTags": "gp-abc,Other",
        }
    )
    assert parsed.state == "RUNNING"
    assert parsed.host == "node7.example.com"
    assert parsed.tags == {"gp-abc", "other"}
    assert parsed.diagnostics == ""
    assert app(amHostHttpAddress="[fd00::7]:8042").host == "fd00::7"
    assert app(amHostHttpAddress="").host == ""


@pytest.mark.parametrize(
    ("state", "final", "code"),
    [
        ("NEW", "UNDEFINED", None),
        ("NEW_SAVING", "UNDEFINED", None),
        ("SUBMITTED", "UNDEFINED", None),
        ("ACCEPTED", "UNDEFINED", None),
        ("RUNNING", "UNDEFINED", None),
        ("FINISHED", "SUCCEEDED", 0),
        ("FINISHED", "FAILED", 1),
        ("FAILED", "FAILED", 1),
        ("KILLED", "KILLED", -9),
    ],
)
def test_states_map_to_exit_codes(state: str, final: str, code: int | None) -> None:
    assert app(state=state, finalStatus=final).exit_code == code


def test_describe_names_queue_and_diagnostics() -> None:
    text = app(state="FAILED", finalStatus="FAILED", queue="q1", diagnostics="AM died").describe()
    assert text == (
        "YARN application application_1_0001 is FAILED (final status FAILED) in queue q1; "
        "the ResourceManager says: AM died"
    )


def test_pick_app_prefers_id_then_tag_then_time() -> None:
    old = app(id="application_1_0001", startedTime=1_000_000, applicationTags="gp-old")
    new = app(id="application_1_0002", startedTime=2_000_000, applicationTags="gp-new")
    untagged = app(id="application_1_0003", startedTime=2_000_001)
    apps = (old, new, untagged)
    assert pick_app(apps, app_id="application_1_0001") is old
    assert pick_app(apps, app_id="application_1_0009") is None
    assert pick_app(apps, tag="GP-NEW") is new
    # No tagged match (a run.sh without tags): the newest since the launch.
    assert pick_app(apps, tag="gp-none", since_ms=2_000_000) is untagged
    assert pick_app(apps, since_ms=2_000_000, exclude={"application_1_0003"}) is new
    too_old = 2_000_001 + CLOCK_SKEW_MS + 1
    assert pick_app(apps, since_ms=too_old) is None
    # An earlier launch of the same kernel never matches, even with its tag.
    assert pick_app(apps, tag="gp-old", exclude={"application_1_0001"}, since_ms=too_old) is None


class FakeClient:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.settings = RMSettings(("http://rm:8088",))
        self.records = records
        self.calls: list[dict[str, Any]] = []

    def applications(self, **kwargs: Any) -> list[dict[str, Any]]:
        self.calls.append(kwargs)
        return self.records


def test_fetch_is_one_query_for_all_kernels() -> None:
    records: list[dict[str, Any]] = [
        {"id": "application_1_0001", "name": "k1", "state": "RUNNING", "startedTime": 5_000_000},
        {"id": "application_1_0002", "name": "k2", "state": "FAILED", "startedTime": 6_000_000},
        {"id": "application_1_0003", "name": "k1", "state": "KILLED", "startedTime": 4_000_000},
        {"id": "application_1_0004", "name": "someone-else", "state": "RUNNING"},
    ]
    client = FakeClient(records)
    watch = YarnAppWatch(client, ("SPARK",), interval=60)  # type: ignore[arg-type]
    watch.track("k1", 5_000_000, launching=False)
    watch.track("k2", 6_000_000, launching=False)
    watch.track("k3", 7_000_000, launching=False)
    try:
        assert watch.watcher.refresh(5)
        assert [a.state for a in watch.apps_of("k2") or ()] == ["FAILED"]
        assert watch.apps_of("k3") == ()
        before = len(client.calls)
        found = watch.fetch({"k1", "k2", "k3"})
    finally:
        for kernel in ("k1", "k2", "k3"):
            watch.untrack(kernel)
        watch.watcher.stop()
    assert len(client.calls) == before + 1
    assert client.calls[-1] == {
        "application_types": ("SPARK",),
        "started_time_begin": 5_000_000 - CLOCK_SKEW_MS,
    }
    assert {a.id for a in found["k1"]} == {"application_1_0001", "application_1_0003"}
    assert [a.state for a in found["k2"]] == ["FAILED"]
    assert "k3" not in found
    assert "someone-else" not in found
