"""Metrics and launch events, as an operator scraping /metrics and a client subscribed to the
server's events see them, for launches through the real ``RemoteProvisionerBase`` sequence (a
fake backend: the launcher's part is played by the test)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from jupyter_client.kernelspec import KernelSpec
from jupyter_events import EventLogger
from traitlets import Unicode
from traitlets.config import Configurable

from gp_provisioners_core import KernelChannel, RemoteProvisionerBase, launch_events, metrics
from gp_provisioners_core.jupyter_extension import (
    _jupyter_server_extension_points,
    _load_jupyter_server_extension,
)
from gp_provisioners_core.phases import IMAGE_PULLED, SCHEDULED
from gp_provisioners_core.protocol import LAUNCH_SECRET_ENV
from gp_provisioners_core.response_manager import ResponseManager
from gp_provisioners_core.settings import Observability

REPO = Path(__file__).resolve().parents[3]
CONNECTION_KEY = "connection-key-that-must-not-leak"


class FakeBackend(RemoteProvisionerBase):
    """Submits nothing; ``confirm_remote_startup`` plays the launcher (a listening shell port)
    and the backend (scheduled, image pulled), or fails as told."""

    backend_label = "fake"
    manager: ResponseManager
    fail_with = ""
    shell: asyncio.base_events.Server | None = None

    @property
    def response_manager(self) -> ResponseManager:
        return self.manager

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        if self.fail_with == "submit":
            self.fail_launch("the backend refused the job: no such queue")
        if self.fail_with == "long":
            self.fail_launch("x" * 5000)

    async def confirm_remote_startup(self) -> None:
        self.launch_phases.note(SCHEDULED, "node-1")
        if self.fail_with == "image":
            self.fail_launch("image gp/nope:1 not present", failure_reason="image-unavailable")
        self.launch_phases.note(IMAGE_PULLED, "gp/kernel:1")
        self.shell = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = self.shell.sockets[0].getsockname()[1]
        self.connection_info = {"ip": "127.0.0.1", "shell_port": port, "key": CONNECTION_KEY}
        self.launch_phases.complete("connection-info-received", "v2 launcher on 127.0.0.1")
        self.confirm_backend("node-1")

    def log_kernel_launch(self, cmd: list[str]) -> None:
        pass

    @property
    def has_process(self) -> bool:
        return self.shell is not None

    async def poll(self) -> int | None:
        return None

    async def send_signal(self, signum: int) -> None:
        pass

    async def kill(self, restart: bool = False) -> None:
        pass

    async def terminate(self, restart: bool = False) -> None:
        pass

    async def cleanup(self, restart: bool = False) -> None:
        if self.shell is not None:
            self.shell.close()
        await super().cleanup(restart)


class Parent(Configurable):
    """What the provisioner reads of its KernelManager."""

    kernel_name = Unicode("fake-python")


@pytest.fixture(scope="module")
def manager() -> Iterator[ResponseManager]:
    rm = ResponseManager(response_ip="127.0.0.1", response_port=0, key_size=2048)
    rm.start()
    yield rm
    rm.stop_response_manager()


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    """Launch events as a subscriber of the server's event logger receives them."""
    received: list[dict[str, Any]] = []

    async def listener(logger: EventLogger, schema_id: str, data: dict[str, Any]) -> None:
        received.append(data)

    logger = EventLogger()
    launch_events.use_event_logger(logger)
    logger.add_listener(schema_id=launch_events.SCHEMA_ID, listener=listener)
    yield received
    launch_events.use_event_logger(None)


def make(manager: ResponseManager, kernel_id: str, fail_with: str = "") -> FakeBackend:
    spec = KernelSpec(argv=["python", "{kernel_id}"], display_name="Fake", resource_dir="/x")
    provisioner = FakeBackend(kernel_id=kernel_id, kernel_spec=spec)
    provisioner.manager = manager
    provisioner.fail_with = fail_with
    return provisioner


async def launch(provisioner: FakeBackend, username: str = "alice") -> dict[str, Any]:
    """What KernelManager does: pre_launch, then launch_kernel with its answer."""
    provisioner.parent = Parent()
    env = dict(os.environ, KERNEL_USERNAME=username)
    kwargs = await provisioner.pre_launch(env=env)
    await provisioner.launch_kernel(**kwargs)
    return kwargs


def sample(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def scrape() -> str:
    return prometheus_client.generate_latest().decode()


async def settle() -> None:
    """Let the event logger's listener tasks run."""
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_a_launch_is_counted_timed_and_streamed_phase_by_phase(
    manager: ResponseManager, events: list[dict[str, Any]]
) -> None:
    labels = {"backend": "fake", "kernelspec": "fake-python"}
    before = sample("gp_kernel_launches_total", **labels, outcome="success")
    ready_before = sample(
        "gp_kernel_launch_phase_duration_seconds_count", backend="fake", phase="ready"
    )
    running_before = sample("gp_kernels_running", backend="fake")
    provisioner = make(manager, "k-ok-1")
    kwargs = await launch(provisioner)
    await settle()

    assert sample("gp_kernel_launches_total", **labels, outcome="success") == before + 1
    assert (
        sample("gp_kernel_launch_phase_duration_seconds_count", backend="fake", phase="ready")
        == ready_before + 1
    )
    assert sample("gp_kernels_running", backend="fake") == running_before + 1
    assert 'gp_kernel_launch_duration_seconds_bucket{backend="fake"' in scrape()

    mine = [e for e in events if e["kernel_id"] == "k-ok-1"]
    assert [(e["phase"], e["status"]) for e in mine] == [
        ("submitted", "done"),
        ("scheduled", "progress"),
        ("image-pulled", "progress"),
        ("connection-info-received", "done"),
        ("backend-confirmed", "done"),
        ("ready", "done"),
    ]
    assert {e["backend"] for e in mine} == {"fake"}
    assert {e["kernelspec"] for e in mine} == {"fake-python"}
    text = json.dumps(mine)
    assert CONNECTION_KEY not in text
    assert kwargs["env"][LAUNCH_SECRET_ENV] not in text
    assert "alice" not in text

    await provisioner.cleanup()
    assert sample("gp_kernels_running", backend="fake") == running_before


@pytest.mark.asyncio
async def test_a_failed_launch_is_counted_with_its_phase_and_reason(
    manager: ResponseManager, events: list[dict[str, Any]]
) -> None:
    failures = {"backend": "fake", "phase": "connection-info-received"}
    before = sample("gp_kernel_launch_failures_total", **failures, reason="image-unavailable")
    failed_before = sample(
        "gp_kernel_launches_total", backend="fake", kernelspec="fake-python", outcome="failure"
    )
    running_before = sample("gp_kernels_running", backend="fake")
    with pytest.raises(Exception, match="image gp/nope:1 not present"):
        await launch(make(manager, "k-fail-1", "image"))
    await settle()

    assert (
        sample("gp_kernel_launch_failures_total", **failures, reason="image-unavailable")
        == before + 1
    )
    assert (
        sample(
            "gp_kernel_launches_total", backend="fake", kernelspec="fake-python", outcome="failure"
        )
        == failed_before + 1
    )
    assert sample("gp_kernels_running", backend="fake") == running_before
    mine = [e for e in events if e["kernel_id"] == "k-fail-1"]
    assert [(e["phase"], e["status"]) for e in mine] == [
        ("submitted", "done"),
        ("scheduled", "progress"),
        ("connection-info-received", "failed"),
    ]
    assert mine[-1]["reason"] == "image-unavailable"
    assert "image gp/nope:1 not present" in mine[-1]["message"]


@pytest.mark.asyncio
async def test_a_refused_submission_and_a_refused_user(
    manager: ResponseManager, events: list[dict[str, Any]]
) -> None:
    submit = {"backend": "fake", "phase": "submitted", "reason": "submit-refused"}
    refused = {"backend": "fake", "phase": "pre-launch", "reason": "unauthorized"}
    submit_before = sample("gp_kernel_launch_failures_total", **submit)
    refused_before = sample("gp_kernel_launch_failures_total", **refused)
    with pytest.raises(Exception, match="no such queue"):
        await launch(make(manager, "k-fail-2", "submit"))
    with pytest.raises(Exception, match="not authorized"):
        await launch(make(manager, "k-refused-1"), "root")
    await settle()
    assert sample("gp_kernel_launch_failures_total", **submit) == submit_before + 1
    assert sample("gp_kernel_launch_failures_total", **refused) == refused_before + 1
    assert sample(
        "gp_kernel_launches_total", backend="fake", kernelspec="fake-python", outcome="refused"
    )
    refusal = [e for e in events if e["kernel_id"] == "k-refused-1"]
    assert [(e["phase"], e["status"], e["reason"]) for e in refusal] == [
        ("pre-launch", "failed", "unauthorized")
    ]
    assert "'root' is not authorized" in refusal[0]["message"]  # as the REST answer says


@pytest.mark.asyncio
async def test_long_messages_are_cut_and_unknown_reasons_stay_bounded(
    manager: ResponseManager, events: list[dict[str, Any]]
) -> None:
    with pytest.raises(Exception, match=r"x{100}"):
        await launch(make(manager, "k-long", "long"))
    await settle()
    failed = [e for e in events if e["kernel_id"] == "k-long"][-1]
    assert failed["status"] == "failed"
    assert len(failed["message"]) == 500
    assert failed["message"].endswith("...")
    metrics.launch_ended("fake", "fake-python", "failure", 1.0, phase="submitted", reason="weird")
    metrics.response_rejected("something-new")
    text = scrape()
    assert 'reason="weird"' not in text
    assert 'reason="something-new"' not in text
    assert 'gp_response_rejections_total{reason="other"}' in text


@pytest.mark.asyncio
async def test_a_refused_response_message_is_counted_by_reason(manager: ResponseManager) -> None:
    before = sample("gp_response_rejections_total", reason="malformed")
    host, port = manager.response_address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"not base64 json\n")
    await writer.drain()
    assert json.loads(await reader.readline())["reason"] == "malformed"
    writer.close()
    assert sample("gp_response_rejections_total", reason="malformed") == before + 1


@pytest.mark.asyncio
async def test_metrics_off_records_nothing(
    manager: ResponseManager, events: list[dict[str, Any]]
) -> None:
    settings = Observability.instance()
    settings.metrics_enabled = False
    try:
        key = {"backend": "fake", "kernelspec": "fake-python", "outcome": "success"}
        launched = sample("gp_kernel_launches_total", **key)
        provisioner = make(manager, "k-off-1")
        await launch(provisioner)
        await provisioner.cleanup()
        assert sample("gp_kernel_launches_total", **key) == launched
        await settle()
        assert [e["phase"] for e in events if e["kernel_id"] == "k-off-1"][-1] == "ready"
    finally:
        settings.metrics_enabled = True


def test_without_prometheus_client_launch_phases_still_work() -> None:
    """A core installed without prometheus_client: metrics are no-ops, phases still log."""
    script = """
import logging, sys
sys.modules["prometheus_client"] = None  # what a missing package looks like to import
from gp_provisioners_core import metrics
from gp_provisioners_core.errors import LaunchFailedError
from gp_provisioners_core.phases import LaunchPhases
phases = LaunchPhases("k-1", logging.getLogger("t"), backend="local", kernelspec="py")
phases.complete("submitted")
phases.fail(LaunchFailedError("boom", phase="connection-info-received"))
metrics.api_request("local", "ssh")
metrics.kernel_running("local", 1)
print("available", metrics.available())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "available False"


def test_the_published_schema_is_the_shipped_one_and_registers() -> None:
    shipped = launch_events.schema()
    published = json.loads((REPO / "docs" / "schemas" / "kernel-launch-v1.json").read_text())
    assert published == shipped
    assert shipped["$id"] == launch_events.SCHEMA_ID
    assert shipped["version"] == launch_events.SCHEMA_VERSION
    logger = EventLogger()
    logger.register_event_schema(launch_events.schema_path())
    assert launch_events.SCHEMA_ID in logger.schemas.schema_ids


def test_the_server_extension_hands_over_the_event_logger() -> None:
    class Log:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def info(self, text: str, *args: Any) -> None:
            self.lines.append(text % args)

    class ServerApp(Configurable):
        def __init__(self) -> None:
            super().__init__()
            self.event_logger = EventLogger()
            self.log = Log()

    assert _jupyter_server_extension_points() == [
        {"module": "gp_provisioners_core.jupyter_extension"}
    ]
    app = ServerApp()
    Observability.clear_instance()
    try:
        _load_jupyter_server_extension(app)
        assert launch_events.active()
        assert launch_events.SCHEMA_ID in app.event_logger.schemas.schema_ids
        assert "launch events on" in app.log.lines[0]
    finally:
        launch_events.use_event_logger(None)
        Observability.clear_instance()


def test_the_installed_package_enables_the_extension() -> None:
    """What pip install put into the environment's Jupyter configuration."""
    config_d = Path(sys.prefix, "etc", "jupyter", "jupyter_server_config.d")
    config = config_d / "gp_provisioners_core.json"
    enabled = json.loads(config.read_text())["ServerApp"]["jpserver_extensions"]
    assert enabled == {"gp_provisioners_core.jupyter_extension": True}


@pytest.fixture(autouse=True)
async def _no_leftover_tasks() -> AsyncIterator[None]:
    yield
    await settle()


def test_the_grafana_dashboard_queries_only_metrics_we_export() -> None:
    dashboard = json.loads(
        (REPO / "docs" / "operators" / "grafana" / "gp-provisioners-dashboard.json").read_text()
    )
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert metrics.available()
    exported = {
        sample.name
        for family in prometheus_client.REGISTRY.collect()
        if family.name.startswith("gp_")
        for sample in family.samples
    } | {f"{family.name}_total" for family in prometheus_client.REGISTRY.collect()}
    used = set(re.findall(r"\bgp_[a-z_]+", " ".join(queries)))
    assert used, "the dashboard queries nothing"
    assert used <= exported, used - exported
    for query in queries:
        assert "kernel_id" not in query


@pytest.mark.asyncio
async def test_an_unreachable_comm_port_is_counted() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    before = sample("gp_comm_port_rejections_total", reason="unreachable")
    channel = KernelChannel("k-comm", "127.0.0.1", port, "key", timeout=5)
    assert not await channel.is_alive()
    assert sample("gp_comm_port_rejections_total", reason="unreachable") == before + 1
