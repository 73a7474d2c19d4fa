"""The conformance suite over a real Slurm cluster, once through sbatch and once through
slurmrestd (JWT): every kernel is a batch job running our launcher and a real ipykernel."""

from __future__ import annotations

import pytest
from backends.slurm_kernels import SlurmConformanceBackend, SlurmKernelspecs

from gp_provisioners_core.testing import ProvisionerConformance


class TestSlurmCliConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, slurm_kernelspecs: SlurmKernelspecs) -> SlurmConformanceBackend:
        return SlurmConformanceBackend(
            kernel_name=slurm_kernelspecs.cli, cluster=slurm_kernelspecs.cluster
        )


class TestSlurmRestConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, slurm_kernelspecs: SlurmKernelspecs) -> SlurmConformanceBackend:
        return SlurmConformanceBackend(
            kernel_name=slurm_kernelspecs.rest, cluster=slurm_kernelspecs.cluster
        )
