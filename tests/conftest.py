"""Shared fixtures: bundled data, the optional ../shared reference folder, simulators."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

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
