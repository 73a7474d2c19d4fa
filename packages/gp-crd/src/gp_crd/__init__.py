"""gp-crd: Jupyter kernels as Kubernetes custom resources (the Spark operator's
SparkApplication), watched through one shared watch per kind."""

from ._version import __version__
from .provisioner import CustomResourceProvisioner, SparkOperatorProvisioner

__all__ = ["CustomResourceProvisioner", "SparkOperatorProvisioner", "__version__"]
