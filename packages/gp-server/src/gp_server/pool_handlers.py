"""``GET /api/gp/pools``: the state of the warm kernel pools, for operators.

Registered by the extension when the kernel manager is a ``PoolingKernelManager``.  Answers
``PoolingKernelManager.pool_stats()`` as JSON: every pool (kernelspec, identity digest prefix,
user, size, ready, starting, claims served, refills, last refill seconds), misses per
kernelspec and totals.  Behind Jupyter Server's authentication and its ``kernels`` permission.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

POOLS_PATH = "/api/gp/pools"


class PoolsHandler(APIHandler):
    auth_resource = "kernels"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        manager: Any = self.kernel_manager  # a PoolingKernelManager (see add_pool_handlers)
        self.finish(json.dumps(manager.pool_stats()))


def add_pool_handlers(serverapp: Any) -> None:
    """Called by ``gp_server._load_jupyter_server_extension``."""
    path = url_path_join(serverapp.web_app.settings["base_url"], POOLS_PATH)
    serverapp.web_app.add_handlers(".*$", [(path, PoolsHandler)])
