"""Endpoint resolution: configured endpoints, or yarn-site.xml (HA rm-ids, https, ${...})."""

from __future__ import annotations

from pathlib import Path

import pytest

from gp_yarn.endpoints import (
    EndpointConfigError,
    candidate_endpoints,
    endpoints_from_yarn_site,
    normalize_endpoint,
    read_yarn_site,
)


def yarn_site(folder: Path, **props: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"<property><name>{k.replace('__', '.')}</name><value>{v}</value></property>"
        for k, v in props.items()
    )
    path = folder / "yarn-site.xml"
    path.write_text(f'<?xml version="1.0"?><configuration>{body}</configuration>')
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rm1:8088", "http://rm1:8088"),
        ("http://rm1:8088/ws/v1/cluster", "http://rm1:8088"),
        (" https://rm1.example.com:8090 ", "https://rm1.example.com:8090"),
        ("http://[::1]:8088", "http://[::1]:8088"),
        ("http://rm1", "http://rm1"),
    ],
)
def test_normalize_endpoint(text: str, expected: str) -> None:
    assert normalize_endpoint(text) == expected


@pytest.mark.parametrize("text", ["", "ftp://rm1:21", "http://rm1:99999", "http://:8088"])
def test_bad_endpoints_are_named(text: str) -> None:
    with pytest.raises(EndpointConfigError, match="is not an address"):
        normalize_endpoint(text)


def test_configured_endpoints_come_first_and_need_a_primary() -> None:
    assert candidate_endpoints("rm1:8088", "rm2:8088", {}) == ("http://rm1:8088", "http://rm2:8088")
    assert candidate_endpoints("rm1:8088", "", {}) == ("http://rm1:8088",)
    with pytest.raises(EndpointConfigError, match=r"alt_yarn_endpoint .* without yarn_endpoint"):
        candidate_endpoints("", "rm2:8088", {})


def test_single_rm_from_yarn_site(tmp_path: Path) -> None:
    yarn_site(tmp_path, yarn__resourcemanager__webapp__address="rm.example.com:8188")
    env = {"HADOOP_CONF_DIR": str(tmp_path)}
    assert candidate_endpoints("", "", env) == ("http://rm.example.com:8188",)


def test_hostname_only_uses_the_default_port(tmp_path: Path) -> None:
    yarn_site(tmp_path, yarn__resourcemanager__hostname="rm.example.com")
    assert candidate_endpoints("", "", {"YARN_CONF_DIR": str(tmp_path)}) == (
        "http://rm.example.com:8088",
    )


def test_ha_rm_ids_with_expansion(tmp_path: Path) -> None:
    yarn_site(
        tmp_path,
        yarn__resourcemanager__ha__enabled="true",
        yarn__resourcemanager__ha__rm_ids="rm1, rm2",
        yarn__resourcemanager__hostname__rm1="a.example.com",
        yarn__resourcemanager__hostname__rm2="b.example.com",
        yarn__resourcemanager__webapp__address__rm1="${yarn.resourcemanager.hostname.rm1}:8088",
    )
    text = (tmp_path / "yarn-site.xml").read_text().replace("rm_ids", "rm-ids")
    (tmp_path / "yarn-site.xml").write_text(text)
    assert candidate_endpoints("", "", {"HADOOP_CONF_DIR": str(tmp_path)}) == (
        "http://a.example.com:8088",
        "http://b.example.com:8088",
    )


def test_https_only_policy() -> None:
    props = {
        "yarn.http.policy": "HTTPS_ONLY",
        "yarn.resourcemanager.ha.rm-ids": "x",
        "yarn.resourcemanager.webapp.https.address.x": "rm:8090",
    }
    assert endpoints_from_yarn_site(props) == ("https://rm:8090",)


def test_ha_disabled_ignores_rm_ids() -> None:
    props = {
        "yarn.resourcemanager.ha.enabled": "false",
        "yarn.resourcemanager.ha.rm-ids": "rm1,rm2",
        "yarn.resourcemanager.webapp.address": "solo:8088",
    }
    assert endpoints_from_yarn_site(props) == ("http://solo:8088",)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"yarn.resourcemanager.ha.enabled": "true"}, "rm-ids is empty"),
        ({"yarn.resourcemanager.ha.rm-ids": "rm1"}, "webapp.address.rm1 nor"),
        ({}, "neither yarn.resourcemanager.webapp.address nor"),
        ({"yarn.resourcemanager.webapp.address": "rm:port"}, "is not an address"),
    ],
)
def test_incomplete_yarn_site_is_named(props: dict[str, str], message: str) -> None:
    with pytest.raises(EndpointConfigError, match=message):
        endpoints_from_yarn_site(props, "/etc/hadoop/conf/yarn-site.xml")


def test_missing_and_broken_yarn_site(tmp_path: Path) -> None:
    with pytest.raises(EndpointConfigError, match=r"set yarn_endpoint .*GP_YARN_ENDPOINT"):
        candidate_endpoints("", "", {"HADOOP_CONF_DIR": str(tmp_path)})
    (tmp_path / "yarn-site.xml").write_text("<configuration><property>")
    with pytest.raises(EndpointConfigError, match="Cannot read"):
        read_yarn_site(tmp_path / "yarn-site.xml")
