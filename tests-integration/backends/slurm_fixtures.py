"""pytest fixtures of the gp-slurm suites: a real Slurm cluster and kernelspecs using it.

Registered for every suite by ``pytest_plugins`` in ``tests-integration/conftest.py``.
``slurm_kernelspecs`` installs two kernelspecs with ``jupyter-slurm-spec install --prefix``
(one submitting with sbatch, one through slurmrestd with a JWT from a token file) and sets, for
the session, the environment the provisioner and the response manager read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.slurm import SlurmCluster, slurm_available
from backends.slurm_kernels import SlurmKernelspecs, install_kernelspecs, kernelspec_environment
from backends.system_packages import cannot_run


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """munged + slurmctld + slurmd + slurmrestd on 127.0.0.1; fails without Slurm."""
    reason = slurm_available()
    if reason:
        cannot_run(f"the Slurm suites need a real Slurm: {reason}")
    cluster = SlurmCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def installed_slurm_kernelspecs(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SlurmKernelspecs, Path]:
    """Kernelspecs ``gp_slurm_cli`` (sbatch) and ``gp_slurm_rest`` (slurmrestd), installed once
    with ``jupyter-slurm-spec install --prefix``; partitions short and nosuchpartition allowed."""
    root = tmp_path_factory.mktemp("slurm-jupyter")
    return install_kernelspecs(slurm_cluster, root), root


@pytest.fixture
def slurm_kernelspecs(
    installed_slurm_kernelspecs: tuple[SlurmKernelspecs, Path],
) -> Iterator[SlurmKernelspecs]:
    """The Slurm kernelspecs, visible (``JUPYTER_PATH``) for the one test that asks.

    Set per test rather than for the session: a fixture of another suite that saved and
    restores the environment around its own block (entered before this one was first made)
    would otherwise erase the path, and every later Slurm test found no kernelspec."""
    specs, root = installed_slurm_kernelspecs
    with kernelspec_environment(root):
        yield specs
