"""A YARN kernel's queue (KERNEL_YARN_QUEUE) and extra Spark options (KERNEL_EXTRA_SPARK_OPTS,
gateway_provisioners 0.5.0's name) within the operator's allow-lists, against the RM emulator
(not a real ResourceManager) and the spark-submit stand-in: the queue reaches the application
the RM holds, an allowed --conf reaches the application master's environment (the kernel), and
anything outside the allow-lists is refused naming the variable before anything is submitted."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from backends.yarn_harness import YarnBackendSetup, yarn_backend
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.errors import InvalidLaunchParameterError
from gp_provisioners_core.testing.kernels import execute, isolated_jupyter_paths

SETTINGS = {
    "GP_ALLOWED_YARN_QUEUES": "analytics",
    "GP_ALLOWED_SPARK_CONF": "spark.executor.*,spark.yarn.appMasterEnv.GP_TEST_*",
    "GP_ALLOWED_SPARK_FLAGS": "--executor-memory,--num-executors",
}


@pytest.fixture(scope="module")
def yarn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    root = tmp_path_factory.mktemp("yarn-options")
    with yarn_backend(root, ha=False) as setup, isolated_jupyter_paths(setup.jupyter_root):
        setup.cluster.queues.add("analytics")
        setup.install("options", "--yarn-endpoint", setup.endpoints[0], "--launch-timeout", "30")
        yield setup


@pytest.fixture(autouse=True)
def server_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, yarn: YarnBackendSetup) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    for name, value in {**yarn.env(), **SETTINGS}.items():
        monkeypatch.setenv(name, value)
    for name in ("GP_YARN_ENDPOINT", "GP_ALT_YARN_ENDPOINT", "GP_YARN_QUEUE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.asyncio
async def test_queue_and_allowed_options_reach_the_application(yarn: YarnBackendSetup) -> None:
    manager = AsyncKernelManager(kernel_name="options")
    await manager.start_kernel(
        env=dict(
            os.environ,
            KERNEL_USERNAME="alice",
            KERNEL_YARN_QUEUE="analytics",
            KERNEL_EXTRA_SPARK_OPTS=(
                "--conf spark.yarn.appMasterEnv.GP_TEST_COLOUR=blue --executor-memory 2g "
                "--conf=spark.executor.cores=2"
            ),
        )
    )
    try:
        [app] = yarn.cluster.apps_named(str(manager.kernel_id))
        assert app.queue == "analytics"
        client = manager.client()
        client.start_channels()
        try:
            await client.wait_for_ready(timeout=30)
            result = await execute(client, "import os; print(os.environ.get('GP_TEST_COLOUR'))")
        finally:
            client.stop_channels()
        assert result.stdout.strip() == "blue"
    finally:
        await manager.shutdown_kernel(now=True)
    assert await yarn.wait_all_stopped() == []


@pytest.mark.asyncio
async def test_without_a_request_yarn_chooses_the_queue(yarn: YarnBackendSetup) -> None:
    manager = AsyncKernelManager(kernel_name="options")
    await manager.start_kernel(env=dict(os.environ, KERNEL_USERNAME="alice"))
    try:
        [app] = yarn.cluster.apps_named(str(manager.kernel_id))
        assert app.queue == "default"
    finally:
        await manager.shutdown_kernel(now=True)
    assert await yarn.wait_all_stopped() == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("KERNEL_YARN_QUEUE", "production", "allowed queues are: analytics"),
        ("KERNEL_EXTRA_SPARK_OPTS", "--conf spark.yarn.appMasterEnv.PATH=/evil", "'spark.yarn"),
        ("KERNEL_EXTRA_SPARK_OPTS", "--proxy-user root", "'--proxy-user' is not allowed"),
        ("KERNEL_EXTRA_SPARK_OPTS", "--queue production", "'--queue' is not allowed"),
        ("KERNEL_EXTRA_SPARK_OPTS", "--executor-memory --proxy-user", "needs a value"),
        ("KERNEL_EXTRA_SPARK_OPTS", "--conf spark.executor.memory", "is not allowed"),
        ("KERNEL_EXTRA_SPARK_OPTS", "--num-executors 2 " * 40, "at most 32 options"),
    ],
)
async def test_outside_the_allow_lists_nothing_is_submitted(
    yarn: YarnBackendSetup, variable: str, value: str, named: str
) -> None:
    manager = AsyncKernelManager(kernel_name="options")
    with pytest.raises(InvalidLaunchParameterError) as refused:
        await manager.start_kernel(
            env=dict(os.environ, KERNEL_USERNAME="alice", **{variable: value})
        )
    message = str(refused.value)
    assert f"{variable}=" in message
    assert named in message
    assert str(manager.kernel_id) in message
    assert yarn.cluster.apps_named(str(manager.kernel_id)) == []
