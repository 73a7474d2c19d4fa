"""The Jupyter Server extension of gp-distributed: warms the ssh connections at start.

Enabled on install (``etc/jupyter/jupyter_server_config.d/gp_distributed.json`` in the wheel).
Jupyter Server calls :func:`_load_jupyter_server_extension` while it initializes and
:func:`_start_jupyter_server_extension` once its event loop runs; the latter starts
:func:`gp_distributed.warmup.warm_up` as a background task on the server's
``kernel_spec_manager`` and returns at once, so server start never waits for (or fails because
of) an ssh host.  ``c.SshWarmUp.enabled = False`` (or ``GP_SSH_WARM_AT_START=false``) turns
it off.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from .warmup import SshWarmUp, warm_up

_tasks: set[asyncio.Task[Any]] = set()  # running warm-ups (the loop keeps only weak references)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Called by Jupyter Server to find this extension."""
    return [{"module": "gp_distributed.jupyter_extension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Called by Jupyter Server once, while it initializes: read the setting (so a bad
    ``GP_SSH_WARM_AT_START`` fails here, naming itself) and say whether warm-up will run."""
    settings = SshWarmUp(parent=serverapp)
    serverapp.log.info(
        "gp-distributed: ssh warm-up at start %s (SshWarmUp.enabled)",
        "on" if settings.enabled else "off",
    )


async def _start_jupyter_server_extension(serverapp: Any) -> None:
    """Called by Jupyter Server once its event loop runs: start the warm-up in the background."""
    start_warm_up(serverapp)


def start_warm_up(serverapp: Any) -> asyncio.Task[Any] | None:
    """Start :func:`warm_up` for ``serverapp``'s kernelspecs as a task of the running loop
    (None when it is off or the kernelspecs are not local, e.g. a gateway client's)."""
    if not SshWarmUp(parent=serverapp).enabled:
        return None
    specs = getattr(serverapp, "kernel_spec_manager", None)
    if specs is None or inspect.iscoroutinefunction(getattr(specs, "get_kernel_spec", None)):
        serverapp.log.debug("gp-distributed: no local kernelspecs, no ssh warm-up")
        return None
    task = asyncio.get_running_loop().create_task(_warm_up_quietly(serverapp, specs))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return task


async def _warm_up_quietly(serverapp: Any, specs: Any) -> None:
    try:
        await warm_up(specs, parent=serverapp, logger=serverapp.log)
    except Exception as err:  # noqa: BLE001 - e.g. an unreadable kernels folder: never fatal
        serverapp.log.warning("gp-distributed: the ssh warm-up stopped: %s", err)


# Older Jupyter Server releases look for the un-prefixed name.
load_jupyter_server_extension = _load_jupyter_server_extension
