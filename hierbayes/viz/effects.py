"""Conditional-effects plots (brms's ``conditional_effects``): the expected response against one predictor.

Each panel shows the posterior mean of the prediction (:func:`hierbayes.posterior.interpretation.predictions`)
over a grid of the predictor (:func:`hierbayes.posterior.grids.conditional_grid`): a line
with its credible band for a numeric predictor, points with error bars for a categorical
one; the other predictors are held at their mean or most common level (said above the
panel). A second variable (``"Days:trt"``) draws one line per level (a numeric one: its
mean and the mean plus and minus one SD); ``groups="known"`` with ``levels=`` draws one line
per chosen level of a grouping factor, its partial-pooling estimate. With no effect named, as
brms: a panel per population-level predictor, then one per two-way interaction of the formula
(``Days * group``: ``Days``, ``group`` and ``Days`` with a line per level of ``group``).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> fig = fit.conditional_effects("Days", groups="known", levels=["308", "309"], points=True)
>>> [line.get_label() for line in effect_lines(fig.axes[0])]
['308', '309']
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from hierbayes.common.errors import HierbayesError
from hierbayes.posterior.grids import (
    CONDITIONAL_POINTS,
    conditional_grid,
    fitting_rows,
    fixed_interactions,
    fixed_predictors,
    formula_designs,
    is_categorical,
    levels_of,
)
from hierbayes.posterior.interpretation import predictions
from hierbayes.posterior.predict import CATEGORY_DIM
from hierbayes.posterior.summaries import interval_names

__all__ = ["plot_conditional_effects", "effect_lines", "EFFECT_GID"]

EFFECT_GID = "conditional-effect"  # the gid of the lines (and error-bar points) that carry the predictions
BAND = dict(alpha=0.2, linewidth=0)
POINTS = dict(s=12, alpha=0.5, linewidths=0, zorder=1)
SPREAD = (" (mean + SD)", " (mean)", " (mean - SD)")  # the lines of a numeric second variable, in grid order


def effect_lines(ax: Axes) -> list[Line2D]:
    """The lines of a conditional-effects panel that carry the predictions (one per line of the legend):
    ``line.get_xdata()`` is the grid, ``line.get_ydata()`` the posterior mean."""
    return [line for line in ax.get_lines() if line.get_gid() == EFFECT_GID]


def _effects(fit, effects) -> list[tuple[str, str | None]]:
    if effects is None:  # as brms: every main effect, then every two-way interaction
        names = fixed_predictors(fit.model)
        if not names:
            raise HierbayesError(f"the model {fit.model.formula} has no population-level predictor to plot")
        return [(name, None) for name in names] + fixed_interactions(fit.model)
    out = []
    for effect in [effects] if isinstance(effects, str) else effects:
        parts = [p.strip() for p in effect.split(":")]
        if len(parts) > 2 or not all(parts):
            raise HierbayesError(f"an effect is a predictor ('Days') or two ('Days:trt'), not {effect!r}")
        out.append((parts[0], parts[1] if len(parts) == 2 else None))
    return out


def _held(fit, grid: pd.DataFrame, shown: Sequence[str], groups: str) -> str:
    """The values the other predictors are held at, in words."""
    factor_columns = {c for design in formula_designs(fit.model) for b in design.blocks for c in b.block.factor_columns}
    parts = []
    for column in fit.model.data.columns:
        if column in shown or column not in grid or (column in factor_columns and groups == "population"):
            continue
        if column in fixed_predictors(fit.model) or column in factor_columns:
            value = grid[column].iloc[0]
            parts.append(f"{column} = {value:.3g}" if isinstance(value, float) else f"{column} = {value}")
    held = f"held at {', '.join(parts)}; " if parts else ""
    where = {"population": "population level (group effects zero)",
             "known": "group effects as fitted (partial pooling)",
             "new": "group effects drawn for a new, unseen group"}[groups]
    return f"{held}{where}"


def _points(fit, ax: Axes, effect: str, second: str | None, lines: list, categorical: bool) -> None:
    """The fitting data behind the lines (the response per trial for a binomial model)."""
    data, design = fitting_rows(fit.model), fit.model.design
    y = design.y / design.trials if design.trials is not None else design.y
    x = data[effect].to_numpy()
    if categorical:
        position = {level: k for k, level in enumerate(levels_of(fit.model, effect))}
        x = np.array([position[v] for v in x]) + np.random.default_rng(0).uniform(-0.15, 0.15, len(x))
    if second is not None and is_categorical(fit.model, second):
        for k, level in enumerate(lines):
            keep = (data[second] == level).to_numpy()
            ax.scatter(x[keep], y[keep], color=f"C{k}", **POINTS)
    else:
        ax.scatter(x, y, color="0.4", **POINTS)


def _panel(fit, ax: Axes, effect: str, second: str | None, *, groups: str, levels, factor, points: bool,
           prob: float, scale: str, kind: str, resolution: int) -> pd.DataFrame:
    grid, split = conditional_grid(fit.model, effect, second, levels=levels, factor=factor, points=resolution)
    table = predictions(fit, grid, groups=groups, kind=kind, scale=scale, prob=prob)
    lo, hi = interval_names(prob)
    categorical = is_categorical(fit.model, effect)
    by_line = table[CATEGORY_DIM] if CATEGORY_DIM in table.columns else grid[split] if split else None
    if CATEGORY_DIM in table.columns:  # a nominal model: one line per category
        if split:
            raise HierbayesError(f"a nominal model's conditional effects have one line per category; give one effect "
                                 f"({effect!r}), not {effect}:{split}")
        split, points = CATEGORY_DIM, False
    lines = list(dict.fromkeys(by_line)) if split else [None]
    width = 0.3 if len(lines) > 1 else 0.0
    numeric_split = split not in (None, CATEGORY_DIM) and levels is None and not is_categorical(fit.model, split)
    for k, value in enumerate(lines):
        rows = table if value is None else table[(by_line == value).to_numpy()]
        label = None if value is None else f"{value:.3g}{SPREAD[k]}" if numeric_split else str(value)
        color = f"C{k}"
        if categorical:
            x = np.arange(len(rows)) + (width * (k / max(len(lines) - 1, 1) - 0.5) if width else 0.0)
            bars = ax.errorbar(x, rows["estimate"], yerr=[rows["estimate"] - rows[lo], rows[hi] - rows["estimate"]],
                               fmt="o", color=color, capsize=3, label=label, zorder=3)
            bars.lines[0].set_gid(EFFECT_GID)  # the points, not the caps
        else:
            x = rows[effect].to_numpy(dtype=float)
            ax.fill_between(x, rows[lo], rows[hi], color=color, **BAND)
            ax.plot(x, rows["estimate"], color=color, lw=1.8, label=label, gid=EFFECT_GID, zorder=3)
    if points and scale == "response" and kind == "mean":
        _points(fit, ax, effect, split, lines, categorical)
    if categorical:
        categories = levels_of(fit.model, effect)
        ax.set_xticks(range(len(categories)), [str(v) for v in categories])
        ax.set_xlim(-0.5, len(categories) - 0.5)  # room around the first and last level's interval and label
    response = fit.model.spec.response.expr
    if fit.model.family.needs_trials:  # the expected value of a binomial model is per trial
        response = f"{response} per trial"
    ax.set_xlabel(effect)
    ax.set_ylabel(f"P({response} = category)" if split == CATEGORY_DIM else
                  f"{response} (linear predictor)" if scale == "link" else
                  f"{response} (expected value)" if kind == "mean" else f"{response} ({kind})")
    if split:  # beside the panel: inside it would cover lines, bands or data points
        ax.legend(title=split, frameon=False, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  borderaxespad=0.0)
    shown = [effect, *([split] if split else [])]
    heading = effect if split is None else f"{effect} by {split}"
    ax.set_title(f"{heading}\n{_held(fit, grid, shown, groups)}", fontsize="small", loc="left", color="0.2",
                 wrap=True)
    return table


def plot_conditional_effects(fit, effects: str | Sequence[str] | None = None, *, groups: str = "population",
                             levels: Sequence | None = None, factor: str | None = None, points: bool = False,
                             prob: float | None = None, scale: str = "response", kind: str = "mean",
                             resolution: int = CONDITIONAL_POINTS, figsize: tuple[float, float] | None = None) -> Figure:
    """brms's ``conditional_effects``: the expected response against a predictor, one panel per effect.

    Parameters
    ----------
    fit : Fit
    effects : str or list of str, optional
        ``"Days"`` or ``"Days:trt"`` (one line per level of ``trt``; a numeric second
        variable: its mean and the mean plus and minus one SD). Default, as brms: one panel per
        population-level predictor, then one per two-way interaction of the formula, its first
        variable along the axis and a line per level (or mean and mean +/- 1 SD) of its second.
    groups : {"population", "known", "new"}
        Where group effects come from (:mod:`hierbayes.posterior.predict`).
    levels : list, optional
        With ``groups="known"``: one line per level of the grouping ``factor`` (the model's
        only one by default), each level's own partial-pooling prediction.
    factor : str, optional
    points : bool
        Draw the fitting data behind the lines.
    prob : float, optional
        Mass of the credible band (the fit's ``prob`` by default).
    scale, kind
        As :func:`~hierbayes.posterior.interpretation.predictions`.
    resolution : int
        Grid points of a numeric predictor.
    figsize : (float, float), optional

    Returns
    -------
    matplotlib.figure.Figure
        One Axes per effect, titled with the effect ("Days by group") and the values the other
        predictors are held at; a panel with several lines has its legend beside it.
        :func:`effect_lines` gives each panel's prediction lines.
    """
    chosen = _effects(fit, effects)
    if levels is not None and groups == "population":
        raise HierbayesError("levels= shows the groups' own effects: pass groups='known' with it")
    prob = prob or fit.prob
    n = len(chosen)
    columns = min(n, 2)
    rows = -(-n // columns)
    fig, axes = plt.subplots(rows, columns, figsize=figsize or (6.2 * columns, 4.4 * rows), layout="constrained",
                             squeeze=False)
    for ax, (effect, second) in zip(axes.ravel(), chosen):
        _panel(fit, ax, effect, second, groups=groups, levels=levels, factor=factor, points=points, prob=prob,
               scale=scale, kind=kind, resolution=resolution)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle(f"Conditional effects: posterior mean and {100 * prob:g}% credible interval", fontsize="medium")
    return fig
