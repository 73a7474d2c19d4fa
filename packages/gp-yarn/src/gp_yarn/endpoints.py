"""Where the ResourceManager is: the configured endpoints, or yarn-site.xml.

Pure functions, no network.  :func:`candidate_endpoints` returns the RM web addresses to try, in
order: ``yarn_endpoint`` then ``alt_yarn_endpoint`` when configured (``GP_YARN_ENDPOINT``,
``GP_ALT_YARN_ENDPOINT`` or a kernelspec's config), else the ResourceManager(s) named in
``yarn-site.xml`` under ``YARN_CONF_DIR`` / ``HADOOP_CONF_DIR`` (every rm-id of an HA pair).
Which of them is active is decided by the client (``rm_client.py``) by asking each for its
``haState``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_CONF_DIR = "/etc/hadoop/conf"
HTTP_PORT = 8088
HTTPS_PORT = 8090
_VARIABLE = re.compile(r"\$\{([^}$\s]+)\}")


class EndpointConfigError(ValueError):
    """The endpoints cannot be determined; the message names the setting or file at fault."""


def normalize_endpoint(text: str, default_scheme: str = "http") -> str:
    """``scheme://host[:port]`` from an endpoint as operators write it.

    Accepts ``host:port``, ``http://host:port`` and the old default form with a path
    (``http://host:8088/ws/v1/cluster``): the path is dropped, as yarn-api-client drops it.
    Raises :class:`EndpointConfigError` naming the value when it is not an http(s) address.
    """
    raw = str(text).strip()
    candidate = raw if "://" in raw else f"{default_scheme}://{raw}"
    parts = urlsplit(candidate)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise EndpointConfigError(
            f"YARN endpoint {text!r} is not an address of the form http(s)://host[:port]"
        )
    host = parts.hostname
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{f':{port}' if port else ''}"


def conf_dir(env: Mapping[str, str]) -> Path:
    """The Hadoop configuration folder: ``YARN_CONF_DIR``, ``HADOOP_CONF_DIR`` or the default
    (the order yarn-api-client and Hadoop's scripts use)."""
    return Path(env.get("YARN_CONF_DIR") or env.get("HADOOP_CONF_DIR") or DEFAULT_CONF_DIR)


def read_yarn_site(path: Path) -> dict[str, str]:
    """The properties of a ``yarn-site.xml``, with ``${name}`` references to other properties
    expanded (as Hadoop's Configuration does for the common ``${yarn.resourcemanager.hostname}``
    form).  Raises :class:`EndpointConfigError` naming the file when it cannot be read."""
    try:
        root = ET.parse(path).getroot()  # noqa: S314 - the operator's own configuration file
    except (OSError, ET.ParseError) as err:
        raise EndpointConfigError(f"Cannot read {path}: {err}") from err
    props: dict[str, str] = {}
    for prop in root.iter("property"):
        name, value = prop.findtext("name"), prop.findtext("value")
        if name and value is not None:
            props[name.strip()] = value.strip()
    return {name: _expand(value, props) for name, value in props.items()}


def _expand(value: str, props: Mapping[str, str]) -> str:
    for _ in range(20):  # Hadoop's own limit on nested substitutions is of this order
        expanded = _VARIABLE.sub(lambda m: props.get(m.group(1), m.group(0)), value)
        if expanded == value:
            break
        value = expanded
    return value


def endpoints_from_yarn_site(
    props: Mapping[str, str], source: str = "yarn-site.xml"
) -> tuple[str, ...]:
    """The web addresses of the ResourceManager(s) configured in ``props``.

    With HA (``yarn.resourcemanager.ha.rm-ids``), one address per rm-id, from
    ``yarn.resourcemanager.webapp[.https].address.<id>`` or ``yarn.resourcemanager.hostname.<id>``
    with the default port; ``yarn.http.policy=HTTPS_ONLY`` selects the https addresses.
    """
    https = props.get("yarn.http.policy", "HTTP_ONLY").strip().upper() == "HTTPS_ONLY"
    key = (
        "yarn.resourcemanager.webapp.https.address"
        if https
        else "yarn.resourcemanager.webapp.address"
    )
    scheme, port = ("https", HTTPS_PORT) if https else ("http", HTTP_PORT)
    rm_ids = [i.strip() for i in props.get("yarn.resourcemanager.ha.rm-ids", "").split(",")]
    rm_ids = [i for i in rm_ids if i]
    ha_flag = props.get("yarn.resourcemanager.ha.enabled", "").strip().lower()
    use_ha = bool(rm_ids) and ha_flag != "false"
    if ha_flag == "true" and not rm_ids:
        raise EndpointConfigError(
            f"{source}: yarn.resourcemanager.ha.enabled is true but yarn.resourcemanager.ha.rm-ids "
            "is empty"
        )

    def address(suffix: str) -> str:
        explicit = props.get(f"{key}{suffix}", "")
        if explicit:
            return explicit
        hostname = props.get(f"yarn.resourcemanager.hostname{suffix}", "")
        return f"{hostname}:{port}" if hostname else ""

    suffixes = [f".{rm_id}" for rm_id in rm_ids] if use_ha else [""]
    found = []
    for suffix in suffixes:
        value = address(suffix)
        if not value:
            raise EndpointConfigError(
                f"{source}: neither {key}{suffix} nor yarn.resourcemanager.hostname{suffix} is set"
            )
        try:
            found.append(normalize_endpoint(value, scheme))
        except EndpointConfigError as err:
            raise EndpointConfigError(f"{source}: {key}{suffix}: {err}") from None
    return tuple(found)


def candidate_endpoints(primary: str, alternate: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """The ResourceManager web addresses to try, in order (see the module docstring)."""
    if primary.strip():
        found = [normalize_endpoint(primary)]
        if alternate.strip():
            found.append(normalize_endpoint(alternate))
        return tuple(dict.fromkeys(found))
    if alternate.strip():
        raise EndpointConfigError(
            f"alt_yarn_endpoint ({alternate!r}) is set without yarn_endpoint: set both "
            "(GP_YARN_ENDPOINT, GP_ALT_YARN_ENDPOINT) or neither, to use yarn-site.xml"
        )
    path = conf_dir(env) / "yarn-site.xml"
    if not path.is_file():
        raise EndpointConfigError(
            "No ResourceManager is configured: set yarn_endpoint (GP_YARN_ENDPOINT), or "
            f"HADOOP_CONF_DIR to a folder holding yarn-site.xml (looked for {path})"
        )
    return endpoints_from_yarn_site(read_yarn_site(path), str(path))
