"""The lesson notebooks (notebooks/*.ipynb) run end to end and are stored without outputs.

Each notebook runs in a fresh kernel started with this interpreter (a kernel spec written for
the run, so the venv's python runs it whatever ``python`` is on PATH), by the docs site's hook
(docs/_hooks/notebooks.py), which renders the executed lessons into the site: one execution per
notebook serves both this test and the docs build of the same session (it is kept in the
session's temporary cache under a key of the notebook, the package's files and the installed
versions). A failing cell fails the test with the cell's traceback.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@functools.cache
def docs_hook():
    """docs/_hooks/notebooks.py, the module that runs (and caches) the notebooks for the site."""
    spec = importlib.util.spec_from_file_location("hierbayes_docs_notebooks", ROOT / "docs" / "_hooks" / "notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_lessons_are_there():
    assert [p.name for p in NOTEBOOKS] == [
        "01_partial_pooling_radon.ipynb", "02_varying_slopes_sleepstudy.ipynb", "03_crossed_random_factors.ipynb",
        "04_poisson_counts.ipynb", "05_funnel.ipynb", "06_modes_and_means.ipynb",
        "07_clustered_data_three_ways.ipynb", "08_stimuli_as_a_random_factor.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path):
    nb, _ = docs_hook().executed(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    images = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert images >= 1, "every lesson draws at least one plot"
