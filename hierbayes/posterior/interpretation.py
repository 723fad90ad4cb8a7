"""Reading a fitted model: predictions, comparisons, slopes, marginal means and contrasts, on the draws.

Every quantity here is a function of :func:`~hierbayes.posterior.predict.predict` on rows
built from the data (or a grid), computed draw by draw and summarised at the end, so it
works for every family and carries the whole posterior uncertainty:

- :func:`predictions`: the expected response of rows, averaged within ``by`` groups
  (marginaleffects's ``predictions`` / ``avg_predictions``, brms's ``posterior_epred``).
- :func:`comparisons`: average counterfactual comparisons: every row is predicted with the
  variable set to each of two values, the two are averaged (per ``by`` group) and compared
  (marginaleffects's ``avg_comparisons``).
- :func:`slopes`: average marginal effects by a centred finite difference
  (marginaleffects's ``avg_slopes``).
- :mod:`hierbayes.posterior.marginal_means`: emmeans's estimated marginal means on a
  balanced reference grid, and contrasts of them; :mod:`hierbayes.posterior.hypotheses`:
  brms's ``hypothesis()``.

Each returns a DataFrame with the columns that identify its rows, ``estimate`` (the
posterior mean), ``sd`` and the equal-tailed interval at the fit's ``prob``; ``draws=True``
returns the draws instead, an xarray DataArray ``(chain, draw, row)`` whose ``row``
coordinates are those identifying columns.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> list(fit.predictions({"Days": [0, 9]}).columns)
['Days', 'estimate', 'sd', '2.5%', '97.5%']
>>> slope = fit.slopes("Days")          # the model is linear: the slope is the Days coefficient
>>> bool(abs(slope["estimate"].iloc[0] - fit.fixed_effects().loc["Days", "mean"]) < 1e-6)
True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.common.errors import DataError, HierbayesError, did_you_mean
from hierbayes.posterior.grids import (
    check_predictor,
    data_grid,
    fitting_rows,
    formula_designs,
    is_categorical,
    levels_of,
    predictor_columns,
)
from hierbayes.posterior.predict import CATEGORY_DIM, GROUPS, new_rows, rows_linear_predictor
from hierbayes.posterior.summaries import draw_stats
from hierbayes.specification.design import level_label

__all__ = ["predictions", "comparisons", "slopes", "frame_draws", "per_category", "group_average", "summarise", "counterfactuals",
           "Counterfactual", "SCALES", "COMPARISONS", "ROW_DIM", "SLOPE_STEP"]

SCALES = ("response", "link")
ROW_DIM = "row"
SLOPE_STEP = 1e-4  # the finite difference of slopes(): this share of the predictor's range


def _compare_lnor(hi, lo):
    return np.log(hi / (1 - hi)) - np.log(lo / (1 - lo))


COMPARISONS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], str]] = {
    "difference": (lambda hi, lo: hi - lo, "{hi} - {lo}"),
    "ratio": (lambda hi, lo: hi / lo, "{hi} / {lo}"),
    "lnratio": (lambda hi, lo: np.log(hi / lo), "ln({hi} / {lo})"),
    "lnor": (_compare_lnor, "ln(odds({hi}) / odds({lo}))"),
}
"""Comparison of the averaged predictions ``hi`` and ``lo`` (per draw), and its label."""


# --- draws of many counterfactual frames at once -------------------------------------------------

def _check_scale(scale: str, kind: str, groups: str) -> None:
    if scale not in SCALES:
        raise HierbayesError(f"scale must be one of {SCALES}, not {scale!r}")
    if scale == "link" and kind != "mean":
        raise HierbayesError(f"scale='link' is the linear predictor, which has no kind {kind!r}; "
                             "use kind='mean' (or scale='response')")
    if groups not in GROUPS:
        raise HierbayesError(f"groups must be one of {GROUPS}, not {groups!r}")


def frame_draws(fit, frames: Sequence[pd.DataFrame], *, kind: str = "mean", groups: str = "population",
                scale: str = "response", seed: int | None = None) -> list[np.ndarray]:
    """Predictions (chain, draw, rows) of each frame, from one call to the prediction stage.

    One call, so that with ``groups="new"`` a level has the same drawn effect in every frame and
    a comparison of two frames measures the change of the variable only.
    """
    _check_scale(scale, kind, groups)
    data = pd.concat(list(frames), ignore_index=True)
    if scale == "link":
        if fit.model.family.nominal:
            raise HierbayesError(f"scale='link' is one linear predictor, and the {fit.model.family.name!r} family has "
                                 "one per category after the first: predict it with kind='mu<category>'")
        rows = new_rows(fit.model, data, groups, kind)
        values = rows_linear_predictor(fit.model, fit.posterior, rows, groups, rng=np.random.default_rng(seed))
    else:
        values = fit.predict(data, kind, groups, seed=seed).values
    cuts = np.cumsum([len(f) for f in frames])[:-1]
    if values.ndim == 4:  # a nominal family's probabilities: one per row and category, rows first (per_category)
        values = values.reshape(*values.shape[:2], -1)
        cuts = cuts * len(fit.model.family.categories)
    return np.split(values, cuts, axis=-1)


def per_category(fit, rows: pd.DataFrame, by, kind: str = "mean"):
    """The rows and ``by`` of a nominal family's predictions, which are one per row and category: each row
    repeated per category with a ``category`` column, and ``category`` added to ``by`` (alone for ``True``);
    other families' unchanged."""
    family = fit.model.family
    if not family.nominal or kind not in ("mean", "probabilities"):
        return rows, by
    if CATEGORY_DIM in predictor_columns(fit.model):
        raise HierbayesError(f"the {family.name} model's predictions are labelled by a {CATEGORY_DIM!r} column, and "
                             f"a predictor has that name; rename it")
    rows = rows.drop(columns=CATEGORY_DIM, errors="ignore")  # a response of that name: not a label
    labels = [level_label(c) for c in family.categories]
    rows = rows.loc[rows.index.repeat(len(labels))].reset_index(drop=True)
    rows[CATEGORY_DIM] = np.tile(labels, len(rows) // len(labels))
    if by is None or by is False:
        return rows, by
    return rows, [CATEGORY_DIM] if by is True else [*([by] if isinstance(by, str) else by), CATEGORY_DIM]


def _by_columns(by, frame: pd.DataFrame) -> list[str]:
    if by is None or by is False:
        return []
    columns = [by] if isinstance(by, str) else list(by)
    for c in columns:
        if c not in frame.columns:
            close = did_you_mean(c, frame.columns)
            raise DataError(f"by: {c!r} is not a column of the data" + (f"; did you mean {close!r}?" if close else ""))
    return columns


def group_average(values: np.ndarray, frame: pd.DataFrame, by) -> tuple[pd.DataFrame, np.ndarray]:
    """The average of ``values`` (chain, draw, rows) over the rows of each ``by`` group of ``frame``, per draw.

    ``by=True`` averages over every row; ``by=None`` keeps the rows. Returns the groups' labels
    (one row per group, sorted) and the averages (chain, draw, groups).
    """
    if by is None or by is False:
        return frame.reset_index(drop=True), values
    columns = [] if by is True else _by_columns(by, frame)
    if not columns:
        return pd.DataFrame(index=pd.RangeIndex(1)), values.mean(axis=-1, keepdims=True)
    grouped = frame[columns].reset_index(drop=True).groupby(columns, sort=True, observed=True, dropna=False)
    codes = grouped.ngroup().to_numpy()
    labels = grouped.size().index.to_frame(index=False)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    sums = np.add.reduceat(values[..., order], starts, axis=-1)
    return labels, sums / np.diff(np.r_[starts, len(codes)])


def summarise(fit, labels: pd.DataFrame, draws: np.ndarray, prob: float | None, as_draws: bool):
    """The table (labels, ``estimate``, ``sd``, interval) of ``draws`` (chain, draw, rows), or the draws labelled."""
    labels = labels.reset_index(drop=True)
    if as_draws:
        post = fit.posterior
        coords = {"chain": post["chain"].values, "draw": post["draw"].values}
        coords.update({c: (ROW_DIM, labels[c].to_numpy()) for c in labels.columns})
        return xr.DataArray(draws, dims=("chain", "draw", ROW_DIM), coords=coords)
    stats = draw_stats(draws, prob or fit.prob)
    table = labels.copy()
    table["estimate"] = stats.pop("mean")
    for name, value in stats.items():
        table[name] = value
    return table


def _rows(model, newdata) -> pd.DataFrame:
    if newdata is None:
        return fitting_rows(model)
    if isinstance(newdata, Mapping):
        return data_grid(model, newdata)
    if not isinstance(newdata, pd.DataFrame):
        raise DataError(f"newdata must be a DataFrame or a dict of column -> values, got {type(newdata).__name__}")
    return newdata.reset_index(drop=True)


def _named(fit, rows: pd.DataFrame, groups: str) -> pd.DataFrame:
    """The columns that name each row: its predictors (not the grouping columns, for population predictions)."""
    unused = set() if groups != "population" else {c for d in formula_designs(fit.model) for b in d.blocks
                                                   for c in b.block.factor_columns}
    named = [*predictor_columns(fit.model), CATEGORY_DIM]  # a nominal family's category
    return rows[[c for c in rows.columns if c in named and c not in unused] or list(rows.columns)]


# --- predictions ----------------------------------------------------------------------------------

def predictions(fit, newdata=None, by=None, groups: str = "population", kind: str = "mean",
                scale: str = "response", *, prob: float | None = None, draws: bool = False, seed: int | None = None):
    """Predictions for rows, or their averages within groups.

    Parameters
    ----------
    fit : Fit
    newdata : DataFrame or dict, optional
        The rows; a dict of column -> values builds a grid (:func:`data_grid`). The fitting data
        by default.
    by : str, list of str or True, optional
        Average the per-row predictions within the groups of these columns, draw by draw
        (marginaleffects's ``avg_predictions(by=)``); ``True``: over every row.
    groups : {"population", "known", "new"}
        Where group effects come from (:mod:`hierbayes.posterior.predict`).
    kind : str
        What to predict (``"mean"``, the expected response, or any kind ``fit.predict`` takes).
    scale : {"response", "link"}
        ``"link"``: the linear predictor (brms's ``posterior_linpred``).
    prob : float, optional
        Interval mass (the fit's ``prob`` by default).
    draws : bool
        Return the draws, a DataArray ``(chain, draw, row)``.
    seed : int, optional
        For ``groups="new"`` and ``kind="response"``.

    Returns
    -------
    DataFrame or DataArray
        The identifying columns (the predictors of each row, or the ``by`` columns), then
        ``estimate``, ``sd`` and the interval.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> df["trt"] = np.where(df["Subject"].astype(int) % 2 == 0, "drug", "placebo")
    >>> fit = hb.Model("Reaction ~ Days + trt + (Days | Subject)", df).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> grid = predictions(fit, {"Days": [0, 9]})   # trt at its first level, Subject's effects zero
    >>> grid[["Days", "trt"]].values.tolist(), bool((grid["estimate"].diff().dropna() > 0).all())
    ([[0, 'drug'], [9, 'drug']], True)
    >>> list(predictions(fit, by=True, groups="known").columns)  # the average over the data's rows
    ['estimate', 'sd', '2.5%', '97.5%']
    """
    rows = _rows(fit.model, newdata)
    (values,) = frame_draws(fit, [rows], kind=kind, groups=groups, scale=scale, seed=seed)
    rows, by = per_category(fit, rows, by, kind)
    labels, averaged = group_average(values, _named(fit, rows, groups) if by is None else rows, by)
    return summarise(fit, labels, averaged, prob, draws)


# --- comparisons and slopes ------------------------------------------------------------------------

@dataclass(frozen=True)
class Counterfactual:
    """One comparison of a variable: its values in the ``lo`` and ``hi`` frames, and their names."""

    term: str
    lo_name: str
    hi_name: str
    lo: Any  # a value for every row, or one per row
    hi: Any


def _numeric_counterfactuals(model, rows: pd.DataFrame, v: str, spec) -> list[Counterfactual]:
    x = rows[v].to_numpy(dtype=float)
    fitted = fitting_rows(model)[v].to_numpy(dtype=float)
    if spec is None:
        spec = (0, 1) if set(np.unique(fitted)) <= {0.0, 1.0} else 1
    if isinstance(spec, str):
        fixed = {"minmax": (fitted.min(), fitted.max(), "min", "max"),
                 "iqr": (*np.percentile(fitted, [25, 75]), "Q1", "Q3")}
        if spec == "sd":
            step = float(np.std(fitted, ddof=1))
            return [Counterfactual(v, v, f"{v}+sd", x, x + step)]
        if spec in fixed:
            lo, hi, lo_name, hi_name = fixed[spec]
            return [Counterfactual(v, lo_name, hi_name, lo, hi)]
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        lo, hi = spec
        return [Counterfactual(v, f"{lo:g}", f"{hi:g}", float(lo), float(hi))]
    elif isinstance(spec, (int, float, np.number)) and not isinstance(spec, bool):
        return [Counterfactual(v, v, f"{v}+{spec:g}", x, x + float(spec))]
    raise HierbayesError(f"comparisons of the numeric predictor {v!r}: give a step (1), 'sd', 'iqr', 'minmax' or "
                         f"a pair (lo, hi), not {spec!r}")


def _categorical_counterfactuals(model, v: str, spec) -> list[Counterfactual]:
    levels = levels_of(model, v)
    if spec is None or spec == "reference":
        pairs = [(levels[0], level) for level in levels[1:]]
    elif spec == "pairwise":
        pairs = [(levels[i], levels[j]) for i in range(len(levels)) for j in range(i + 1, len(levels))]
    elif spec == "sequential":
        pairs = list(zip(levels[:-1], levels[1:]))
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        unknown = [s for s in spec if s not in levels]
        if unknown:
            raise HierbayesError(f"{unknown[0]!r} is not a level of {v!r}; its levels are {levels}")
        pairs = [tuple(spec)]
    else:
        raise HierbayesError(f"comparisons of the categorical predictor {v!r}: give 'reference', 'pairwise', "
                             f"'sequential' or a pair of levels (lo, hi), not {spec!r}")
    return [Counterfactual(v, str(lo), str(hi), lo, hi) for lo, hi in pairs]


def counterfactuals(model, rows: pd.DataFrame, variables) -> list[Counterfactual]:
    """The comparisons asked for by ``variables`` (a name, names, or a dict of name -> what to compare)."""
    if isinstance(variables, str):
        variables = {variables: None}
    elif not isinstance(variables, Mapping):
        variables = dict.fromkeys(variables)
    out: list[Counterfactual] = []
    for v, spec in variables.items():
        check_predictor(model, v)
        if is_categorical(model, v):
            out += _categorical_counterfactuals(model, v, spec)
        else:
            out += _numeric_counterfactuals(model, rows, v, spec)
    return out


def _set(rows: pd.DataFrame, column: str, value) -> pd.DataFrame:
    frame = rows.copy()
    if isinstance(frame[column].dtype, pd.CategoricalDtype) and np.ndim(value) == 0:
        frame[column] = pd.Categorical([value] * len(frame), categories=frame[column].cat.categories)
    else:
        frame[column] = value
    return frame


def _compared(fit, rows, cases: list[Counterfactual], groups, kind, scale, seed):
    """The predictions (lo, hi) of each case, every distinct setting of a variable predicted once
    (a factor's pairwise comparisons predict each level once)."""
    settings: dict[tuple, int] = {}
    frames, where = [], []
    for c in cases:
        for value in (c.lo, c.hi):
            key = (c.term, value) if np.ndim(value) == 0 else (c.term, id(value))
            if key not in settings:
                settings[key] = len(frames)
                frames.append(_set(rows, c.term, value))
            where.append(settings[key])
    values = frame_draws(fit, frames, kind=kind, groups=groups, scale=scale, seed=seed)
    return [(c, values[where[2 * k]], values[where[2 * k + 1]]) for k, c in enumerate(cases)]


def _stack(parts: list[tuple[dict, pd.DataFrame, np.ndarray]]) -> tuple[pd.DataFrame, np.ndarray]:
    labels = pd.concat([pd.concat([pd.DataFrame({k: [v] * len(lab) for k, v in head.items()}), lab], axis=1)
                        for head, lab, _ in parts], ignore_index=True)
    return labels, np.concatenate([d for _, _, d in parts], axis=-1)


def comparisons(fit, variables, by=None, comparison: str | Callable = "difference", groups: str = "population",
                kind: str = "mean", scale: str = "response", *, newdata=None, prob: float | None = None,
                draws: bool = False, seed: int | None = None):
    """Average counterfactual comparisons: what changing one variable does to the prediction, on average.

    For every row of the data (or ``newdata``) the variable is set to each of two values and
    the rows are predicted; per draw and ``by`` group the two predictions are averaged over
    the rows and compared (marginaleffects's ``avg_comparisons``; a difference of averages is
    the average of the rows' differences; ratios are ratios of the averages, as marginaleffects).

    Parameters
    ----------
    fit : Fit
    variables : str, list of str, or dict
        A dict gives what to compare per variable. Numeric: a step ``1`` (from each row's value
        to that value plus the step), ``"sd"`` (plus one SD of the fitting data), ``"iqr"``,
        ``"minmax"`` or a pair ``(lo, hi)`` of values; a name alone is ``+1`` (``0 -> 1`` for a 0/1
        column). Categorical: ``"reference"`` (each level against the first; the default),
        ``"pairwise"`` (every pair), ``"sequential"`` or a pair of levels.
    by : str, list of str, True or False, optional
        Compare within groups of these columns (one overall comparison by default); ``False``:
        one comparison per row (marginaleffects's ``comparisons``), named by the row's predictors.
    comparison : {"difference", "ratio", "lnratio", "lnor"} or callable
        How the averaged predictions ``hi`` and ``lo`` are compared; a callable ``f(hi, lo)``
        on the (chain, draw, group) arrays.
    groups, kind, scale, prob, draws, seed
        As :func:`predictions`.
    newdata : DataFrame or dict, optional
        Rows to average over (a dict builds a grid, :func:`data_grid`); the fitting data by default.

    Returns
    -------
    DataFrame or DataArray
        ``term``, ``contrast``, the ``by`` columns, ``estimate``, ``sd``, interval.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> df["trt"] = np.where(df["Subject"].astype(int) % 2 == 0, "drug", "placebo")
    >>> fit = hb.Model("Reaction ~ Days + trt + (Days | Subject)", df).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> comparisons(fit, {"Days": (0, 9)})[["term", "contrast"]].values.tolist()
    [['Days', '9 - 0']]
    """
    if callable(comparison):
        compare, template = comparison, "f({hi}, {lo})"
    elif comparison in COMPARISONS:
        compare, template = COMPARISONS[comparison]
    else:
        raise HierbayesError(f"comparison must be one of {list(COMPARISONS)} or a function f(hi, lo), "
                             f"not {comparison!r}")
    rows = _rows(fit.model, newdata)
    cases = counterfactuals(fit.model, rows, variables)
    named, by = per_category(fit, rows, True if by is None else by, kind)
    named = _named(fit, named, groups) if by is False else named
    parts = []
    for case, lo, hi in _compared(fit, rows, cases, groups, kind, scale, seed):
        labels, lo_avg = group_average(lo, named, by)
        _, hi_avg = group_average(hi, named, by)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = compare(hi_avg, lo_avg)
        head = {"term": case.term, "contrast": template.format(hi=case.hi_name, lo=case.lo_name)}
        parts.append((head, labels, values))
    labels, values = _stack(parts)
    return summarise(fit, labels, values, prob, draws)


def slopes(fit, variables, by=None, groups: str = "population", kind: str = "mean", scale: str = "response", *,
           newdata=None, eps: float | None = None, prob: float | None = None, draws: bool = False,
           seed: int | None = None):
    """Average marginal effects: the derivative of the prediction by a numeric predictor, averaged over the rows.

    Per row and draw, ``(f(x + h/2) - f(x - h/2)) / h`` (a centred difference, exact for a
    quadratic), averaged over the rows of each ``by`` group (marginaleffects's ``avg_slopes``).
    ``h`` is ``eps``, by default ``1e-4`` times the range of the predictor in the fitting data
    (R marginaleffects's default; ``1e-4`` if it is constant): small enough that the error,
    of order ``h**2``, is below the posterior's Monte Carlo error, large enough to stay clear of
    rounding.

    Parameters
    ----------
    fit : Fit
    variables : str or list of str
        Numeric predictors (a categorical one is :func:`comparisons`'s).
    by, groups, kind, scale, newdata, prob, draws, seed
        As :func:`comparisons`.
    eps : float, optional
        The step ``h``.

    Returns
    -------
    DataFrame or DataArray
        ``term``, ``contrast`` (``dY/dX``), the ``by`` columns, ``estimate``, ``sd``, interval.

    Examples
    --------
    >>> import numpy as np
    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> df["trt"] = np.where(df["Subject"].astype(int) % 2 == 0, "drug", "placebo")
    >>> fit = hb.Model("Reaction ~ Days + trt + (Days | Subject)", df).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> slopes(fit, "Days")["contrast"].tolist()
    ['dY/dX']
    """
    names = [variables] if isinstance(variables, str) else list(variables)
    rows = _rows(fit.model, newdata)
    cases, steps = [], []
    for v in names:
        check_predictor(fit.model, v)
        if is_categorical(fit.model, v):
            raise HierbayesError(f"slopes need a numeric predictor, and {v!r} is categorical; compare its levels "
                                 f"with comparisons({v!r})")
        fitted = fitting_rows(fit.model)[v].to_numpy(dtype=float)
        h = float(eps) if eps is not None else SLOPE_STEP * (float(np.ptp(fitted)) or 1.0)
        x = rows[v].to_numpy(dtype=float)
        cases.append(Counterfactual(v, v, v, x - h / 2, x + h / 2))
        steps.append(h)
    named, by = per_category(fit, rows, True if by is None else by, kind)
    named = _named(fit, named, groups) if by is False else named
    parts = []
    for (case, lo, hi), h in zip(_compared(fit, rows, cases, groups, kind, scale, seed), steps):
        labels, slope = group_average((hi - lo) / h, named, by)
        parts.append(({"term": case.term, "contrast": "dY/dX"}, labels, slope))
    labels, values = _stack(parts)
    return summarise(fit, labels, values, prob, draws)

