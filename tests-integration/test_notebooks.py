"""nbclient runs a real notebook (several cells, a plot saved to PNG, an error cell) on a kernel
started by the distributed provisioner's local path.  The notebook is
``e2e_helpers.build_notebook``, which the end-to-end suites of the remote backends run too
(test_e2e_backends.py, test_e2e_clusters.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import PNG_MAGIC, build_notebook
from nbclient import NotebookClient

from gp_distributed.cli import main as install_spec
from gp_provisioners_core.testing import isolated_jupyter_paths


@pytest.fixture(scope="module")
def local_spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with isolated_jupyter_paths(tmp_path_factory.mktemp("jupyter")) as prefix:
        install_spec(["install", "--kernel-name", "nb_local", "--prefix", str(prefix)])
        yield "nb_local"


@pytest.mark.asyncio
async def test_notebook_with_plot_and_error_cell(
    local_spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("KERNEL_USERNAME", "alice")
    monkeypatch.setenv("GP_RESPONSE_IP", "127.0.0.1")
    png = tmp_path / "plot.png"
    nb = build_notebook(png)
    client = NotebookClient(nb, kernel_name=local_spec, timeout=120, allow_errors=True)
    await client.async_execute()

    first, plot, failing, last = nb.cells
    assert first.outputs[0].text.strip() == "140"
    assert png.read_bytes().startswith(PNG_MAGIC)
    assert any("image/png" in o.get("data", {}) for o in plot.outputs)
    assert failing.outputs[0].output_type == "error"
    assert failing.outputs[0].ename == "ValueError"
    assert last.outputs[0].text.strip() == "after the error 8"
    assert os.path.getsize(png) > 1000
