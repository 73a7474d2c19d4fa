"""The main job: run a notebook on a kernel started by the distributed provisioner on localhost.

Installs a kernelspec into a private Jupyter path, executes a small notebook with nbclient (the
kernel runs behind our launcher, its connection info sealed with protocol v2 through the
response manager), and prints the outputs and the launch-phase timings.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from gp_distributed.cli import main as install_spec
from gp_provisioners_core import ResponseManager
from gp_provisioners_core.testing.kernels import isolated_jupyter_paths

KERNEL_NAME = "gp_demo_python"
CELLS = [
    "import os, platform\nprint(f'kernel pid {os.getpid()} on {platform.node()}')",
    "squares = [n * n for n in range(10)]\nsum(squares)",
    "import time\nstarted = time.perf_counter()\ntotal = sum(range(10**6))\n"
    "print(f'summed a million ints in {time.perf_counter() - started:.3f}s: {total}')",
]


def notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    return nb


def text_of(output: nbformat.NotebookNode) -> str:
    if output.output_type == "stream":
        return str(output.text).rstrip()
    if output.output_type in ("execute_result", "display_data"):
        return str(output.data.get("text/plain", "")).rstrip()
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    return ""


async def run(root: Path) -> int:
    with isolated_jupyter_paths(root) as prefix:
        install_spec(["install", "--kernel-name", KERNEL_NAME, "--prefix", str(prefix)])
        # Root is refused kernels by default (unauthorized_users); run the demo kernel as a
        # named user the way a gateway passes KERNEL_USERNAME for its users.
        user = os.environ.get("KERNEL_USERNAME") or (
            "demo" if getpass.getuser() == "root" else getpass.getuser()
        )
        os.environ["KERNEL_USERNAME"] = user
        os.environ.setdefault("GP_RESPONSE_IP", "127.0.0.1")
        ResponseManager.instance().start()  # server start-up: key pair and listener

        nb = notebook()
        client = NotebookClient(nb, kernel_name=KERNEL_NAME, timeout=60)
        started = time.perf_counter()
        async with client.async_setup_kernel():
            ready = time.perf_counter() - started
            provisioner = client.km.provisioner
            phases = dict(provisioner.launch_phases.durations)
            host = provisioner.assigned_host
            for index, cell in enumerate(nb.cells):
                await client.async_execute_cell(cell, index)
        print(f"\nKernel started by {type(provisioner).__name__} on {host} as {user!r}")
        for index, cell in enumerate(nb.cells, start=1):
            print(f"\n[{index}] {cell.source.splitlines()[0]}")
            for output in cell.outputs:
                print(f"    {text_of(output)}")
        print("\nLaunch phases:")
        for name, seconds in phases.items():
            print(f"    {name:<26} {seconds * 1000:8.1f} ms")
        print(f"    {'start to kernel ready':<26} {ready * 1000:8.1f} ms")
        errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
        return 1 if errors else 0


def main() -> int:
    logging.basicConfig(level=os.environ.get("GP_DEMO_LOG_LEVEL", "WARNING"))
    with tempfile.TemporaryDirectory(prefix="gp-demo-") as root:
        return asyncio.run(run(Path(root)))


if __name__ == "__main__":
    sys.exit(main())
