"""``parameterization="auto"``: centered or non-centered per grouping factor, from the data.

Non-centered group effects mix well when a level's data say little next to the
population spread, centered ones when they say a lot (Papaspiliopoulos, Roberts and
Skold 2007). For level ``j`` with ``n_j`` observations the ratio is

    kappa_j = n_j * tau^2 / s^2

with ``tau^2`` the between-level and ``s^2`` the within-level variance, estimated
before sampling by a one-way ANOVA (method of moments, the ANOVA estimate behind the
intra-class correlation) of the response after an ordinary least-squares fit of the
fixed effects. On the response scale this ratio is the same as on the link scale with
the family's working variance (poisson: ``1/mu``; bernoulli: ``1/(p(1-p))``), since
both variances move by the same factor ``(d mu / d eta)^2``. Binomial responses enter
as proportions, with trials as level sizes.

A factor is centered when the median ``kappa_j`` over its levels is above
:data:`CENTERED_ABOVE`; factors without a varying intercept stay non-centered.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"),
...              parameterization="auto", collapse=False)
>>> m.parameterization
{'Subject': 'centered'}
>>> round(float(m.parameterization_choice.loc["Subject", "median_kappa"]), 1)
14.4
>>> describe(m)
'Group effects: Subject centered (auto: median kappa 14)'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["choose_parameterization", "level_kappas", "one_way_anova", "describe", "CENTERED_ABOVE"]

CENTERED_ABOVE = 1.0


def one_way_anova(values: np.ndarray, index: np.ndarray, J: int, weights: np.ndarray | None = None
                  ) -> tuple[float, float]:
    """Method-of-moments between- and within-level variances ``(tau^2, s^2)`` of ``values``.

    ``tau^2 = max(0, (MSB - MSW) / n0)`` with ``n0 = (N - sum n_j^2 / N) / (J - 1)``, the
    ANOVA estimator for unbalanced levels; ``weights`` count each value as that many
    observations (binomial trials).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(200), 50)
    >>> y = rng.normal(0, 2.0, 200)[g] + rng.normal(0, 1.0, g.size)
    >>> tau2, s2 = one_way_anova(y, g, 200)
    >>> round(tau2, 1), round(s2, 2)
    (3.8, 0.99)
    """
    w = np.ones_like(values, dtype=float) if weights is None else np.asarray(weights, dtype=float)
    n_j = np.bincount(index, weights=w, minlength=J)
    N = n_j.sum()
    mean_j = np.bincount(index, weights=w * values, minlength=J) / np.maximum(n_j, 1e-300)
    grand = (w * values).sum() / N
    msb = (n_j * (mean_j - grand) ** 2).sum() / max(J - 1, 1)
    msw = (w * (values - mean_j[index]) ** 2).sum() / max(N - J, 1)
    n0 = (N - (n_j**2).sum() / N) / max(J - 1, 1)
    return float(max(0.0, (msb - msw) / n0)), float(msw)


def _response_residuals(design, family) -> tuple[np.ndarray, np.ndarray | None]:
    """The response (proportions for binomial) less its least-squares fit on the fixed effects."""
    y = design.y if design.trials is None else design.y / np.maximum(design.trials, 1)
    if design.X.shape[1]:
        coef, *_ = np.linalg.lstsq(design.X, y, rcond=None)
        y = y - design.X @ coef
    return y, design.trials


def level_kappas(design, family, factor: str) -> tuple[np.ndarray, float, float]:
    """``kappa_j = n_j tau^2 / s^2`` for every level of ``factor``, with ``tau^2`` and ``s^2``."""
    fd = design.factors[factor]
    J = len(fd.levels)
    values, weights = _response_residuals(design, family)
    tau2, s2 = one_way_anova(values, fd.index, J, weights)
    n_j = np.bincount(fd.index, weights=weights, minlength=J)
    return n_j * tau2 / max(s2, 1e-300), tau2, s2


def choose_parameterization(design, family) -> tuple[dict[str, str], pd.DataFrame]:
    """Centered or non-centered for each grouping factor, and the numbers behind the choice.

    Returns
    -------
    choice : dict of factor -> "centered" or "non-centered"
    table : DataFrame
        Index ``factor``; columns ``levels``, ``median_n``, ``tau2``, ``s2``,
        ``median_kappa``, ``parameterization``.
    """
    choice, rows = {}, []
    for factor, fd in design.factors.items():
        if "Intercept" not in design.factor_coefs(factor):
            choice[factor] = "non-centered"
            rows.append({"factor": factor, "levels": len(fd.levels), "median_n": float(np.median(fd.counts)),
                         "tau2": np.nan, "s2": np.nan, "median_kappa": np.nan,
                         "parameterization": "non-centered"})
            continue
        kappa, tau2, s2 = level_kappas(design, family, factor)
        median = float(np.median(kappa))
        choice[factor] = "centered" if median > CENTERED_ABOVE else "non-centered"
        rows.append({"factor": factor, "levels": len(fd.levels), "median_n": float(np.median(fd.counts)),
                     "tau2": tau2, "s2": s2, "median_kappa": median, "parameterization": choice[factor]})
    return choice, pd.DataFrame(rows).set_index("factor")


def describe(model) -> str | None:
    """One line for a fit's header: how each grouping factor's effects were sampled (None: no factor)."""
    if not model.design.factors:
        return None
    parts = []
    for factor in model.design.factors:
        if model.collapsed:
            parts.append(f"{factor} integrated out and drawn exactly (collapsed)")
            continue
        p = model.parameterization
        chosen = p.get(factor, "non-centered") if isinstance(p, dict) else p
        table = model.parameterization_choice
        if table is not None and np.isfinite(table.loc[factor, "median_kappa"]):
            chosen += f" (auto: median kappa {table.loc[factor, 'median_kappa']:.2g})"
        parts.append(f"{factor} {chosen}")
    return "Group effects: " + "; ".join(parts)
