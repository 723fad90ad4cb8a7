"""Small real datasets shipped with hierbayes (sources in ``SOURCES.md`` beside this file).

- ``sleepstudy``: 180 rows; Reaction (ms), Days (0-9), Subject (18 levels). Belenky et al.
  (2003), J. Sleep Research 12:1-12; distributed with the R package lme4 (GPL >= 2).
- ``radon``: 919 Minnesota homes in 85 counties; log_radon, floor, county, log_uranium.
  Gelman & Hill (2007), ch. 12-13, from the EPA survey files srrs2.dat and cty.dat.

Examples
--------
>>> from hierbayes import datasets
>>> datasets.load("sleepstudy").shape
(180, 3)
>>> sorted(datasets.names())
['radon', 'sleepstudy']
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

from hierbayes.common.errors import HierbayesError

__all__ = ["load", "names"]

_DTYPES = {"sleepstudy": {"Subject": str}, "radon": {"county": str, "floor": int}}


def names() -> list[str]:
    """Names of the bundled datasets."""
    return sorted(_DTYPES)


def load(name: str) -> pd.DataFrame:
    """Load a bundled dataset as a DataFrame.

    Parameters
    ----------
    name : {"sleepstudy", "radon"}
    """
    if name not in _DTYPES:
        raise HierbayesError(f"no dataset named {name!r}; the bundled datasets are {names()}")
    with resources.files(__package__).joinpath(f"{name}.csv").open("r") as fh:
        return pd.read_csv(fh, dtype=_DTYPES[name])
