"""gp-docker: Jupyter kernels in Docker containers and Docker Swarm services."""

from ._version import __version__
from .docker_provisioner import DockerProvisioner
from .stats import PollWindow, api_call_counts, measure_poll_api_calls, run_poll_bench
from .swarm_provisioner import DockerSwarmProvisioner

__all__ = [
    "DockerProvisioner",
    "DockerSwarmProvisioner",
    "PollWindow",
    "__version__",
    "api_call_counts",
    "measure_poll_api_calls",
    "run_poll_bench",
]
