"""Fixtures of the integration tests: the bundled data as a file, as the command line reads it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory, sleepstudy) -> Path:
    path = tmp_path_factory.mktemp("data") / "sleep.csv"
    sleepstudy.to_csv(path, index=False)
    return path
