"""gp-distributed: kernels on a pool of plain hosts (this machine, or over ssh)."""

from ._version import __version__
from .provisioner import DistributedProvisioner

__all__ = ["DistributedProvisioner", "__version__"]
