"""YARN launches end to end against the RM emulator (not a real ResourceManager): fail-fast
with YARN's diagnostics, ACCEPTED applications, impersonation, what run.sh receives, endpoint
settings and failover while a kernel lives.  Every test checks that nothing is left running.
"""

from __future__ import annotations

import asyncio
import getpass
import importlib.util
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from backends.yarn_harness import YarnBackendSetup, yarn_backend
from jupyter_client.manager import AsyncKernelManager

from gp_provisioners_core.errors import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchFailedError,
    LaunchTimeoutError,
    UnauthorizedUserError,
)
from gp_provisioners_core.testing.kernels import execute, isolated_jupyter_paths

USER = "alice"


@pytest.fixture(scope="module")
def yarn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    root = tmp_path_factory.mktemp("yarn-launch")
    with yarn_backend(root, ha=False) as setup, isolated_jupyter_paths(setup.jupyter_root):
        endpoint = ["--yarn-endpoint", setup.endpoints[0]]
        setup.install("plain", *endpoint, "--launch-timeout", "30")
        setup.install("bad_queue", *endpoint, "--extra-spark-opts", "--queue nope")
        setup.install("bad_python", *endpoint, "--python", "/nonexistent/bin/python")
        setup.install("no_spark", *endpoint, "--spark-home", "/nonexistent/spark")
        setup.install("impersonating", *endpoint, "--impersonation-enabled")
        setup.install("secured", *endpoint, "--yarn-endpoint-security-enabled=true")
        setup.install("r_kernel", *endpoint, "--language", "R")
        yield setup


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YarnBackendSetup]:
    root = tmp_path_factory.mktemp("yarn-pair")
    with yarn_backend(root, ha=True) as setup, isolated_jupyter_paths(setup.jupyter_root):
        rm1, rm2 = setup.endpoints
        setup.install("pair", "--yarn-endpoint", rm1, "--alt-yarn-endpoint", rm2)
        yield setup


@pytest.fixture(autouse=True)
def server_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    monkeypatch.setenv("GP_YARN_STATUS_INTERVAL", "1")
    monkeypatch.setenv("GP_YARN_ACCEPTED_REPORT_AFTER", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # run.sh's properties file lands here
    for name in ("GP_YARN_ENDPOINT", "GP_ALT_YARN_ENDPOINT", "GP_IMPERSONATION_ENABLED"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
async def nothing_left(
    request: pytest.FixtureRequest,
) -> AsyncIterator[None]:
    """After every test: every application ended and no master process runs."""
    yield
    for name in ("yarn", "pair"):
        if name in request.fixturenames:
            setup: YarnBackendSetup = request.getfixturevalue(name)
            assert await setup.wait_all_stopped() == []


def env_for(setup: YarnBackendSetup, **extra: str) -> dict[str, str]:
    return {**os.environ, **setup.env(), "KERNEL_USERNAME": USER, **extra}


@pytest.fixture
async def managers() -> AsyncIterator[list[AsyncKernelManager]]:
    started: list[AsyncKernelManager] = []
    yield started
    for manager in started:
        if manager.has_kernel:
            await manager.shutdown_kernel(now=True)


async def start(
    setup: YarnBackendSetup, managers: list[AsyncKernelManager], kernel: str, **env: str
) -> AsyncKernelManager:
    manager = AsyncKernelManager(kernel_name=kernel)
    managers.append(manager)
    await manager.start_kernel(env=env_for(setup, **env))
    return manager


async def run(manager: AsyncKernelManager, code: str) -> str:
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=30)
        return (await execute(client, code)).stdout
    finally:
        client.stop_channels()


async def expect_launch_failure(
    setup: YarnBackendSetup, kernel: str, error: type[Exception], **env: str
) -> tuple[str, float, str]:
    manager = AsyncKernelManager(kernel_name=kernel)
    started = time.monotonic()
    with pytest.raises(error) as failure:
        await manager.start_kernel(env=env_for(setup, **env))
    elapsed = time.monotonic() - started
    assert not manager.has_kernel
    return str(failure.value), elapsed, str(manager.kernel_id)


# -- fail fast ------------------------------------------------------------------------------


async def test_failed_application_ends_the_launch_with_yarn_diagnostics(
    yarn: YarnBackendSetup,
) -> None:
    yarn.cluster.fail_next("Application rejected: user alice has reached the queue's limit")
    message, elapsed, kernel_id = await expect_launch_failure(yarn, "plain", LaunchFailedError)
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert "is FAILED" in message
    assert "reached the queue's limit" in message
    assert "queue default" in message
    assert await yarn.wait_no_leftovers(kernel_id=kernel_id) == []


async def test_unknown_queue_fails_fast(yarn: YarnBackendSetup) -> None:
    message, elapsed, kernel_id = await expect_launch_failure(yarn, "bad_queue", LaunchFailedError)
    assert elapsed < 5
    assert "unknown queue: nope" in message
    assert await yarn.wait_no_leftovers(kernel_id=kernel_id) == []


async def test_crashing_application_master_fails_fast_with_its_stderr(
    yarn: YarnBackendSetup,
) -> None:
    message, elapsed, kernel_id = await expect_launch_failure(yarn, "bad_python", LaunchFailedError)
    assert elapsed < 5
    assert "exitCode: 127" in message
    assert "/nonexistent/bin/python" in message
    assert await yarn.wait_no_leftovers(kernel_id=kernel_id) == []


async def test_failing_submitter_fails_fast_with_its_output(yarn: YarnBackendSetup) -> None:
    # The RM is reachable, but spark-submit is not where SPARK_HOME says.
    message, elapsed, kernel_id = await expect_launch_failure(yarn, "no_spark", LaunchFailedError)
    assert elapsed < 5
    assert "the submitter exited with code 127" in message
    assert "/nonexistent/spark/bin/spark-submit" in message
    assert yarn.cluster.apps_named(kernel_id) == []


async def test_accepted_application_reports_queue_and_reason_and_times_out(
    yarn: YarnBackendSetup, caplog: pytest.LogCaptureFixture
) -> None:
    reason = "Queue's AM resource limit exceeded. Details : AM Partition = <DEFAULT_PARTITION>"
    yarn.cluster.hold_next_in_accepted(reason)
    caplog.set_level(logging.WARNING)
    message, elapsed, kernel_id = await expect_launch_failure(
        yarn, "plain", LaunchTimeoutError, KERNEL_LAUNCH_TIMEOUT="3"
    )
    assert 3 <= elapsed < 8
    assert "is ACCEPTED in queue default" in message
    assert reason in message
    logged = [r.getMessage() for r in caplog.records if "waits for the scheduler" in r.getMessage()]
    assert logged
    assert "queue default" in logged[0]
    assert reason in logged[0]
    (app,) = yarn.cluster.apps_named(kernel_id)
    assert yarn.cluster.wait_for_state(app.id, ("KILLED",), 5) == "KILLED"


# -- who submits, and what run.sh passes on ----------------------------------------------------


async def test_run_sh_gets_the_launch_values_and_keeps_the_secret_off_command_lines(
    yarn: YarnBackendSetup, managers: list[AsyncKernelManager], tmp_path: Path
) -> None:
    manager = await start(yarn, managers, "plain")
    assert (await run(manager, "print(6 * 7)")).strip() == "42"
    provisioner = manager.provisioner
    assert provisioner is not None
    info = await provisioner.get_provisioner_info()
    app = yarn.cluster.app(info["application_id"])
    assert app.name == manager.kernel_id
    assert app.user == getpass.getuser()  # no impersonation
    assert info["app_tag"] in app.tags
    assert app.application_type == "SPARK"
    assert app.max_attempts == 1
    assert app.queue == "default"
    env_keys = set(yarn.cluster.submitted_env_keys[app.id])
    launch_vars = {"KERNEL_ID", "KERNEL_USERNAME", "GP_LAUNCH_SECRET", "GP_TRANSPORT_ENCRYPTION"}
    assert launch_vars | {"PYSPARK_PYTHON"} <= env_keys
    assert app.environment["KERNEL_ID"] == manager.kernel_id
    assert app.environment["KERNEL_USERNAME"] == USER
    secret = app.environment["GP_LAUNCH_SECRET"]
    assert secret
    assert secret not in app.command
    assert list(tmp_path.glob("gp-yarn-*")) == []  # run.sh removed its properties file
    await manager.shutdown_kernel()
    assert await yarn.wait_no_leftovers(app.id) == []
    assert app.state == "FINISHED"


async def test_no_resource_manager_call_runs_on_the_event_loop(
    yarn: YarnBackendSetup, managers: list[AsyncKernelManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    from yarn_api_client.base import BaseYarnAPI  # type: ignore[import-untyped]

    original = BaseYarnAPI.request
    threads: list[str] = []

    def watched_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            threads.append(f"EVENT LOOP: {threading.current_thread().name}")
        except RuntimeError:
            threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BaseYarnAPI, "request", watched_request)
    yarn.cluster.fail_next("fail fast, for the kill path")
    await expect_launch_failure(yarn, "plain", LaunchFailedError)
    manager = await start(yarn, managers, "plain")
    await manager.restart_kernel(now=True)
    await manager.shutdown_kernel(now=True)
    assert threads
    assert not [name for name in threads if name.startswith("EVENT LOOP")], threads


async def test_impersonation_submits_as_the_kernel_user(
    yarn: YarnBackendSetup, managers: list[AsyncKernelManager]
) -> None:
    manager = await start(yarn, managers, "impersonating")
    kernel_id = manager.kernel_id
    (app,) = yarn.cluster.apps_named(kernel_id)
    assert app.user == USER
    await manager.shutdown_kernel(now=True)
    assert await yarn.wait_no_leftovers(app.id) == []
    assert app.state == "KILLED"


async def test_an_r_kernel_runs_as_a_yarn_application(
    yarn: YarnBackendSetup, managers: list[AsyncKernelManager]
) -> None:
    manager = await start(yarn, managers, "r_kernel")
    assert (await run(manager, "cat(6 * 7)")).strip() == "42"
    (app,) = yarn.cluster.apps_named(manager.kernel_id)
    await manager.shutdown_kernel()
    assert await yarn.wait_no_leftovers(app.id) == []
    assert app.state == "FINISHED"


async def test_refused_users_reach_no_resource_manager(yarn: YarnBackendSetup) -> None:
    since = time.monotonic()
    apps_before = len(yarn.cluster.apps())
    message, _, _ = await expect_launch_failure(
        yarn, "impersonating", UnauthorizedUserError, KERNEL_USERNAME="root"
    )
    assert "root" in message
    message, _, _ = await expect_launch_failure(
        yarn, "impersonating", InvalidLaunchParameterError, KERNEL_USERNAME="al ice"
    )
    assert "al ice" in message
    assert yarn.cluster.requests.count(since=since, method="POST") == 0
    assert len(yarn.cluster.apps()) == apps_before


async def test_security_enabled_without_the_extra_is_a_clear_error(
    yarn: YarnBackendSetup,
) -> None:
    if importlib.util.find_spec("requests_kerberos") or importlib.util.find_spec("requests_gssapi"):
        pytest.skip("a SPNEGO library is installed here")
    apps_before = len(yarn.cluster.apps())
    message, elapsed, _ = await expect_launch_failure(yarn, "secured", KernelSpecConfigError)
    assert "gp-yarn[kerberos]" in message
    assert elapsed < 2
    assert len(yarn.cluster.apps()) == apps_before


async def test_security_disabled_by_the_string_false(
    yarn: YarnBackendSetup,
    managers: list[AsyncKernelManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GP_YARN_ENDPOINT_SECURITY_ENABLED", "false")  # the old code read: true
    manager = await start(yarn, managers, "plain")
    assert manager.provisioner is not None
    assert manager.provisioner.yarn_endpoint_security_enabled is False  # type: ignore[attr-defined]
    await manager.shutdown_kernel(now=True)


# -- the HA pair from kernel.json's endpoints, and failover ----------------------------------


async def test_failover_while_the_kernel_lives(
    pair: YarnBackendSetup, managers: list[AsyncKernelManager]
) -> None:
    assert pair.pair is not None
    manager = await start(pair, managers, "pair")
    assert (await run(manager, "x = 6 * 7")) == ""
    provisioner = manager.provisioner
    assert provisioner is not None
    app_id = (await provisioner.get_provisioner_info())["application_id"]
    old = pair.pair.active
    new = pair.pair.fail_over()
    assert old is not None
    assert old is not new
    since = time.monotonic()
    for _ in range(30):  # 3 s: the status watcher meets the dead RM and finds the other one
        assert await manager.is_alive()
        await asyncio.sleep(0.1)
    assert pair.cluster.requests.count(server=new.name, path="/ws/v1/cluster/apps", since=since)
    assert (await run(manager, "print(x)")).strip() == "42"
    await manager.shutdown_kernel(now=True)
    state_path = f"/ws/v1/cluster/apps/{app_id}/state"
    assert pair.cluster.requests.count(server=new.name, method="PUT", path=state_path) == 1
    assert await pair.wait_no_leftovers(app_id) == []
    assert pair.cluster.app(app_id).state == "KILLED"
    pair.pair.restore_standby()
