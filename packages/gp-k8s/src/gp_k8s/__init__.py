"""gp-k8s: Jupyter kernels in Kubernetes pods, watched through one shared pod watch."""

from ._version import __version__
from .client import api_request_count
from .provisioner import KubernetesProvisioner

__all__ = ["KubernetesProvisioner", "__version__", "api_request_count"]
