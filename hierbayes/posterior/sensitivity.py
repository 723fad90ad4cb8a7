"""Prior and likelihood sensitivity by power-scaling (Kallioinen et al. 2024), as brms users get from priorsense.

Each prior in force (:meth:`hierbayes.Model.prior_summary`: the fixed effects, the group SDs,
the LKJ priors of correlated blocks and the family's parameters) is evaluated at every draw;
their sum is the log prior that arviz-stats' :func:`arviz_stats.psense_summary` power-scales
(by importance sampling, no refit), with the pointwise log-likelihood of LOO for the other
component. As in priorsense for brms, the hierarchical prior of the group effects
(``r ~ Normal(0, sd)``) is not scaled: it is part of the model, not a choice of prior.

The intercept's prior is on the intercept at the centred predictors (``docs/families.md``),
so it is evaluated there: ``Intercept + mean(x) . slopes``.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).fit(
...     draws=300, tune=300, chains=2, seed=1, progressbar=False, warn=False)
>>> table = prior_sensitivity(fit)
>>> list(table.columns), bool((table.loc["Days", ["prior", "likelihood"]] >= 0).all())
(['prior', 'likelihood', 'diagnosis'], True)
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.common.deferred import deferred_import
from hierbayes.model.coordinates import fixed_slopes
from hierbayes.posterior.summaries import parameter_draws
from hierbayes.specification.names import FactorNames
from hierbayes.specification.parameters import lkj_label, model_parameters, prior_targets

psense = deferred_import("arviz_stats.psense")

__all__ = ["log_prior_draws", "prior_sensitivity"]

THRESHOLD = 0.05
"""A sensitivity at or above this is flagged (the value priorsense and arviz-stats use)."""


def _correlation_matrices(posterior, block, parameters) -> np.ndarray:
    """A correlated block's correlation matrix per draw, (chain, draw, q, q), from its printed correlations."""
    coefs, names = block.coef_names, FactorNames(block.factor)
    q = len(coefs)
    R = np.broadcast_to(np.eye(q), (posterior.sizes["chain"], posterior.sizes["draw"], q, q)).copy()
    for i in range(q):
        for j in range(i + 1, q):
            values = parameter_draws(posterior, [parameters[names.cor_label(coefs[i], coefs[j])]])[..., 0]
            R[..., i, j] = R[..., j, i] = values
    return R


def log_prior_draws(fit) -> xr.Dataset:
    """The log density of every prior in force at every draw: one variable per prior, (chain, draw).

    Parameters
    ----------
    fit : Fit

    Returns
    -------
    xarray.Dataset
        Variables named by the priors' labels (``Intercept``, ``sd(Days|Subject)``,
        ``cor(Intercept,Days|Subject)`` for a block's LKJ prior, ``sigma``).
    """
    model, post = fit.model, fit.posterior
    design = model.design
    parameters = {p.label: p for p in model_parameters(design, model.family)}
    out = {}
    for label, cls, _ in prior_targets(design, model.family):
        prior = model.priors[label]
        if cls == "cor":
            block = next(b for b in design.blocks if b.block.correlated and lkj_label(b) == label)
            values = _correlation_matrices(post, block, parameters)
        else:
            values = parameter_draws(post, [parameters[label]])[..., 0]
            if label == "Intercept":
                values = values + _centring(post, design, parameters)
        out[label] = (("chain", "draw"), np.asarray(prior.log_density(values), dtype=float))
    return xr.Dataset(out, coords={"chain": post["chain"].values, "draw": post["draw"].values})


def _centring(posterior, design, parameters) -> np.ndarray:
    """``mean(x) . slopes`` per draw: the intercept's prior is at the centred predictors."""
    slopes = fixed_slopes(design)
    if not slopes:
        return np.zeros((posterior.sizes["chain"], posterior.sizes["draw"]))
    means = design.X[:, slopes].mean(axis=0)
    draws = parameter_draws(posterior, [parameters[design.fixed_names[j]] for j in slopes])
    return draws @ means


def prior_sensitivity(fit, threshold: float = THRESHOLD, alphas: tuple[float, float] = (0.99, 1.01)) -> pd.DataFrame:
    """Power-scaling sensitivity of each printed parameter to the priors and to the likelihood.

    Parameters
    ----------
    fit : Fit
    threshold : float, default 0.05
        Sensitivities at or above it are flagged in ``diagnosis``.
    alphas : (float, float)
        The power-scaling factors around 1 whose posteriors are compared.

    Returns
    -------
    pandas.DataFrame
        Index: the printed parameters (fixed effects, SDs, correlations, family parameters);
        columns ``prior`` and ``likelihood`` (the cumulative Jensen-Shannon distance of the
        power-scaled posteriors, per unit of log alpha) and ``diagnosis``: "prior-data
        conflict" when both are at or above ``threshold``, "strong prior / weak likelihood"
        when only the prior's is, else "".
    """
    post = fit.posterior
    parameters = [p for p in fit.parameters if p.cls != "r"]
    draws = parameter_draws(post, parameters)
    posterior = xr.Dataset({p.label: (("chain", "draw"), draws[..., k]) for k, p in enumerate(parameters)},
                           coords={"chain": post["chain"].values, "draw": post["draw"].values})
    if "log_likelihood" not in fit.idata.children:
        fit.add_log_likelihood()
    lprior = log_prior_draws(fit).to_array().sum("variable")
    tree = xr.DataTree.from_dict({
        "posterior": posterior,
        "log_prior": xr.Dataset({"lprior": lprior}),
        "log_likelihood": fit.idata["log_likelihood"].to_dataset(),
    })
    logger = logging.getLogger("arviz_stats")
    level = logger.level
    logger.setLevel(logging.ERROR)  # our diagnosis column says it in words; no link printed to the log
    try:
        table = psense.psense_summary(tree, threshold=threshold, alphas=alphas, round_to=6)
    finally:
        logger.setLevel(level)
    table = table.reindex([p.label for p in parameters])
    prior_hit, like_hit = table["prior"] >= threshold, table["likelihood"] >= threshold
    table["diagnosis"] = np.select([prior_hit & like_hit, prior_hit & ~like_hit],
                                   ["prior-data conflict", "strong prior / weak likelihood"], "")
    table.index.name = "parameter"
    return table[["prior", "likelihood", "diagnosis"]]
