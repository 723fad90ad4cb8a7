"""Each level's own estimate of a family parameter's group effects (``sigma="~ 1 + (1 | g)"``).

The mean's no-pooling fit (:func:`hierbayes.posterior.pooling.no_pooling`) is a least-squares
or quasi-likelihood fit that needs nothing but the response. A family parameter's formula has
no such fit of its own: a level's spread only means something around a mean. Its "own
estimate" is therefore **conditional**: the family's log-likelihood
(:meth:`~hierbayes.specification.families.Family.log_likelihood`) maximised over the level's
coefficients of the parameter's formula, from the level's rows alone, with the rest of the
model held at its posterior mean:

- the mean's linear predictor at its posterior mean, row by row (group effects as fitted);
- the parameter's population-level columns that are not part of the level's coefficient at
  their posterior means; its other grouping factors ignored (as the mean's no-pooling fit
  ignores them);
- the family's other parameters at their posterior mean (one with a formula: the inverse of
  its link at the posterior mean of its linear predictor).

Complete pooling is the same likelihood maximised over all of the parameter's
population-level coefficients, every grouping factor of its formula ignored. Everything is on
the parameter's link scale (log for ``sigma``). For a gaussian model with ``sigma="~ 1 + (1 |
g)"``, a level's own estimate is ``log sqrt(mean((y - mu_hat)^2))`` over its rows.

Examples
--------
>>> import numpy as np, pandas as pd, hierbayes as hb
>>> rng = np.random.default_rng(1)
>>> df = pd.DataFrame({"g": np.repeat(list("abcdef"), 20)})
>>> df["y"] = rng.normal(0, np.exp(np.repeat(rng.normal(0, 0.5, 6), 20)))
>>> fit = hb.Model(hb.Formula("y ~ 1", sigma="~ 1 + (1 | g)"), df).fit(
...     draws=200, tune=300, chains=2, seed=1, progressbar=False, warn=False)
>>> own, failed = part_no_pooling(fit, "sigma", "g", [])
>>> mu = fit.posterior["b"].values.mean()
>>> by_hand = np.log(np.sqrt(((df["y"] - mu) ** 2).groupby(df["g"]).mean()))
>>> bool(np.allclose(own[:, 0], by_hand, atol=1e-4)), failed.count("")
(True, 6)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

from hierbayes.specification.design import Design
from hierbayes.specification.linear_predictor import (
    design_effects,
    fixed_effect_draws,
    linear_predictor,
    posterior_effects,
)

__all__ = ["part_no_pooling", "part_complete_pooling"]

NO_ESTIMATE = "no finite estimate: the level's likelihood has no maximum on the {link} scale"


def _posterior_mean_eta(post, design: Design) -> np.ndarray:
    """The posterior mean of a formula's linear predictor on the fitting rows, group effects as fitted."""
    eta = linear_predictor(fixed_effect_draws(post, design), design.X, design.offset, posterior_effects(post, design))
    return eta.reshape(-1, eta.shape[-1]).mean(axis=0)


class _Conditional:
    """The log-likelihood of some rows as a function of ``part``'s linear predictor, the rest held."""

    def __init__(self, fit, part: str):
        model, post = fit.model, fit.posterior
        self.design, self.family, self.part = model.design, model.family, part
        self.eta = _posterior_mean_eta(post, self.design)
        self.held: dict[str, np.ndarray] = {}
        self.link = self.family.formula_link(part)
        for name, _ in self.family.parameters:
            other = self.design.part_design(name)
            if name == part:
                continue
            if other is None:
                self.held[name] = np.asarray(float(post[name].mean()))
            else:
                self.held[name] = self.family.formula_link(name).inverse(_posterior_mean_eta(post, other))

    def log_likelihood(self, rows: np.ndarray, eta_part: np.ndarray) -> float:
        params = {k: (v[rows] if v.ndim else v) for k, v in self.held.items()}
        params[self.part] = self.link.inverse(eta_part)
        trials = None if self.design.trials is None else self.design.trials[rows]
        with np.errstate(all="ignore"):
            logp = self.family.log_likelihood(self.design.observed[rows], self.eta[rows], params, trials)
        return float(np.sum(logp))

    def maximise(self, rows: np.ndarray, base: np.ndarray, columns: np.ndarray, start: np.ndarray) -> np.ndarray | None:
        """The coefficients of ``columns`` that maximise the rows' likelihood (``base`` + ``columns @ coef`` on the
        parameter's link), or None when there is no finite maximum."""
        def loss(coef):
            value = -self.log_likelihood(rows, base + columns @ coef)
            return value if np.isfinite(value) else 1e300

        result = minimize(loss, start, method="BFGS", options={"gtol": 1e-8})
        if not result.success and not np.isfinite(result.fun):
            return None
        if result.fun >= 1e300 or np.any(np.abs(result.x) > 1e6):
            return None
        return result.x


def part_no_pooling(fit, part: str, factor: str, shared: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Each level's own estimate of the coefficients of ``factor`` in ``part``'s formula (see the module notes).

    Parameters
    ----------
    fit : Fit
    part : str
        A family parameter with a formula of its own (``"sigma"``).
    factor : str
    shared : sequence of int
        The columns of ``part``'s population-level part that are not part of a level's coefficient
        (:func:`hierbayes.posterior.pooling.level_columns`): held at their posterior means.

    Returns
    -------
    estimates : ndarray (J, Q)
        NaN for a level whose likelihood has no finite maximum.
    failed : list of str
        Per level, why its estimate is NaN ("" when it is not).
    """
    conditional = _Conditional(fit, part)
    design = fit.model.design.check_part(part)
    fd = design.check_factor(factor)
    Z = next(Z for f, _, Z in design_effects(design) if f == factor)
    post = fit.posterior
    b = fixed_effect_draws(post, design)
    b_mean = b.reshape(-1, b.shape[-1]).mean(axis=0) if b is not None else np.zeros(0)
    base = design.X[:, list(shared)] @ b_mean[list(shared)] if len(shared) else np.zeros(design.n_obs)
    start = _posterior_mean_eta(post, design)  # where to start a level: its fitted coefficients
    estimates = np.full((len(fd.levels), Z.shape[1]), np.nan)
    failed = [""] * len(fd.levels)
    for j in range(len(fd.levels)):
        rows = fd.index == j
        guess = np.linalg.lstsq(Z[rows], start[rows] - base[rows], rcond=None)[0]
        coef = conditional.maximise(rows, base[rows], Z[rows], guess)
        if coef is None:
            failed[j] = NO_ESTIMATE.format(link=conditional.link.name)
        else:
            estimates[j] = coef
    return estimates, failed


def part_complete_pooling(fit, part: str) -> np.ndarray:
    """The coefficients of ``part``'s population-level columns maximising the likelihood with every grouping
    factor of its formula ignored, the rest of the model at its posterior mean (link scale)."""
    design = fit.model.design.check_part(part)
    b = fixed_effect_draws(fit.posterior, design)
    if b is None:  # a formula of group terms only: nothing to pool to but 0
        return np.zeros(0)
    conditional = _Conditional(fit, part)
    every = np.ones(design.n_obs, dtype=bool)
    coef = conditional.maximise(every, np.zeros(design.n_obs), design.X, b.reshape(-1, b.shape[-1]).mean(axis=0))
    return np.full(design.X.shape[1], np.nan) if coef is None else coef
