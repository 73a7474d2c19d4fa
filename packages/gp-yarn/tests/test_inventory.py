"""The YARN orphan inventory's pure parts: the store tag and the selection of applications."""

from __future__ import annotations

from gp_yarn.inventory import store_applications, store_tag

STORE = "0123456789abcdef"


def app(app_id: str, name: str, state: str, tags: str) -> dict[str, object]:
    return {
        "id": app_id,
        "name": name,
        "state": state,
        "applicationTags": tags,
        "startedTime": 1_700_000_000_000,
    }


def test_store_tag_only_for_a_store_id() -> None:
    assert store_tag({"KERNEL_GP_SERVER_STORE": STORE}) == f"gp-server-store-{STORE}"
    assert store_tag({}) == ""
    assert store_tag({"KERNEL_GP_SERVER_STORE": "not,hex"}) == ""


def test_only_live_applications_of_the_store_are_listed() -> None:
    tag = f"gp-server-store-{STORE}"
    apps = [
        app("application_1_0001", "kernel-a", "RUNNING", f"gp-12ab,{tag}"),
        app("application_1_0002", "kernel-b", "FINISHED", tag),
        app("application_1_0003", "kernel-c", "ACCEPTED", "gp-server-store-ffff"),
        app("application_1_0004", "kernel-d", "ACCEPTED", tag.upper()),
    ]
    found = store_applications(apps, STORE)
    assert [(r.name, r.kernel_id) for r in found] == [
        ("application_1_0001", "kernel-a"),
        ("application_1_0004", "kernel-d"),
    ]
    assert found[0].created_at == 1_700_000_000.0
