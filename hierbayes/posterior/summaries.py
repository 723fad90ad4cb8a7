"""Posterior summaries as DataFrames: pure NumPy at the bottom, labels on top.

Every table reports the posterior **mean** (never the mode or MAP), the posterior SD,
an equal-tailed credible interval (95% by default, as brms), bulk and tail ESS and
rank-normalized R-hat (both from arviz-stats).

Examples
--------
>>> import numpy as np
>>> draws = np.random.default_rng(0).normal(size=(4, 500, 1))
>>> t = summary_table(draws, ["x"])
>>> list(t.columns)
['mean', 'sd', '2.5%', '97.5%', 'ess_bulk', 'ess_tail', 'r_hat']
>>> bool(abs(t.loc["x", "mean"]) < 0.1)
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from arviz_stats.base import array_stats

__all__ = ["summary_table", "interval_names", "parameter_draws", "draw_stats"]


def interval_names(prob: float = 0.95) -> tuple[str, str]:
    """Column names of an equal-tailed interval: ``("2.5%", "97.5%")`` for 0.95."""
    lo = 100 * (1 - prob) / 2
    return f"{lo:g}%", f"{100 - lo:g}%"


def draw_stats(draws: np.ndarray, prob: float = 0.95) -> dict[str, np.ndarray]:
    """Mean, SD and interval over the two leading (chain, draw) axes of ``draws``."""
    flat = draws.reshape(draws.shape[0] * draws.shape[1], *draws.shape[2:])  # not -1: no parameters is no rows
    lo, hi = interval_names(prob)
    q = np.quantile(flat, [(1 - prob) / 2, 1 - (1 - prob) / 2], axis=0)
    return {"mean": flat.mean(axis=0), "sd": flat.std(axis=0, ddof=1), lo: q[0], hi: q[1]}


def summary_table(draws: np.ndarray, labels: Sequence[str], prob: float = 0.95,
                  diagnostics: bool = True) -> pd.DataFrame:
    """One row per parameter.

    Parameters
    ----------
    draws : ndarray (chain, draw, K)
    labels : K names
    prob : float
        Mass of the equal-tailed interval.
    diagnostics : bool
        Add ``ess_bulk``, ``ess_tail`` and ``r_hat``.
    """
    table = pd.DataFrame(draw_stats(draws, prob), index=pd.Index(list(labels), name="parameter"))
    if diagnostics:
        moved = np.moveaxis(draws, (0, 1), (-2, -1))
        with np.errstate(invalid="ignore", divide="ignore"):
            table["ess_bulk"] = array_stats.ess(moved, method="bulk")
            table["ess_tail"] = array_stats.ess(moved, method="tail", prob=0.05)
            table["r_hat"] = array_stats.rhat(moved)
    return table


def parameter_draws(posterior, parameters) -> np.ndarray:
    """Stack the draws of ``parameters`` (:class:`~hierbayes.specification.parameters.Parameter`) as (chain, draw, K)."""
    columns = [posterior[p.var].sel(p.sel).transpose("chain", "draw").values for p in parameters]
    if not columns:
        return np.empty((posterior.sizes["chain"], posterior.sizes["draw"], 0))
    return np.stack(columns, axis=-1)
