"""The Jupyter Server extension of gp-provisioners-core: hands the server's EventLogger and
configuration to the provisioners.

Enabled on install (``etc/jupyter/jupyter_server_config.d/gp_provisioners_core.json`` in the
wheel).  Jupyter Server calls :func:`_load_jupyter_server_extension` once at start-up; it
creates the ``Observability`` settings with the server as their parent (so
``c.Observability.metrics_enabled`` in the server's configuration applies) and registers the
launch event schema with ``serverapp.event_logger``.  Metrics need nothing from the server:
prometheus_client's default registry is the one the server serves on ``/metrics``.
"""

from __future__ import annotations

from typing import Any

from . import launch_events, metrics
from .settings import Observability


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    """Called by Jupyter Server to find this extension."""
    return [{"module": "gp_provisioners_core.jupyter_extension"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    """Called by Jupyter Server once, while it initializes (on its main thread)."""
    settings = Observability.instance(parent=serverapp)
    event_logger = getattr(serverapp, "event_logger", None)
    if settings.events_enabled and event_logger is not None:
        launch_events.use_event_logger(event_logger)
    serverapp.log.info(
        "Gateway Provisioners observability: metrics %s, launch events %s (schema %s)",
        "on" if metrics.available() else "off",
        "on" if launch_events.active() else "off",
        launch_events.SCHEMA_ID,
    )


# Older Jupyter Server releases look for the un-prefixed name.
load_jupyter_server_extension = _load_jupyter_server_extension
