"""The conformance suite on kernels claimed from a warm pool (docs/operators/pools.md), over
ssh to the sshd hosts: a pooled kernel re-keyed to the requested id must interrupt, restart,
shut down, be detected dead and re-attach from another process like any kernel."""

from __future__ import annotations

import pytest
from backends.ssh_fixtures import SshBackend, SshKernelspec

from gp_provisioners_core.testing.pool_conformance import PooledProvisionerConformance


class TestSshPooledConformance(PooledProvisionerConformance):
    @pytest.fixture
    def conformance_backend(self, ssh_kernelspec: SshKernelspec) -> SshBackend:
        return SshBackend(kernel_name=ssh_kernelspec.kernel_name, launch_timeout=120)
