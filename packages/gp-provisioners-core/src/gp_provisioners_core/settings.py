"""Observability: the switches for metrics and launch events (one per process).

Configured like any Jupyter setting, in ``jupyter_server_config.py``
(``c.Observability.metrics_enabled = False``), on the command line
(``--Observability.metrics_enabled=False``) or through ``GP_METRICS_ENABLED`` /
``GP_LAUNCH_EVENTS_ENABLED``.  The server extension (:mod:`gp_provisioners_core.jupyter_extension`)
creates the instance with the server as its parent, so the server's configuration applies;
outside a server the first reader creates it from the environment.
"""

from __future__ import annotations

from traitlets import Bool, Int, default
from traitlets.config import SingletonConfigurable

from .config import env_bool


class Observability(SingletonConfigurable):
    """Whether gp provisioners record Prometheus metrics and emit launch events."""

    metrics_enabled = Bool(
        config=True,
        help="""Record Prometheus metrics (launches, phase durations, running kernels, backend
        API calls, refused messages) in prometheus_client's default registry, which Jupyter
        Server serves on /metrics (GP_METRICS_ENABLED, default true).  Without prometheus_client
        installed, metrics are off whatever this says.""",
    )

    @default("metrics_enabled")
    def _metrics_enabled_default(self) -> bool:
        return env_bool("GP_METRICS_ENABLED", True)

    events_enabled = Bool(
        config=True,
        help="""Emit each launch phase as a Jupyter event (schema
        https://gateway-provisioners.github.io/gp/events/kernel-launch/v1), which Jupyter Server
        streams on /api/events/subscribe (GP_LAUNCH_EVENTS_ENABLED, default true).  Needs the
        server extension gp_provisioners_core.jupyter_extension (enabled on install).""",
    )

    @default("events_enabled")
    def _events_enabled_default(self) -> bool:
        return env_bool("GP_LAUNCH_EVENTS_ENABLED", True)

    event_detail_limit = Int(
        500,
        config=True,
        help="Longest text (characters) of a launch event's detail or message; longer is cut.",
    )


__all__ = ["Observability"]
