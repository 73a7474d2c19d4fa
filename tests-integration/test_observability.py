"""Metrics on /metrics and launch events on /api/events/subscribe, from a real Jupyter Server
launching real kernels on two backends: a local Python kernel (gp-distributed, succeeds) and a
Docker kernel whose image is missing (gp-docker on a private dockerd, fails at submission).

What an operator scraping /metrics and a client subscribed to the server's events see must
match what happened: one success and one failure, each phase once, with the same durations the
events report, and the failure's phase and reason.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import dockerd
from backends.system_packages import cannot_run
from jupyter_server_helpers import TOKEN, Server, start_server, stop_server, wait_until_gone
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from gp_distributed.cli import main as install_distributed_spec
from gp_docker.cli import main as install_docker_spec
from gp_provisioners_core.launch_events import SCHEMA_ID
from gp_provisioners_core.testing import isolated_jupyter_paths

LOCAL = "obs_local_python"
MISSING = "obs_docker_missing_image"
MISSING_IMAGE = "gp/does-not-exist:0.1"
PHASES = ("submitted", "connection-info-received", "backend-confirmed", "ready")
BOUND = 120.0  # seconds an answer may take before the test gives up (a bound, not a check)


@pytest.fixture(scope="module")
def daemon() -> Iterator[dockerd.DockerDaemon]:
    """A private dockerd without any image: the Docker launch must fail on the missing image."""
    reason = dockerd.dockerd_available()
    if reason:
        cannot_run(f"the failing backend needs a private dockerd: {reason}")
    running = dockerd.DockerDaemon().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(
    daemon: dockerd.DockerDaemon, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("jupyter")
    with isolated_jupyter_paths(root) as prefix:
        where = ["install", "--prefix", str(prefix)]
        install_distributed_spec([*where, "--kernel-name", LOCAL])
        docker_spec = ["--kernel-name", MISSING, "--image-name", MISSING_IMAGE]
        install_docker_spec([*where, *docker_spec, "--launch-timeout", "60"])
        running = start_server(root, root / "server.log", env={"DOCKER_HOST": daemon.base_url})
        yield running
        stop_server(running)


async def subscribe(server: Server) -> WebSocketClientConnection:
    url = server.url.replace("http", "ws") + "/api/events/subscribe"
    request = HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"})
    return await websocket_connect(request)


async def read_launch_events(
    connection: WebSocketClientConnection, ok_kernel: str
) -> dict[str, list[dict[str, Any]]]:
    """Our launch events by kernel id, in arrival order, until ``ok_kernel`` is ready and
    another kernel's launch has failed."""
    seen: dict[str, list[dict[str, Any]]] = {}

    def finished() -> bool:
        ready = any(e["phase"] == "ready" for e in seen.get(ok_kernel, []))
        failed = any(
            e["status"] == "failed" for k, es in seen.items() if k != ok_kernel for e in es
        )
        return ready and failed

    while not finished():
        raw = await asyncio.wait_for(connection.read_message(), BOUND)
        assert raw is not None, f"the event stream closed; got {seen}"
        event = json.loads(raw)
        if event.get("schema_id") == SCHEMA_ID:
            seen.setdefault(event["kernel_id"], []).append(event)
    return seen


async def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics as an authenticated Prometheus scrape sees it: {(sample, labels): value}."""
    request = HTTPRequest(
        f"{server.url}/metrics", headers={"Authorization": f"token {TOKEN}"}, request_timeout=60
    )
    response = await AsyncHTTPClient().fetch(request)
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.asyncio
async def test_metrics_and_events_follow_a_success_and_a_failure(server: Server) -> None:
    events = await subscribe(server)
    try:
        code, model = await server.call("POST", "/api/kernels", {"name": LOCAL})
        assert code == 201, model
        ok_kernel = str(model["id"])
        code, failure = await server.call("POST", "/api/kernels", {"name": MISSING})
        assert code == 500, failure
        assert MISSING_IMAGE in failure["message"]
        assert "not present" in failure["message"]
        seen = await read_launch_events(events, ok_kernel)
    finally:
        events.close()

    # The client saw every phase of the good launch, in order, and nothing secret.
    good = seen[ok_kernel]
    assert [(e["phase"], e["status"]) for e in good] == [(p, "done") for p in PHASES]
    assert {(e["backend"], e["kernelspec"]) for e in good} == {("distributed", LOCAL)}
    # ... and the failure, with the phase it failed in and the backend's reason.
    (bad_kernel,) = [k for k in seen if k != ok_kernel]
    bad = seen[bad_kernel]
    assert bad[-1]["status"] == "failed"
    assert bad[-1]["phase"] == "submitted"
    assert bad[-1]["reason"] == "image-unavailable"
    assert MISSING_IMAGE in bad[-1]["message"]
    assert {(e["backend"], e["kernelspec"]) for e in bad} == {("docker", MISSING)}

    samples = await scrape(server)
    launches = "gp_kernel_launches_total"
    assert value(samples, launches, backend="distributed", kernelspec=LOCAL, outcome="success") == 1
    assert value(samples, launches, backend="docker", kernelspec=MISSING, outcome="failure") == 1
    assert value(samples, launches, backend="docker", kernelspec=MISSING, outcome="success") == 0
    failures = "gp_kernel_launch_failures_total"
    assert (
        value(samples, failures, backend="docker", phase="submitted", reason="image-unavailable")
        == 1
    )
    assert value(samples, "gp_kernels_running", backend="distributed") == 1
    assert value(samples, "gp_kernels_running", backend="docker") == 0

    # Each phase was observed once, and the histogram holds the durations the events carried.
    phase_seconds = "gp_kernel_launch_phase_duration_seconds"
    for event in good:
        labels = {"backend": "distributed", "phase": event["phase"]}
        assert value(samples, f"{phase_seconds}_count", **labels) == 1
        assert value(samples, f"{phase_seconds}_sum", **labels) == pytest.approx(
            event["duration_seconds"], abs=1e-3
        )
    total = "gp_kernel_launch_duration_seconds"
    ok = {"backend": "distributed", "kernelspec": LOCAL, "outcome": "success"}
    assert value(samples, f"{total}_count", **ok) == 1
    assert value(samples, f"{total}_sum", **ok) == pytest.approx(
        good[-1]["elapsed_seconds"], abs=1e-2
    )
    bad_labels = {"backend": "docker", "kernelspec": MISSING, "outcome": "failure"}
    assert value(samples, f"{total}_count", **bad_labels) == 1
    # The Docker API calls the failed launch made are counted (a container create at least).
    docker_calls = sum(
        v
        for (name, labels), v in samples.items()
        if name == "gp_backend_api_requests_total" and ("backend", "docker") in labels
    )
    assert docker_calls >= 1
    assert any(
        name == "gp_backend_api_requests_total"
        and ("operation", "POST containers/create") in labels
        and ("outcome", "error") in labels
        for (name, labels) in samples
    )
    assert bad_kernel not in json.dumps([list(labels) for _, labels in samples])
    assert ok_kernel not in json.dumps([list(labels) for _, labels in samples])

    code, _ = await server.call("DELETE", f"/api/kernels/{ok_kernel}")
    assert code == 204
    assert await wait_until_gone(ok_kernel) == []
    after = await scrape(server)
    assert value(after, "gp_kernels_running", backend="distributed") == 0


def test_the_server_log_says_observability_is_on(server: Server) -> None:
    assert "Gateway Provisioners observability: metrics on, launch events on" in server.log_text()


@pytest.mark.asyncio
async def test_the_switches_in_the_server_configuration_turn_both_off(tmp_path: Path) -> None:
    """``--Observability.*`` reaches the provisioners through the extension: a launch is then
    neither counted nor streamed."""
    with isolated_jupyter_paths(tmp_path) as prefix:
        install_distributed_spec(["install", "--prefix", str(prefix), "--kernel-name", LOCAL])
        quiet = start_server(
            tmp_path,
            tmp_path / "quiet.log",
            "--Observability.metrics_enabled=False",
            "--Observability.events_enabled=False",
        )
        try:
            assert await wait_for_log(quiet, "Gateway Provisioners observability:")
            assert "metrics off, launch events off" in quiet.log_text()
            events = await subscribe(quiet)
            code, model = await quiet.call("POST", "/api/kernels", {"name": LOCAL})
            assert code == 201, model
            samples = await scrape(quiet)
            assert not [name for name, _ in samples if name.startswith("gp_")]
            code, _ = await quiet.call("DELETE", f"/api/kernels/{model['id']}")
            assert code == 204
            # The server's own kernel events arrive; none of ours came before them.
            while True:
                message = await asyncio.wait_for(events.read_message(), BOUND)
                event = json.loads(message or "{}")
                assert event.get("schema_id") != SCHEMA_ID, event
                if "kernel_actions" in str(event.get("schema_id")):
                    break
            events.close()
        finally:
            stop_server(quiet)


async def wait_for_log(server: Server, text: str) -> bool:
    for _ in range(600):
        if text in server.log_text():
            return True
        await asyncio.sleep(0.1)
    return False
