"""Maximum-likelihood references from R, as plain dicts: ``validation/reference/references.json``.

``validation/reference/references.R`` fits each case with lme4, glmmTMB or ordinal and writes
the estimates in hierbayes's parameterisation under hierbayes's labels (``README.md`` there
lists every conversion); this module reads them back, with the data the fits used.

Examples
--------
>>> ref = case("poisson_salamanders")
>>> ref["family"], ref["formula"]
('poisson', 'count ~ mined + (1 | site)')
>>> sorted(estimates("poisson_salamanders"))
['Intercept', 'mined[T.yes]', 'sd(Intercept|site)']
>>> data("salamanders")["mined"].unique().tolist()
['yes', 'no']
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pandas as pd

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "validation" / "reference"

__all__ = ["REFERENCE_DIR", "references", "case", "estimates", "standard_errors", "kinds", "data", "versions"]


@functools.cache
def references() -> dict[str, Any]:
    """The whole JSON: ``versions`` (R and its packages), ``datasets`` and ``cases``."""
    return json.loads((REFERENCE_DIR / "references.json").read_text())


def case(name: str) -> dict[str, Any]:
    """One case: ``dataset``, ``formula``, ``distributional``, ``family``, ``link``, ``needs``,
    ``estimates`` (label -> ``estimate``, ``se``, ``kind``, ``r_name``), ``logLik``, ``convergence``, ``notes``."""
    cases = references()["cases"]
    if name not in cases:
        raise KeyError(f"no reference case {name!r}; the cases are {sorted(cases)}")
    return cases[name]


def estimates(name: str) -> dict[str, float]:
    """Label -> maximum-likelihood estimate, in hierbayes's parameterisation."""
    return {label: e["estimate"] for label, e in case(name)["estimates"].items()}


def standard_errors(name: str) -> dict[str, float | None]:
    """Label -> the estimate's standard error (None where the R package gives none, e.g. lme4's SDs)."""
    return {label: e["se"] for label, e in case(name)["estimates"].items()}


def kinds(name: str) -> dict[str, str]:
    """Label -> ``fixed``, ``threshold``, ``sd``, ``cor`` or ``family`` (a family or distributional parameter)."""
    return {label: e["kind"] for label, e in case(name)["estimates"].items()}


@functools.cache
def _frame(dataset: str) -> pd.DataFrame:
    meta = references()["datasets"][dataset]
    return pd.read_csv(REFERENCE_DIR / meta["file"], dtype={col: str for col in meta["labels"]})


def data(dataset: str) -> pd.DataFrame:
    """The rows a dataset's cases were fitted to; label columns (even digit-coded ones) as strings."""
    return _frame(dataset).copy()


def versions() -> dict[str, str]:
    """R's and each package's version, as the JSON was written."""
    return dict(references()["versions"])
