"""Shared pieces of the end-to-end suites (no tests here): a backend as the nbclient and Jupyter
Server tests see it, kernelspecs installed with the real CLIs, and the notebook of
``test_notebooks.py`` (cells, a matplotlib plot saved to PNG, an error cell) run with nbclient
on a backend's Python kernel, checked the way a user would look at it.

The checks here raise ``AssertionError`` with the outputs in the message (pytest does not
rewrite the asserts of this module).
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LAUNCH_TIMEOUT = "120"
BIN = Path(sys.executable).parent
# Where the plot goes when the kernel does not share this file system (inside a container).
REMOTE_PNG = Path("/tmp/gp-e2e-plot.png")
# Settings of one backend that must not leak into a test of another.
OTHER_BACKENDS_SETTINGS = (
    "GP_REMOTE_HOSTS",
    "GP_LOAD_BALANCING_ALGORITHM",
    "GP_SSH_PORT",
    "GP_YARN_ENDPOINT",
    "GP_ALT_YARN_ENDPOINT",
    "YARN_CONF_DIR",
    "HADOOP_CONF_DIR",
    "GP_KUBECONFIG",
    "DOCKER_HOST",
)

Leftovers = Callable[[str], Awaitable[list[str]]]


def build_notebook(png: Path) -> nbformat.NotebookNode:
    """The notebook every backend runs: cells, a matplotlib plot saved to ``png`` and displayed,
    an error cell, and a cell after it."""
    v4: Any = nbformat.v4  # nbformat.v4 has no annotations
    nb: nbformat.NotebookNode = v4.new_notebook()
    cells = [
        "values = [n ** 2 for n in range(8)]\nprint(sum(values))",
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "figure, axes = plt.subplots()\naxes.plot(values)\n"
        f"figure.savefig({str(png)!r})\nfrom IPython.display import Image\nImage({str(png)!r})",
        "raise ValueError('this cell fails on purpose')",
        "print('after the error', len(values))",
    ]
    nb.cells = [v4.new_code_cell(source) for source in cells]
    return nb


@dataclass
class E2EBackend:
    """One backend as the tests see it: its kernelspecs, the environment a client (this process
    or a Jupyter Server) needs for them, and how to find what a kernel left behind."""

    name: str
    provisioner_name: str
    python_spec: str
    r_spec: str  # "" when this backend cannot run R here
    jupyter_path: Path
    env: dict[str, str]
    leftovers: Leftovers  # what is left of a kernel id (waits a little first); [] when nothing
    shares_file_system: bool = False  # the kernel writes to this machine's file system
    handle_key: str = ""  # provisioner-info key naming the backend's work (job id, pod...)

    def spec_json(self, kernel_name: str) -> dict[str, Any]:
        path = self.jupyter_path / "kernels" / kernel_name / "kernel.json"
        return dict(json.loads(path.read_text()))


def install_spec(cli: str, prefix: Path, *args: str) -> None:
    """``<cli> install --prefix PREFIX --replace ARGS`` with the CLI of this venv."""
    done = subprocess.run(
        [str(BIN / cli), "install", "--prefix", str(prefix), "--replace", *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"{cli} install {args} failed: {done.stderr[-2000:]}"


def use_backend(backend: E2EBackend, monkeypatch: pytest.MonkeyPatch) -> E2EBackend:
    """Point this process's environment at ``backend`` for one test (restored after it)."""
    for name in OTHER_BACKENDS_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in backend.env.items():
        monkeypatch.setenv(name, value)
    return backend


@dataclass
class NotebookRun:
    """The kernel a notebook ran on: its id and its provisioner's info once it had started."""

    kernel_id: str
    provisioner_info: dict[str, Any] = field(default_factory=dict)


async def run_notebook(nb: nbformat.NotebookNode, kernel_name: str) -> NotebookRun:
    """Execute ``nb`` with nbclient (errors allowed) on a new kernel of ``kernel_name``; nbclient
    shuts the kernel down at the end."""
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=120, allow_errors=True)
    runs: list[NotebookRun] = []

    async def started(notebook: nbformat.NotebookNode) -> None:
        assert client.km is not None
        info: dict[str, Any] = {}
        if client.km.provisioner is not None:
            info = dict(await client.km.provisioner.get_provisioner_info())
        runs.append(NotebookRun(str(client.km.kernel_id), info))

    client.on_notebook_start = started
    await client.async_execute()
    assert len(runs) == 1, f"the notebook started {len(runs)} kernels"
    return runs[0]


def pngs(outputs: list[Any]) -> list[bytes]:
    """The image/png payloads among a cell's display_data and execute_result outputs."""
    return [
        base64.b64decode(o["data"]["image/png"])
        for o in outputs
        if o.get("output_type") in ("display_data", "execute_result")
        and "image/png" in o.get("data", {})
    ]


async def run_plot_notebook(backend: E2EBackend, folder: Path) -> NotebookRun:
    """Run the notebook of ``test_notebooks.build_notebook`` on ``backend``'s Python kernel and
    check what a user sees: the first cell's output, a PNG image displayed (and, where the
    kernel shares this file system, the same bytes in the file it saved under ``folder``), the
    error cell's ValueError, the cell after it run; the backend's handle on the kernel in its
    provisioner info; and nothing of the kernel left afterwards."""
    png = folder / "plot.png" if backend.shares_file_system else REMOTE_PNG
    nb = build_notebook(png)
    run = await run_notebook(nb, backend.python_spec)

    first, plot, failing, last = nb.cells
    assert first.outputs, "the first cell printed nothing"
    assert first.outputs[0].get("text", "").strip() == "140", first.outputs
    images = pngs(plot.outputs)
    assert images, f"no image/png output: {plot.outputs}"
    assert images[0].startswith(PNG_MAGIC), images[0][:16]
    assert len(images[0]) > 1000, f"a {len(images[0])}-byte PNG"
    if backend.shares_file_system:
        assert png.is_file(), f"the kernel did not save {png}"
        assert png.read_bytes() == images[0], "the saved PNG differs from the one displayed"
    assert failing.outputs, "the failing cell has no output"
    assert failing.outputs[0].output_type == "error", failing.outputs
    assert failing.outputs[0].ename == "ValueError", failing.outputs[0]
    assert last.outputs, "the cell after the error did not run"
    assert last.outputs[0].get("text", "").strip() == "after the error 8", last.outputs
    if backend.handle_key:
        handle = run.provisioner_info.get(backend.handle_key)
        assert handle, f"no {backend.handle_key} in the provisioner info: {run.provisioner_info}"
    left = await backend.leftovers(run.kernel_id)
    assert left == [], f"kernel {run.kernel_id} left behind: {left}"
    return run


async def wait_for_nothing(find: Callable[[], list[str]], timeout: float = 30) -> list[str]:
    """Call ``find`` (in a worker thread) until it finds nothing or ``timeout`` seconds passed
    (deletions take a moment on every backend); return what it found last."""
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(find)
        if not found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)
