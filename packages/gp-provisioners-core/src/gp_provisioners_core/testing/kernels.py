"""Small helpers for talking to a real kernel in tests."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import KernelManager
from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase

ProvisionerT = TypeVar("ProvisionerT", bound=KernelProvisionerBase)


@dataclass
class ExecutionResult:
    """What one ``execute_request`` produced."""

    stdout: str = ""
    error_name: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


async def execute(
    client: AsyncKernelClient,
    code: str,
    *,
    timeout: float = 60.0,
    on_busy: asyncio.Event | None = None,
    on_output: asyncio.Event | None = None,
) -> ExecutionResult:
    """Run ``code`` and collect its stream output and error name until the kernel is idle.

    ``on_busy`` is set when the kernel reports it started the cell, so a test can interrupt a
    running cell instead of a queued one; ``on_output`` when the cell first writes to a stream
    (for kernels that compile a cell after reporting busy, such as Toree's Scala).
    """
    started = time.monotonic()
    msg_id = client.execute(code)
    result = ExecutionResult()
    deadline = started + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no idle status within {timeout}s for {code!r}")
        message = await client.get_iopub_msg(timeout=remaining)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = message["msg_type"], message["content"]
        if kind == "status" and content["execution_state"] == "busy" and on_busy is not None:
            on_busy.set()
        elif kind == "stream":
            result.stdout += content["text"]
            if on_output is not None:
                on_output.set()
        elif kind == "error":
            result.error_name = content["ename"]
        elif kind in ("execute_result", "display_data"):
            result.outputs.append(content)
        elif kind == "status" and content["execution_state"] == "idle":
            result.seconds = time.monotonic() - started
            return result


@contextmanager
def isolated_jupyter_paths(root: Path) -> Iterator[Path]:
    """Point JUPYTER_DATA_DIR / JUPYTER_PATH / JUPYTER_CONFIG_DIR at ``root`` for the block,
    so installed test kernelspecs never mix with the user's.  Yields the kernelspec prefix
    to pass as ``--prefix`` to installers (specs land in ``root/share/jupyter/kernels``)."""
    names = ("JUPYTER_DATA_DIR", "JUPYTER_PATH", "JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["JUPYTER_DATA_DIR"] = str(root / "data")
    os.environ["JUPYTER_PATH"] = str(root / "share" / "jupyter")
    os.environ["JUPYTER_CONFIG_DIR"] = str(root / "config")
    os.environ["JUPYTER_RUNTIME_DIR"] = str(root / "runtime")
    try:
        yield root
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def provisioner_of(manager: KernelManager, kind: type[ProvisionerT]) -> ProvisionerT:
    """The provisioner of ``manager``'s running kernel, as the backend's own class ``kind``, so
    a test reads the backend's fields (``assigned_host``, ``job_id``...) with their types.

    Raises AssertionError naming what the manager holds instead (no kernel started yet, or a
    kernelspec of another backend)."""
    provisioner = manager.provisioner
    assert isinstance(provisioner, kind), (
        f"kernel {manager.kernel_id}: expected a {kind.__name__}, the manager holds "
        f"{type(provisioner).__name__}"
    )
    return provisioner
