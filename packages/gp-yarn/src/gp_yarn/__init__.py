"""gp-yarn: Jupyter kernels as Hadoop YARN applications (Spark in cluster mode)."""

from ._version import __version__
from .provisioner import YarnProvisioner

__all__ = ["YarnProvisioner", "__version__"]
