"""Shared fixtures: bundled data, the optional ../shared reference folder, simulators.

The tests are in three folders: ``unit`` (fast, one stage at a time; ``make test-fast``),
``statistical`` (recovery and agreement with references) and ``integration`` (docs,
notebooks, browser, CLI, bench, processes). Every test session compiles into a temporary
cache directory of its own, never the user's ``~/.cache/hierbayes``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")


CACHE_DIR = pytest.StashKey[str]()


def pytest_configure(config):
    """One temporary compile cache for the session, shared by the xdist workers (they inherit it)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    config.stash[CACHE_DIR] = tempfile.mkdtemp(prefix="hierbayes-test-cache-")
    os.environ["HIERBAYES_CACHE_DIR"] = config.stash[CACHE_DIR]


def pytest_unconfigure(config):
    if folder := config.stash.get(CACHE_DIR, None):
        shutil.rmtree(folder, ignore_errors=True)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repository; tests that need it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not beside this checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sleepstudy() -> pd.DataFrame:
    import hierbayes as hb

    return hb.datasets.load("sleepstudy")


@pytest.fixture(scope="session")
def radon() -> pd.DataFrame:
    import hierbayes as hb

    return hb.datasets.load("radon")


def simulate_groups(rng: np.random.Generator, n_levels: int, per_level: int, name: str = "g") -> np.ndarray:
    """Level labels ``g00, g01, ...`` with ``per_level`` rows each."""
    return np.repeat([f"{name}{j:03d}" for j in range(n_levels)], per_level)


os.environ.setdefault("PYTHONHASHSEED", "0")
