"""What gp-yarn submitted to a ResourceManager, for gp-server's orphan sweep.

A kernel's application is named after its kernel id; a gp-server launch also tags it
``gp-server-store-<store id>`` (next to the launch's own tag, through ``spark.yarn.tags``), which
is how one store's applications are told from another's.  Listing is one ``GET
/ws/v1/cluster/apps`` (live applications carrying the tag); removal is the kill the provisioner
uses.  Both run off the event loop.  The ResourceManager is found as the provisioner finds it
(``GP_YARN_ENDPOINT`` / ``GP_ALT_YARN_ENDPOINT``, else yarn-site.xml under ``YARN_CONF_DIR`` /
``HADOOP_CONF_DIR``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from typing import Any

from gp_provisioners_core.inventory import BackendResource, launch_store_id

from .applications import YarnApp
from .endpoints import candidate_endpoints
from .rm_client import ResourceManagerClient, RMSettings
from .settings import YarnConfigMixin

STORE_TAG_PREFIX = "gp-server-store-"


def store_tag(env: Mapping[str, str]) -> str:
    """The application tag naming the launch's gp-server store ('' when none, or when the
    value is not a store id: hex digits only)."""
    store = launch_store_id(env)
    return STORE_TAG_PREFIX + store if store else ""


def store_applications(apps: list[dict[str, Any]], store_id: str) -> list[BackendResource]:
    """The live applications of ``store_id`` among ``apps`` (the RM's app records)."""
    wanted = STORE_TAG_PREFIX + store_id
    found = []
    for data in apps:
        app = YarnApp.from_json(data)
        if app.is_final or wanted not in app.tags:
            continue
        started = app.started_time / 1000 if app.started_time else None
        found.append(BackendResource("yarn", "application", app.id, app.name, started))
    return found


class YarnApplicationInventory:
    """Live kernel applications of one store on the configured ResourceManager."""

    name = "yarn"

    def __init__(self, store_id: str) -> None:
        self.store_id = store_id
        config = YarnConfigMixin()
        endpoints = candidate_endpoints(config.yarn_endpoint, config.alt_yarn_endpoint, os.environ)
        verify: bool | str = config.yarn_cert_bundle or True
        self.client = ResourceManagerClient.shared(
            RMSettings(
                endpoints,
                config.yarn_endpoint_security_enabled,
                verify,
                config.yarn_request_timeout,
            )
        )

    async def list_resources(self) -> list[BackendResource]:
        apps = await asyncio.to_thread(
            self.client.applications, application_types=(), started_time_begin=None
        )
        return store_applications(apps, self.store_id)

    async def remove(self, resource: Any) -> None:
        await asyncio.to_thread(self.client.kill, str(resource.name))
