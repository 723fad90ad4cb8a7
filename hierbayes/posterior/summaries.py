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

__all__ = ["summary_table", "interval_names", "parameter_draws", "draw_stats", "format_number", "format_table"]


def interval_names(prob: float = 0.95) -> tuple[str, str]:
    """Column names of an equal-tailed interval: ``("2.5%", "97.5%")`` for 0.95."""
    lo = 100 * (1 - prob) / 2
    return f"{lo:g}%", f"{100 - lo:g}%"


def draw_stats(draws: np.ndarray, prob: float = 0.95) -> dict[str, np.ndarray]:
    """Mean, SD and interval over the two leading (chain, draw) axes of ``draws``."""
    flat = draws.reshape(draws.shape[0] * draws.shape[1], *draws.shape[2:])  # also with no parameters (K = 0)
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


def format_number(value: float, digits: int = 2) -> str:
    """An estimate as brms prints it: ``digits`` decimals, more below 1 so that a small value keeps
    ``digits`` significant figures (never ``0.00`` for 0.0012).

    >>> format_number(251.4053), format_number(0.5), format_number(-0.00123), format_number(float("nan"))
    ('251.41', '0.50', '-0.0012', '')
    """
    if not np.isfinite(value):
        return "" if np.isnan(value) else str(value)
    decimals = digits
    if 0 < abs(value) < 1:
        decimals = max(digits, digits - int(np.floor(np.log10(abs(value)))) - 1)
    return f"{value:.{decimals}f}"


def format_table(frame: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """A summary table as text for display: estimates by :func:`format_number`, ESS as whole numbers,
    R-hat with three decimals (enough to tell 1.005 from 1.012), text columns as they are, and no
    index name (which pandas prints as an extra header row).

    >>> t = pd.DataFrame({"mean": [251.404, 0.0712], "ess_bulk": [1534.6, 88.2], "r_hat": [1.0, 1.0123]},
    ...                  index=pd.Index(["Intercept", "cor"], name="parameter"))
    >>> print(format_table(t).to_string())
                 mean ess_bulk  r_hat
    Intercept  251.40     1535  1.000
    cor         0.071       88  1.012
    """
    out = pd.DataFrame(index=frame.index.rename(None))
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_float_dtype(values):
            out[column] = values.astype(str) if pd.api.types.is_numeric_dtype(values) else values
        elif str(column).startswith("ess"):
            out[column] = [("" if np.isnan(v) else f"{v:.0f}") for v in values]
        elif column == "r_hat":
            out[column] = [("" if np.isnan(v) else f"{v:.3f}") for v in values]
        else:
            out[column] = [format_number(v, digits) for v in values]
    return out
