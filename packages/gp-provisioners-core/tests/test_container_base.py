"""ContainerProvisionerBase's mapping of backend statuses onto launches and polls (with a fake
status source; real backends run it against dockerd and the apiserver)."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpec

from gp_provisioners_core import ContainerProvisionerBase, LaunchFailedError


class FakeContainers(ContainerProvisionerBase):
    status = ""
    removed = 0

    def get_initial_states(self) -> set[str]:
        return {"created", "pending"}

    def get_error_states(self) -> set[str]:
        return {"exited", "dead"}

    def get_container_status(self) -> str:
        return self.status

    def describe_failure(self) -> str:
        return "exit code 3; last log lines: ImportError: no module named ipykernel"

    async def terminate_container_resources(self, restart: bool = False) -> None:
        self.removed += 1
        self.status = ""

    async def submit_kernel(self, cmd: list[str], env: dict[str, str], **kwargs: Any) -> None:
        self.container_name = f"kernel-{self.kernel_id}"


def make() -> FakeContainers:
    spec = KernelSpec(argv=["python"], display_name="Fake", resource_dir="/specs/fake")
    return FakeContainers(kernel_id="k-7", kernel_spec=spec, image_name="img:1")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "expected"), [("", 0), ("pending", None), ("running", None), ("exited", 1)]
)
async def test_poll_maps_statuses(status: str, expected: int | None) -> None:
    provisioner = make()
    provisioner.status = status
    assert await provisioner.poll() == expected


@pytest.mark.asyncio
async def test_an_error_status_fails_the_launch_with_the_backend_reason() -> None:
    provisioner = make()
    await provisioner.submit_kernel([], {})
    provisioner.status = "exited"
    with pytest.raises(LaunchFailedError) as failure:
        await provisioner.detect_launch_failure()
    message = str(failure.value)
    assert "kernel-k-7 is exited" in message
    assert "ImportError: no module named ipykernel" in message
    assert failure.value.phase == "submitted"
    assert failure.value.failure_reason == "kernel-exited"  # for metrics and launch events


@pytest.mark.asyncio
async def test_kill_and_terminate_remove_the_resources() -> None:
    provisioner = make()
    provisioner.status = "running"
    await provisioner.terminate()
    await provisioner.kill()
    assert provisioner.removed == 2
    assert await provisioner.poll() == 0


def test_image_settings_come_from_config_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GP_EXECUTOR_IMAGE_NAME", "exec:2")
    provisioner = make()
    assert (provisioner.image_name, provisioner.executor_image_name) == ("img:1", "exec:2")
