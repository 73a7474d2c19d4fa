"""Launch behaviour a user notices, on the local path with real kernels: errors that name the
bad value, fail-fast and timeout errors that name the phase, launch phases, CurveZMQ, and
legacy (v1) launchers."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq
from jupyter_client.manager import AsyncKernelManager

from gp_distributed.local_process import pid_is_running
from gp_distributed.provisioner import DistributedProvisioner
from gp_provisioners_core import (
    InvalidLaunchParameterError,
    KernelSpecConfigError,
    LaunchFailedError,
    LaunchTimeoutError,
)
from gp_provisioners_core.launchers import python_launcher
from gp_provisioners_core.testing import execute, isolated_jupyter_paths, provisioner_of

LAUNCHER_ARGS = [
    "--kernel-id",
    "{kernel_id}",
    "--port-range",
    "{port_range}",
    "--response-address",
    "{response_address}",
    "--public-key",
    "{public_key}",
]


@pytest.fixture(scope="module")
def kernels_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with isolated_jupyter_paths(tmp_path_factory.mktemp("jupyter")) as root:
        folder = root / "share" / "jupyter" / "kernels"
        folder.mkdir(parents=True)
        yield folder


@pytest.fixture(autouse=True)
def _loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")


def make_spec(
    kernels_dir: Path,
    *,
    config: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    extra_args: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> str:
    name = f"spec-{uuid.uuid4().hex[:8]}"
    spec = {
        "argv": argv
        or [sys.executable, str(python_launcher()), *LAUNCHER_ARGS, *(extra_args or [])],
        "display_name": f"Test {name}",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {
            "kernel_provisioner": {
                "provisioner_name": "distributed-provisioner",
                "config": config or {},
            },
            **(metadata or {}),
        },
    }
    (kernels_dir / name).mkdir()
    (kernels_dir / name / "kernel.json").write_text(json.dumps(spec))
    return name


def user_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, KERNEL_USERNAME="alice", **extra)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("port_range", "5..3", "LOWER < UPPER"),
        ("port_range", "40000..40010", "at least 1000"),
        ("launch_timeout", -1, "must be > 0"),
        ("no_such_setting", 1, "not a setting"),
        ("load_balancing_algorithm", "random", "round-robin"),
    ],
)
async def test_bad_kernelspec_config_names_key_value_and_spec(
    kernels_dir: Path, key: str, value: object, expected: str
) -> None:
    name = make_spec(kernels_dir, config={key: value})
    km = AsyncKernelManager(kernel_name=name)
    with pytest.raises(KernelSpecConfigError) as failure:
        await km.start_kernel(env=user_env())
    message = str(failure.value)
    assert key in message
    assert repr(value) in message
    assert name in message
    assert expected in message
    assert not km.has_kernel


@pytest.mark.asyncio
async def test_bad_kernel_launch_timeout_from_the_request_is_a_400(kernels_dir: Path) -> None:
    km = AsyncKernelManager(kernel_name=make_spec(kernels_dir))
    with pytest.raises(InvalidLaunchParameterError) as failure:
        await km.start_kernel(env=user_env(KERNEL_LAUNCH_TIMEOUT="soon"))
    assert failure.value.status_code == 400
    assert "'soon'" in str(failure.value)


@pytest.mark.asyncio
async def test_launcher_that_dies_fails_at_once_with_its_output(kernels_dir: Path) -> None:
    name = make_spec(kernels_dir, extra_args=["--spark-context-initialization-mode", "eager"])
    km = AsyncKernelManager(kernel_name=name)
    started = time.monotonic()
    with pytest.raises(LaunchFailedError) as failure:
        await km.start_kernel(env=user_env())
    assert time.monotonic() - started < 5
    message = str(failure.value)
    assert "phase 'connection-info-received'" in message
    assert "exited with code" in message
    assert "needs pyspark" in message


@pytest.mark.asyncio
async def test_silent_launcher_times_out_naming_the_phase_and_leaves_nothing(
    kernels_dir: Path,
) -> None:
    marker = f"gp-silent-{uuid.uuid4().hex}"
    argv = [sys.executable, "-c", f"import time; time.sleep(120)  # {marker}"]
    name = make_spec(kernels_dir, argv=argv, config={"launch_timeout": 2})
    km = AsyncKernelManager(kernel_name=name)
    with pytest.raises(LaunchTimeoutError) as failure:
        await km.start_kernel(env=user_env())
    assert "within 2s" in str(failure.value)
    assert "phase 'connection-info-received'" in str(failure.value)
    assert "submitted" in str(failure.value)  # the phase that did finish, with its time
    assert not _processes_with(marker)


@pytest.mark.asyncio
async def test_phases_are_logged_and_kept(
    kernels_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    km = AsyncKernelManager(kernel_name=make_spec(kernels_dir))
    caplog.set_level("INFO")
    await km.start_kernel(env=user_env())
    try:
        provisioner = provisioner_of(km, DistributedProvisioner)
        phases = provisioner.launch_phases.durations
        assert list(phases) == [
            "submitted",
            "connection-info-received",
            "backend-confirmed",
            "ready",
        ]
        assert all(seconds >= 0 for seconds in phases.values())
        logged = [r.getMessage() for r in caplog.records if "launch phase" in r.getMessage()]
        assert len(logged) == 4
        info = await provisioner.get_provisioner_info()
        assert info["launch_phases"]["current"] == "done"
    finally:
        await km.shutdown_kernel(now=True)


@pytest.mark.asyncio
async def test_curve_encryption_when_the_spec_asks(kernels_dir: Path) -> None:
    name = make_spec(kernels_dir, metadata={"supported_encryption": ["curve"]})
    km = AsyncKernelManager(kernel_name=name, transport_encryption="auto")
    await km.start_kernel(env=user_env())
    try:
        assert km.provisioner is not None
        info = km.provisioner.connection_info
        assert info["curve_publickey"]
        assert info["curve_secretkey"]
        assert km.curve_publickey == info["curve_publickey"].encode()
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        assert client.shell_channel.socket.getsockopt(zmq.MECHANISM) == zmq.CURVE
        assert (await execute(client, "print(6 * 7)")).stdout.strip() == "42"
        client.stop_channels()
    finally:
        await km.shutdown_kernel(now=True)


@pytest.mark.asyncio
async def test_legacy_v1_launcher_only_with_opt_in(kernels_dir: Path) -> None:
    v1 = ["--protocol-version", "1"]

    def v1_spec(config: dict[str, Any], declared: bool) -> str:
        section: dict[str, Any] = {"provisioner_name": "distributed-provisioner", "config": config}
        if declared:
            section["launcher_protocol_version"] = 1
        return make_spec(kernels_dir, extra_args=v1, metadata={"kernel_provisioner": section})

    allowed = v1_spec({"allow_legacy_launchers": True}, declared=True)
    km = AsyncKernelManager(kernel_name=allowed)
    await km.start_kernel(env=user_env())
    try:
        client = km.client()
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        assert (await execute(client, "print(6 * 7)")).stdout.strip() == "42"
        client.stop_channels()
        assert provisioner_of(km, DistributedProvisioner).legacy_launcher
    finally:
        await km.shutdown_kernel()
    # Refused without the operator's opt-in, and without the kernelspec's declaration even
    # when the operator allows legacy launchers.  The refusal is said when the launch times out
    # (a v1 payload is not trusted to end a launch early); the timeout leaves the launcher time
    # to start on a loaded machine (3 s failed once at load ~27).
    for refused in (
        v1_spec({"launch_timeout": 8}, declared=True),
        v1_spec({"launch_timeout": 8, "allow_legacy_launchers": True}, declared=False),
    ):
        km = AsyncKernelManager(kernel_name=refused)
        with pytest.raises(LaunchTimeoutError, match="legacy v1 protocol"):
            await km.start_kernel(env=user_env())


def _processes_with(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_text(errors="replace"):
                    pid = int(entry.name)
                    if pid != os.getpid() and pid_is_running(pid):
                        found.append(pid)
            except OSError:
                continue
    return found


@pytest.mark.asyncio
async def test_a_failed_launch_is_one_error_record(
    kernels_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    name = make_spec(kernels_dir, extra_args=["--spark-context-initialization-mode", "eager"])
    km = AsyncKernelManager(kernel_name=name)
    with caplog.at_level(logging.ERROR), pytest.raises(LaunchFailedError):
        await km.start_kernel(env=user_env())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [(r.pathname, r.lineno) for r in errors]  # jupyter_client's
    assert "failed in launch phase" in errors[0].getMessage()
