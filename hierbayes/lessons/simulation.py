"""Simulation from the prior for calibration (:mod:`hierbayes.lessons.calibration`): the parameters
ranked, draws of the priors in force, and a response simulated through the design.

The simulation is a NumPy path of its own, independent of the PyMC model it checks: group
effects ``u = z @ L.T`` with ``L = diag(sd) @ chol(corr)``, the linear predictor of each formula
(:func:`~hierbayes.specification.linear_predictor.linear_predictor`), the inverse link and the
family's draws. A family parameter with its own formula (``sigma ~ x + (1 | g)``) gets one value
per row, the inverse of its link at its own linear predictor; an ordinal family's thresholds
are drawn at the slope columns' means, as the model samples them, restricted to increasing
values for ``cumulative`` (the ordered transform's prior), and its response is the category. A
nominal family's parts ``mu<c>`` are such parameter formulas, and its response is drawn from their
softmax: a category per row (``categorical``) or counts of each out of the row's total (``multinomial``).

Examples
--------
>>> import numpy as np
>>> import hierbayes as hb
>>> from hierbayes.lessons.calibration import calibration_data
>>> f = hb.Formula("y ~ x + (1 | g)", sigma="~ x + (1 | g)")
>>> m = hb.Model(f, calibration_data(groups=6, per_group=4, seed=1))
>>> rng = np.random.default_rng(1)
>>> theta = {label: v[0] for label, v in draw_prior(m.priors, m.design, 1, rng).items()}
>>> truth, y = simulate_truth(m.design, m.family, m.priors, theta, rng)
>>> y.shape, sorted(truth.data_vars)
((24,), ['b', 'b_sigma', 'r_g', 'r_g__sigma', 'sd_g', 'sd_g__sigma'])
>>> [p.label for p in tracked_parameters(m.design, m.family)][3:]
['sigma_Intercept', 'sigma_x', 'sd(sigma_Intercept|g)', 'r_g[g0,Intercept]', 'r_g__sigma[g0,Intercept]']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.common.errors import HierbayesError
from hierbayes.model import data as _data
from hierbayes.specification.linear_predictor import design_effects, linear_predictor
from hierbayes.specification.names import THRESHOLD_DIM, THRESHOLDS, FactorNames, FixedNames, cor_pair, threshold_coords
from hierbayes.specification.parameters import (
    Parameter,
    cor_pairs,
    group_effect_parameters,
    lkj_label,
    model_parameters,
    threshold_parameters,
)
from hierbayes.specification.priors import PRIOR_KINDS, Prior

__all__ = ["draw_prior", "simulate_truth", "tracked_parameters", "ordered_labels", "with_response"]

MAX_ORDER_ROUNDS = 1000  # rounds of draws that may fail to give increasing thresholds before giving up


def tracked_parameters(design, family) -> list[Parameter]:
    """Every printed parameter plus the group effects of the first level of each factor (of every formula).

    The group effects are labelled as in :meth:`Fit.diagnostics`: ``r_g[level,coef]``.
    """
    first = {factor: [fd.levels[0]] for factor, fd in design.all_factors.items()}
    return list(model_parameters(design, family)) + group_effect_parameters(design, first)


def ordered_labels(design, family) -> list[str]:
    """The labels whose joint prior is restricted to increasing values: a cumulative model's thresholds."""
    if family.thresholds is None or not family.thresholds.ordered:
        return []
    return [p.label for p in threshold_parameters(design)]


# --- step 1: parameters from the priors -----------------------------------------------------------

def draw_prior(priors: Mapping[str, Prior], design, n: int, rng: np.random.Generator, *,
               ordered: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """``n`` draws of every prior in force, by label, with PyMC's own distributions.

    LKJ priors give Cholesky factors of correlation matrices, ``(n, q, q)``. The labels of
    ``ordered`` (:func:`ordered_labels`) are kept only where they increase, as the ordered
    transform restricts their prior (rejection: exact).
    """
    import pymc as pm

    dims = {lkj_label(b, part.part): len(b.coef_names) for part in (design, *design.parts) for b in part.blocks}
    labels = list(priors)
    dists = []
    for label in labels:
        prior = priors[label]
        kind = PRIOR_KINDS[prior.kind]
        if prior.kind == "LKJ":
            dists.append(kind.distribution.dist(n=dims[label], **prior.values))
        else:
            dists.append(kind.distribution.dist(**prior.values))
    kept: list[dict[str, np.ndarray]] = []
    total = 0
    for _ in range(MAX_ORDER_ROUNDS):
        values = pm.draw(dists, draws=n, random_seed=int(rng.integers(2**31)))
        # pm.draw drops the draws axis when n == 1
        draws = {label: np.asarray(v)[None] if n == 1 else np.asarray(v) for label, v in zip(labels, values, strict=True)}
        if ordered:
            increasing = np.all(np.diff(np.stack([draws[label] for label in ordered], axis=-1), axis=-1) > 0, axis=-1)
            draws = {label: v[increasing] for label, v in draws.items()}
        kept.append(draws)
        total += len(next(iter(draws.values())))
        if total >= n:
            return {label: np.concatenate([d[label] for d in kept])[:n] for label in labels}
    raise HierbayesError(f"the priors of {list(ordered)} gave increasing values too rarely to draw from; "
                         "give them locations that increase")


# --- step 2: the response through the design ----------------------------------------------------

def _formula_truth(design, theta: Mapping[str, np.ndarray], rng: np.random.Generator, x_mean,
                   variables: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """One formula's (the mean's or a family parameter's) fixed and group effects from ``theta``, recorded in
    ``variables`` under the posterior's names; its linear predictor and its fixed slopes."""
    fixed = FixedNames(design.part)
    names = design.fixed_names
    b = slopes = None
    if names:
        b = np.array([float(theta[fixed.label(n)]) for n in names])
        slopes = np.array([b[j] for j, n in enumerate(names) if n != "Intercept"])
        if design.has_intercept:  # the Intercept prior is on the intercept at centred predictors
            b[names.index("Intercept")] -= float(x_mean @ slopes) if x_mean is not None else 0.0
        variables[fixed.effects] = ((fixed.dim,), b, {fixed.dim: list(names)})
    effects = []
    for factor, index, Z in design_effects(design):
        fn, coefs = FactorNames(factor, design.part), design.factor_coefs(factor)
        J = len(design.factors[factor].levels)
        sd = np.array([float(theta[fn.sd_label(c)]) for c in coefs])
        z = rng.standard_normal((J, len(coefs)))
        r, cors, start = np.empty_like(z), [], 0
        for block in (b_ for b_ in design.blocks if b_.factor == factor):
            q = len(block.coef_names)
            sl = slice(start, start + q)
            start += q
            if block.block.correlated and q > 1:
                chol = np.asarray(theta[lkj_label(block, design.part)])
                r[:, sl] = z[:, sl] @ (sd[sl][:, None] * chol).T
                corr = chol @ chol.T
                cors += [corr[i, j] for j in range(q) for i in range(j)]
            else:
                r[:, sl] = z[:, sl] * sd[sl]
        fdim, cdim = fn.level_dim, fn.coef_dim
        variables[fn.sd] = ((cdim,), sd, {cdim: list(coefs)})
        variables[fn.effects] = ((fdim, cdim), r, {fdim: list(design.factors[factor].levels), cdim: list(coefs)})
        if cors:
            pairs = cor_pairs(design, factor)
            variables[fn.cor] = ((fn.cor_dim,), np.array(cors), {fn.cor_dim: [cor_pair(a, c) for a, c in pairs]})
        effects.append((r, index, Z))
    return linear_predictor(b, design.X, design.offset, effects), slopes


def simulate_truth(design, family, priors: Mapping[str, Prior], theta: Mapping[str, np.ndarray],
                   rng: np.random.Generator) -> tuple[xr.Dataset, np.ndarray]:
    """Turn one prior draw into the posterior variables it implies and a simulated response.

    Parameters
    ----------
    design, family
        Of the model being calibrated.
    priors : mapping
        The priors in force (only used for their labels' layout).
    theta : mapping of label -> value
        One draw of :func:`draw_prior`.
    rng : numpy.random.Generator

    Returns
    -------
    truth : xarray.Dataset
        ``b``, ``sd_<f>``, ``cor_<f>``, ``r_<f>`` (and those of each family parameter's formula,
        ``b_sigma``, ``r_g__sigma``, ...), the family parameters that are one number and an
        ordinal model's ``thresholds``, with the posterior's dims and coordinates, and a
        ``chain`` and ``draw`` of length one.
    y : ndarray (N,) or (N, K)
        The simulated response (an ordinal or categorical response's category position, 0 .. K-1;
        a multinomial's counts of each of its K categories, summing to the design's row totals).
    """
    data = _data.model_data(design, family, priors)
    variables: dict[str, tuple] = {}
    eta, slopes = _formula_truth(design, theta, rng, data.get(FixedNames().X_mean), variables)
    params: dict[str, object] = {}
    for name, _ in family.parameters:
        part = design.part_design(name)
        if part is None:
            params[name] = float(theta[name])
            variables[name] = ((), np.float64(params[name]), {})
        else:
            part_eta, _ = _formula_truth(part, theta, rng, data.get(FixedNames(part.part).X_mean), variables)
            params[name] = family.formula_link(name).inverse(part_eta)
    for name, value in family.derived:  # ordered beta's cutone
        if np.ndim(derived := value(params)) == 0:
            variables[name] = ((), np.float64(derived), {})
    if family.thresholds is not None:
        centred = np.array([float(theta[p.label]) for p in threshold_parameters(design)])
        x_mean = data.get(FixedNames().X_mean)
        thresholds = centred + (float(x_mean @ slopes) if slopes is not None and x_mean is not None else 0.0)
        params[THRESHOLDS] = thresholds
        variables[THRESHOLDS] = ((THRESHOLD_DIM,), thresholds, {THRESHOLD_DIM: threshold_coords(len(design.categories))})
    trials = None if design.trials is None else np.rint(design.trials).astype(np.int64)  # numpy's binomial wants ints
    y = family.draw(rng, eta, params, trials, design.additions)
    truth = xr.Dataset({
        name: xr.DataArray(value, dims=dims, coords=coords).expand_dims(chain=1, draw=1)
        for name, (dims, value, coords) in variables.items()
    })
    return truth, np.asarray(y, dtype=float)


def with_response(data: pd.DataFrame, design, y: np.ndarray, family=None) -> pd.DataFrame:
    """``data`` with the simulated response in the response's column(s): failures for ``cbind``, the
    categories (ordered, as the design's) for an ordinal response's positions, a nominal ``family``'s
    categories (unordered, in the family's order) for a categorical response's positions and a
    multinomial's counts ``(N, K)`` in its count columns."""
    spec = design.spec
    out = data.copy()
    if family is not None and family.nominal:
        categories = list(family.categories)
        if spec.response.counts:  # multinomial: one count column per category
            for k, column in enumerate(spec.response.counts):
                out[column] = np.rint(y[:, k]).astype(np.int64)
            return out
        y = pd.Categorical.from_codes(np.asarray(y, dtype=int), categories=categories)
    elif design.categories:
        y = pd.Categorical.from_codes(np.asarray(y, dtype=int), categories=list(design.categories), ordered=True)
    out[spec.response.expr] = y
    if spec.response.is_cbind:
        out[spec.response.failures] = design.trials - y
    return out
