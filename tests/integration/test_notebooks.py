"""The lesson notebooks (notebooks/*.ipynb) run end to end and are stored without outputs.

Each notebook runs in a fresh kernel started with this interpreter (a kernel spec written
for the test, so the venv's python runs it whatever ``python`` is on PATH). A failing cell
fails the test with the cell's traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel_specs(tmp_path_factory) -> KernelSpecManager:
    root = tmp_path_factory.mktemp("kernels")
    spec = root / "hierbayes-test"
    spec.mkdir()
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hierbayes test", "language": "python",
        "env": {"PYTHONHASHSEED": "0"},
    }))
    return KernelSpecManager(kernel_dirs=[str(root)])


def test_the_lessons_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01_partial_pooling_radon.ipynb", "02_varying_slopes_sleepstudy.ipynb", "03_crossed_random_factors.ipynb",
        "04_poisson_counts.ipynb", "05_funnel.ipynb", "07_clustered_data_three_ways.ipynb",
        "08_stimuli_as_a_random_factor.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel_specs):
    nb = nbformat.read(path, as_version=4)
    km = KernelManager(kernel_name="hierbayes-test", kernel_spec_manager=kernel_specs)
    NotebookClient(nb, km=km, timeout=600, resources={"metadata": {"path": str(path.parent)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 1, "every lesson draws at least one plot"
