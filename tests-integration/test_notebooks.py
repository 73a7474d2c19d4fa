"""nbclient runs a real notebook (several cells, a plot saved to PNG, an error cell) on a kernel
started by the distributed provisioner's local path.  ``build_notebook`` is shared with the
end-to-end suites of the remote backends (test_e2e_backends.py, test_e2e_clusters.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from gp_distributed.cli import main as install_spec
from gp_provisioners_core.testing import isolated_jupyter_paths

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def local_spec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with isolated_jupyter_paths(tmp_path_factory.mktemp("jupyter")) as prefix:
        install_spec(["install", "--kernel-name", "nb_local", "--prefix", str(prefix)])
        yield "nb_local"


def build_notebook(png: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    cells = [
        "values = [n ** 2 for n in range(8)]\nprint(sum(values))",
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "figure, axes = plt.subplots()\naxes.plot(values)\n"
        f"figure.savefig({str(png)!r})\nfrom IPython.display import Image\nImage({str(png)!r})",
        "raise ValueError('this cell fails on purpose')",
        "print('after the error', len(values))",
    ]
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    return nb


@pytest.mark.asyncio
async def test_notebook_with_plot_and_error_cell(local_spec: str, tmp_path: Path, monkeypatch):
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
