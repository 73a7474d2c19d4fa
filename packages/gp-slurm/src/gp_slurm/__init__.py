"""gp-slurm: Jupyter kernels as Slurm batch jobs, submitted with sbatch or through slurmrestd."""

from ._version import __version__
from .provisioner import SlurmProvisioner

__all__ = ["SlurmProvisioner", "__version__"]
