"""gp-server: a Jupyter Server extension that keeps remote kernels across server restarts.

Installing the package enables the extension (``jupyter_server_config.d/gp_server.json``); it
acts when the server's kernel manager is :class:`PersistentKernelManager`
(``c.ServerApp.kernel_manager_class = "gp_server.PersistentKernelManager"``).
"""

from __future__ import annotations

from typing import Any

from ._version import __version__
from .manager import PersistentKernelManager
from .pool import PoolingKernelManager


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "gp_server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Called by Jupyter Server while it initializes: say whether persistence is on."""
    if isinstance(serverapp.kernel_manager, PersistentKernelManager):
        serverapp.log.info("gp_server %s: remote kernels survive server restarts", __version__)
        if isinstance(serverapp.kernel_manager, PoolingKernelManager):
            from .pool_handlers import add_pool_handlers

            add_pool_handlers(serverapp)
        return
    serverapp.log.warning(
        "gp_server %s is enabled but the kernel manager is %s.%s, so kernels are not recorded. "
        'Set c.ServerApp.kernel_manager_class = "gp_server.PersistentKernelManager" '
        "(or --ServerApp.kernel_manager_class=gp_server.PersistentKernelManager).",
        __version__,
        type(serverapp.kernel_manager).__module__,
        type(serverapp.kernel_manager).__qualname__,
    )


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    """Called by Jupyter Server once its event loop runs: re-attach the recorded kernels."""
    manager = serverapp.kernel_manager
    if isinstance(manager, PersistentKernelManager):
        await manager.start_persistence()


__all__ = ["PersistentKernelManager", "PoolingKernelManager", "__version__"]
