"""The conformance suite on YARN: one ResourceManager, and an HA pair that fails over while
every kernel lives.  YARN here is the REST emulator in backends/yarn_emulator.py (no real
ResourceManager can run on these machines); the kernels, launcher, yarn-api-client and the
spark-submit stand-in's REST submissions are real.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest
from backends.yarn_harness import (
    YarnBackendSetup,
    YarnConformanceBackend,
    conformance_backend,
    yarn_backend,
)
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.testing.conformance import ProvisionerConformance, RunningKernel
from gp_provisioners_core.testing.kernels import isolated_jupyter_paths

SINGLE_KERNEL = "yarn_conformance"
HA_KERNEL = "yarn_conformance_ha"


@pytest.fixture(scope="module")
def single_rm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    """One RM; the kernelspec names it with --yarn-endpoint."""
    root = tmp_path_factory.mktemp("yarn-single")
    with yarn_backend(root, ha=False) as setup, isolated_jupyter_paths(setup.jupyter_root):
        setup.install(SINGLE_KERNEL, "--yarn-endpoint", setup.endpoints[0])
        yield setup


@pytest.fixture(scope="module")
def rm_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    """An HA pair; the kernelspec names no endpoint, so yarn-site.xml's rm-ids are used."""
    root = tmp_path_factory.mktemp("yarn-ha")
    with yarn_backend(root, ha=True) as setup, isolated_jupyter_paths(setup.jupyter_root):
        setup.install(HA_KERNEL)
        yield setup


@pytest.fixture(autouse=True)
async def nothing_left(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """After every test: every application ended and no master process runs."""
    yield
    for name in ("single_rm", "rm_pair"):
        if name in request.fixturenames:
            setup: YarnBackendSetup = request.getfixturevalue(name)
            assert await setup.wait_all_stopped() == []


def use_env(monkeypatch: pytest.MonkeyPatch, setup: YarnBackendSetup) -> None:
    for name, value in setup.env().items():
        monkeypatch.setenv(name, value)
    for name in ("GP_YARN_ENDPOINT", "GP_ALT_YARN_ENDPOINT", "YARN_CONF_DIR"):
        monkeypatch.delenv(name, raising=False)


class TestYarnConformance(ProvisionerConformance):
    @pytest.fixture
    def conformance_backend(
        self, single_rm: YarnBackendSetup, monkeypatch: pytest.MonkeyPatch
    ) -> YarnConformanceBackend:
        use_env(monkeypatch, single_rm)
        return conformance_backend(single_rm, SINGLE_KERNEL)


class TestYarnHAConformance(ProvisionerConformance):
    """Every test runs with the active RM gone: it fails over right after the kernel started
    (and comes back as the standby after the test)."""

    @pytest.fixture
    def conformance_backend(
        self, rm_pair: YarnBackendSetup, monkeypatch: pytest.MonkeyPatch
    ) -> YarnConformanceBackend:
        use_env(monkeypatch, rm_pair)
        return conformance_backend(rm_pair, HA_KERNEL)

    @pytest.fixture
    async def kernel(
        self, conformance_backend: YarnConformanceBackend
    ) -> AsyncIterator[RunningKernel]:
        """The suite's kernel fixture, plus a failover once the kernel is ready."""
        pair = conformance_backend.setup.pair
        assert pair is not None
        manager = AsyncKernelManager(kernel_name=conformance_backend.kernel_name)
        await manager.start_kernel(env=conformance_backend.start_env())
        client = manager.client()
        client.start_channels()
        running = RunningKernel(manager, client, conformance_backend)
        try:
            await client.wait_for_ready(timeout=conformance_backend.launch_timeout)
            gone = pair.active
            pair.fail_over()
            assert gone is not None
            assert not gone.running
            yield running
        finally:
            running.client.stop_channels()
            if manager.has_kernel:
                await manager.shutdown_kernel(now=True)
            pair.restore_standby()
            assert pair.failovers >= 1
            assert os.environ["HADOOP_CONF_DIR"] == str(conformance_backend.setup.conf_dir)
