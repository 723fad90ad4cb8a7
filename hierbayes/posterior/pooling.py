"""Complete, no and partial pooling of one varying coefficient, level by level.

A multilevel model sits between two simpler models of the same data:

- **no pooling**: every level of the factor gets its own coefficients, estimated from
  its own rows only (the level's least-squares or maximum-likelihood estimate);
- **complete pooling**: the factor is ignored and every level gets the population
  coefficients.

The multilevel (**partial pooling**) estimate of a level lies in between: it is pulled
from the level's own estimate toward the population value, the more so the less data
the level has. :func:`pooling` puts the three side by side.

How the two classical fits are defined
--------------------------------------
No pooling for factor ``g`` is one fit of the response on the columns of ``g``'s
varying coefficients *separately for every level* plus the population-level columns
that do not vary by ``g`` (shared by all levels, as in Gelman and Hill's
``lm(y ~ x + factor(g) - 1)``); other grouping factors are ignored. Complete pooling is
the fit of the population-level part of the formula alone. Both keep the offset, and
both are quasi-likelihood fits by iteratively reweighted least squares on the link
scale, weighted by the link's derivative ``d mu / d eta``
(:meth:`~hierbayes.specification.families.Link.derivative`) and the family's variance function
``V(mu)`` (:meth:`~hierbayes.specification.families.Family.working_variance`): least squares
for the gaussian and student-t families, maximum likelihood for bernoulli, binomial
and poisson, and the Poisson quasi-likelihood for the negative binomial (consistent
for the mean structure without alpha). So every number is on the link scale, and a
registered family gets them from its own registry entry.

A population-level column that is the varying column times a value constant within
each level (a level-2 predictor such as a county's uranium for the intercept, or a
cross-level interaction for a slope) is part of the level's coefficient: the
population value of level ``j`` is then ``b_term + sum_c b_c w_cj`` and differs
between levels, and the partial-pooling estimate is that plus the level's deviation
``r_j``. Without level-2 predictors it is ``b_term + r_j``, the ``total`` of
:meth:`~hierbayes.api.Fit.group_effects`.

Where a level cannot identify its coefficients the no-pooling estimate is NaN and the
``reason`` column says why: too few rows, a varying predictor that takes one value in
the level, or (for GLMs) responses all at a boundary of the support or separated by a
predictor, where the maximum-likelihood estimate is infinite.

The pooling factor
------------------
``pooling_factor = (no_pooling - partial_pooling) / (no_pooling - population)``: the
fraction of the distance from the level's own estimate to the population value
(posterior mean) that the partial-pooling estimate travelled; 0 is no pooling, 1 is
complete pooling. In the one-way normal model it is ``(s^2/n) / (s^2/n + tau^2)`` and
lies in [0, 1]. Elsewhere the ratio can fall slightly outside (a level whose own
estimate is already next to the population value makes it noisy; a correlated slope
or the shared coefficients can move the estimate sideways), so it is clipped to
[0, 1]; it is NaN where there is no no-pooling estimate or no distance to travel.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hierbayes.specification.formula import parse
>>> from hierbayes.specification.families import get_family
>>> from hierbayes.specification.design import make_design
>>> df = pd.DataFrame({"y": [1.0, 3.0, 2.0, 6.0, 5.0], "g": list("aabbc")})
>>> d = make_design(parse("y ~ 1 + (1 | g)"), df, get_family("gaussian"))
>>> est = no_pooling(d, get_family("gaussian"), "g")
>>> est.estimates[:, 0].tolist()
[2.0, 4.0, 5.0]
>>> round(float(complete_pooling(d, get_family("gaussian"))[0]), 6)
3.4
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hierbayes.common.errors import HierbayesError
from hierbayes.posterior.part_pooling import part_complete_pooling, part_no_pooling
from hierbayes.posterior.summaries import draw_stats, interval_names
from hierbayes.specification.design import Design
from hierbayes.specification.families import Family, Link
from hierbayes.specification.linear_predictor import design_effects, fixed_effect_draws
from hierbayes.specification.names import FactorNames

__all__ = ["pooling", "no_pooling", "complete_pooling", "level_columns", "NoPooling", "population_draws",
           "check_coefficient"]

MAX_ITERATIONS = 100
TOLERANCE = 1e-10
_SEPARATED_ETA = 15.0  # |eta| beyond which a GLM fit has run off to a boundary (mean within 3e-7 of it)


# --- which population-level columns belong to a level's coefficient ---------------------------------

def level_columns(design: Design, factor: str) -> dict[str, list[tuple[int, np.ndarray]]]:
    """The population-level columns that make up each varying coefficient of ``factor``.

    A fixed column ``c`` belongs to coefficient ``t`` when ``X[:, c] = Z[:, t] * w`` with
    ``w`` constant within every level: the coefficient's own column (``w = 1``), level-2
    predictors (for the intercept) and cross-level interactions (for a slope).

    Returns
    -------
    dict
        Coefficient name -> list of (column position in ``design.X``, ``w`` per level).
        ``w`` is NaN for a level where ``Z[:, t]`` is zero on every row.

    Examples
    --------
    >>> import pandas as pd
    >>> from hierbayes.specification.formula import parse
    >>> from hierbayes.specification.families import get_family
    >>> from hierbayes.specification.design import make_design
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "u": [0.5, 0.5, 2.0, 2.0], "g": list("aabb")})
    >>> d = make_design(parse("y ~ u + (1 | g)"), df, get_family("gaussian"))
    >>> [(d.fixed_names[c], w.tolist()) for c, w in level_columns(d, "g")["Intercept"]]
    [('Intercept', [1.0, 1.0]), ('u', [0.5, 2.0])]
    """
    fd = design.check_factor(factor)
    Z = _factor_Z(design, factor)
    J = len(fd.levels)
    out: dict[str, list[tuple[int, np.ndarray]]] = {c: [] for c in design.factor_coefs(factor)}
    for c in range(design.X.shape[1]):
        x = design.X[:, c]
        for k, coef in enumerate(design.factor_coefs(factor)):
            w = _level_ratio(x, Z[:, k], fd.index, J)
            if w is not None:
                out[coef].append((c, w))
                break
    return out


def _level_ratio(x: np.ndarray, z: np.ndarray, index: np.ndarray, J: int) -> np.ndarray | None:
    """``w`` per level with ``x = z * w`` and ``w`` constant within levels, or None."""
    scale = max(float(np.abs(x).max()), 1e-300)
    nonzero = z != 0
    if np.any(np.abs(x[~nonzero]) > 1e-12 * scale):
        return None
    if not nonzero.any():
        return None
    ratio = x[nonzero] / z[nonzero]
    idx = index[nonzero]
    lo = np.full(J, np.inf)
    hi = np.full(J, -np.inf)
    np.minimum.at(lo, idx, ratio)
    np.maximum.at(hi, idx, ratio)
    seen = np.isfinite(lo)
    if np.any(hi[seen] - lo[seen] > 1e-9 * max(float(np.abs(ratio).max()), 1.0)):
        return None
    w = np.where(seen, lo, np.nan)
    if np.ptp(ratio) == 0:  # the same value everywhere (the coefficient's own column)
        w = np.full(J, ratio[0])
    return w


def _shared_columns(design: Design, factor: str) -> list[int]:
    """The population-level columns that are part of no varying coefficient of ``factor`` (shared by its levels)."""
    absorbed = {c for cols in level_columns(design, factor).values() for c, _ in cols}
    return [c for c in range(design.X.shape[1]) if c not in absorbed]


def _factor_Z(design: Design, factor: str) -> np.ndarray:
    return next(Z for f, _, Z in design_effects(design) if f == factor)


# --- the weighted least-squares step with per-level coefficients -----------------------------------

def _level_sums(index: np.ndarray, J: int, weights: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Per-level ``A_j' W B_j`` as (J, a, b), from per-row products."""
    out = np.empty((J, A.shape[1], B.shape[1]))
    for k in range(A.shape[1]):
        for m in range(B.shape[1]):
            out[:, k, m] = np.bincount(index, weights=weights * A[:, k] * B[:, m], minlength=J)
    return out


def _weighted_fit(z: np.ndarray, w: np.ndarray, X: np.ndarray, Z: np.ndarray, index: np.ndarray,
                  J: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of ``z`` on shared columns ``X`` and per-level columns ``Z``.

    Solved level by level (Frisch-Waugh): the shared coefficients from the within-level
    residuals, then each level's coefficients given them. Pseudo-inverses keep
    rank-deficient levels harmless. Returns (shared (P,), per level (J, Q)).
    """
    P, Q = X.shape[1], Z.shape[1]
    zc = z[:, None]
    if Q == 0:
        beta = np.linalg.lstsq(X * np.sqrt(w)[:, None], z * np.sqrt(w), rcond=None)[0] if P else np.zeros(0)
        return beta, np.zeros((J, 0))
    A_inv = np.linalg.pinv(_level_sums(index, J, w, Z, Z), hermitian=True)
    c = _level_sums(index, J, w, Z, zc)[..., 0]
    beta = np.zeros(P)
    if P:
        B = _level_sums(index, J, w, Z, X)
        AB = A_inv @ B
        M = (X * w[:, None]).T @ X - np.einsum("jqp,jqr->pr", B, AB)
        r = (X * w[:, None]).T @ z - np.einsum("jqp,jq->p", AB, c)
        beta = np.linalg.lstsq(M, r, rcond=None)[0]
        c = c - B @ beta
    return beta, np.einsum("jqr,jr->jq", A_inv, c)


def _start(link: Link, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Where IRLS starts: halfway between the observed means and their average (statsmodels'
    start; from the observed means themselves an inverse Gaussian fit on the log link can run
    off), moved to ``(n p + 1/2) / (n + 1)`` where the link cannot take them (a 0 on the log
    link, a 0 or 1 on logit or probit)."""
    p = (p + np.average(p, weights=n)) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = np.isfinite(link.forward(p))
    return np.where(inside, p, (n * p + 0.5) / (n + 1)).astype(float)


def _irls(y: np.ndarray, trials: np.ndarray | None, offset: np.ndarray, X: np.ndarray, Z: np.ndarray,
          index: np.ndarray, J: int, family: Family) -> tuple[np.ndarray, np.ndarray, bool]:
    """Quasi-likelihood fit by iteratively reweighted least squares on the link scale.

    The weights are ``n (d mu / d eta)^2 / V(mu)``, from the link's derivative and the family's
    variance function (:meth:`~hierbayes.specification.families.Family.working_variance`).
    """
    link = family.link_function
    n = np.ones_like(y) if trials is None else trials
    p = y / n
    mu = _start(link, p, n)
    eta = link.forward(mu)
    beta, u = np.zeros(X.shape[1]), np.zeros((J, Z.shape[1]))
    last = None
    for _ in range(MAX_ITERATIONS):
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            d = np.maximum(link.derivative(eta), 1e-300)
            mu = link.inverse(eta)
            w = n * d**2 / np.maximum(family.working_variance(mu), 1e-300)
            # on the identity link mu = eta and d = 1: the working response is the data itself
            working = p - offset if link.name == "identity" else eta - offset + (p - mu) / d
        if last is not None and np.array_equal(w, last[0]) and np.array_equal(working, last[1]):
            return beta, u, True  # the same least-squares problem as the last step: its solution
        last = (w, working)
        beta, u = _weighted_fit(working, w, X, Z, index, J)
        new_eta = offset + X @ beta + np.einsum("nq,nq->n", Z, u[index])
        change = np.max(np.abs(new_eta - eta) / (1 + np.abs(new_eta)))
        eta = new_eta
        if change < TOLERANCE:
            return beta, u, True
        if link.bounded and np.max(np.abs(eta)) > 2 * _SEPARATED_ETA:
            break  # running off to a boundary: the caller finds the levels responsible
    return beta, u, False


# --- no pooling and complete pooling ---------------------------------------------------------------

@dataclass(frozen=True)
class NoPooling:
    """Each level's own estimates of the varying coefficients of one factor (link scale).

    Attributes
    ----------
    coefficients : tuple of str
    estimates : ndarray (J, Q)
        NaN where the level cannot identify its coefficients.
    reasons : tuple of str
        Per level: why its estimates are NaN ("" when they are not).
    shared : dict
        Estimates of the population-level columns shared by all levels.
    """

    coefficients: tuple[str, ...]
    estimates: np.ndarray
    reasons: tuple[str, ...]
    shared: dict[str, float]


def _unidentified(design: Design, factor: str, Z: np.ndarray) -> list[str]:
    """Per level, why ``Z``'s columns cannot be estimated from the level's rows ("" if they can)."""
    fd = design.factors[factor]
    coefs = design.factor_coefs(factor)
    J, Q = len(fd.levels), len(coefs)
    gram = _level_sums(fd.index, J, np.ones(len(fd.index)), Z, Z)
    counts = fd.counts
    reasons = [""] * J
    for j in range(J):
        scale = np.sqrt(np.maximum(np.diag(gram[j]), 1e-300))
        G = gram[j] / np.outer(scale, scale)
        if np.linalg.matrix_rank(G, rtol=1e-9, hermitian=True) == Q:
            continue
        if counts[j] < Q:
            reasons[j] = f"{counts[j]} observation{'s' if counts[j] != 1 else ''} for {Q} coefficients"
            continue
        rows = Z[fd.index == j]
        for k in range(Q):
            if np.linalg.matrix_rank(G[: k + 1, : k + 1], rtol=1e-9, hermitian=True) <= k:
                col = rows[:, k]
                if np.ptp(col) == 0:
                    reasons[j] = f"{coefs[k]!r} takes the single value {col[0]:g} in this level"
                else:
                    reasons[j] = f"{coefs[k]!r} is collinear with {', '.join(map(repr, coefs[:k]))} in this level"
                break
    return reasons


def _boundary_reason(family: Family, y: np.ndarray, trials: np.ndarray | None) -> str:
    """Why a level's maximum-likelihood estimate is infinite, judged from its responses alone:
    their mean is at a bound of the link (all 0 on the log link, all failures or all successes
    on logit and probit), where the link is infinite."""
    link = family.link_function
    n = np.ones_like(y) if trials is None else trials
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = float(link.forward(np.array([y.sum() / n.sum()]))[0])
    if not np.isinf(eta):
        return ""
    with np.errstate(all="ignore"):
        probability = bool(np.isfinite(link.inverse(np.array([-np.inf, np.inf]))).all())  # bounded both sides
    value = ("a failure" if eta < 0 else "a success") if probability else f"{y[0]:g}"
    side = "minus" if eta < 0 else "plus"
    return f"every response is {value}, so the estimate is {side} infinity on the {link.name} scale"


def no_pooling(design: Design, family: Family, factor: str) -> NoPooling:
    """Estimate the varying coefficients of ``factor`` separately for every level.

    One fit of the response on the factor's varying columns, level by level, plus the
    population-level columns that do not vary by ``factor`` (shared); other grouping
    factors are ignored. Least squares for gaussian and student-t, maximum likelihood
    (IRLS, link scale) for the GLM families.

    Parameters
    ----------
    design : Design
    family : Family
    factor : str

    Returns
    -------
    NoPooling
    """
    fd = design.check_factor(factor)
    J = len(fd.levels)
    coefs = design.factor_coefs(factor)
    Z = _factor_Z(design, factor)
    shared = _shared_columns(design, factor)
    offset = design.offset if design.offset is not None else np.zeros(design.n_obs)
    y = family.response_on_location_scale(design.y)  # log y for lognormal: its location is the mean of log y
    reasons = _unidentified(design, factor, Z)  # these levels stay in the fit: pinv copes with them
    dropped: set[int] = set()  # levels whose estimates are infinite: out of the fit
    for j in range(J):
        rows = fd.index == j
        if boundary := _boundary_reason(family, y[rows], None if design.trials is None else design.trials[rows]):
            reasons[j] = reasons[j] or boundary
            dropped.add(j)
    while True:
        keep = ~np.isin(fd.index, sorted(dropped))
        trials = None if design.trials is None else design.trials[keep]
        beta, u, converged = _irls(y[keep], trials, offset[keep], design.X[keep][:, shared],
                                   Z[keep], fd.index[keep], J, family)
        eta = offset + design.X[:, shared] @ beta + np.einsum("nq,nq->n", Z, u[fd.index])
        runaway = set() if not family.link_function.bounded else \
            {int(j) for j in np.unique(fd.index[keep & (np.abs(eta) > _SEPARATED_ETA)])}
        if not runaway:
            break
        for j in runaway:
            reasons[j] = reasons[j] or "no finite estimate: the level's responses are separated by its predictors"
            dropped.add(j)
    if not converged:
        raise HierbayesError(f"the no-pooling fit for {factor!r} did not converge in {MAX_ITERATIONS} iterations")
    estimates = np.where(np.array([bool(r) for r in reasons])[:, None], np.nan, u)
    names = [design.fixed_names[c] for c in shared]
    return NoPooling(coefs, estimates, tuple(reasons), dict(zip(names, beta.tolist())))


def complete_pooling(design: Design, family: Family) -> np.ndarray:
    """The population-level part of the formula fitted alone (every grouping factor ignored).

    Returns
    -------
    ndarray (p,)
        Coefficients of ``design.fixed_names``, on the link scale.
    """
    offset = design.offset if design.offset is not None else np.zeros(design.n_obs)
    index = np.zeros(design.n_obs, dtype=np.int64)
    y = family.response_on_location_scale(design.y)
    beta, _, converged = _irls(y, design.trials, offset, design.X, np.zeros((design.n_obs, 0)),
                               index, 1, family)
    if not converged:
        raise HierbayesError(f"the complete-pooling fit did not converge in {MAX_ITERATIONS} iterations "
                             "(a predictor may separate the responses)")
    return beta


# --- partial pooling from the posterior ------------------------------------------------------------

def check_coefficient(design: Design, factor: str, term: str) -> int:
    """Position of ``term`` among the varying coefficients of ``factor``; errors name what exists."""
    design.check_factor(factor)
    coefs = design.factor_coefs(factor)
    if term not in coefs:
        raise HierbayesError(f"{term!r} does not vary by {factor!r}; its varying coefficients are {list(coefs)}")
    return coefs.index(term)


def population_draws(fit, factor: str, term: str, part: str | None = None) -> np.ndarray:
    """Draws (chain, draw, level) of the population value of ``term`` for each level of ``factor``
    (in ``part``'s formula: ``"sigma"``; None, the mean's).

    ``sum_c b_c w_cj`` over the population-level columns that belong to the coefficient
    (:func:`level_columns`); 0 when the coefficient has no population-level term.
    """
    design, post = fit.model.design.check_part(part), fit.posterior
    check_coefficient(design, factor, term)
    b = fixed_effect_draws(post, design)
    out = np.zeros((post.sizes["chain"], post.sizes["draw"], len(design.factors[factor].levels)))
    for c, w in level_columns(design, factor)[term]:
        out = out + b[..., c, None] * w
    return out


def pooling(fit, factor: str, term: str = "Intercept", prob: float | None = None,
            part: str | None = None) -> pd.DataFrame:
    """No, complete and partial pooling of one varying coefficient, one row per level.

    Parameters
    ----------
    fit : Fit
    factor : str
        A grouping factor of the model.
    term : str, default "Intercept"
        One of the factor's varying coefficients.
    prob : float, optional
        Mass of the partial-pooling interval (the fit's, 0.95, by default).
    part : str, optional
        A family parameter with a formula of its own (``"sigma"`` of
        ``hb.Formula("y ~ x + (1 | g)", sigma="~ 1 + (1 | g)")``): its group effects, on its
        link (log for ``sigma``). A level's spread has no estimate without a mean, so its own
        (no-pooling) estimate is the maximum of the level's likelihood with the rest of the
        model at its posterior mean, and complete pooling likewise with the formula's grouping
        factors ignored (:mod:`hierbayes.posterior.part_pooling`).

    Returns
    -------
    DataFrame
        Index: the levels. Columns ``n`` (rows of the level), ``no_pooling``,
        ``complete_pooling``, ``population`` (posterior mean of the population value),
        ``partial_pooling`` (posterior mean), ``partial_sd``, the interval (``2.5%``,
        ``97.5%``), ``pooling_factor`` and ``reason`` (why ``no_pooling`` is NaN). All on
        the link scale (``attrs["scale"]``, with ``attrs["part"]``); see the module notes for
        the definitions.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> table = fit.pooling("Subject", "Days")
    >>> bool(table["pooling_factor"].between(0, 1).all())
    True
    """
    family = fit.model.family
    if family.nominal:
        raise HierbayesError(f"fit.pooling() compares one linear predictor with its no- and complete-pooling fits; "
                             f"the {family.name!r} family has one per category after the first, each with its own "
                             f"group effects: read them with fit.group_effects({factor!r}, part='mu<category>')")
    design = fit.model.design.check_part(part)
    k = check_coefficient(design, factor, term)
    if fit.model.design.additions:
        terms = " + ".join(str(a) for a in fit.model.spec.response.additions if a.term != "trials")
        raise HierbayesError(f"fit.pooling() compares the fit with no- and complete-pooling fits of the plain "
                             f"likelihood, which do not take the response's addition terms {terms}")
    prob = prob or fit.prob
    post = fit.posterior
    names = FactorNames(factor, part)
    r = post[names.effects].transpose("chain", "draw", names.level_dim, names.coef_dim).values
    pop = population_draws(fit, factor, term, part)
    partial = draw_stats(pop + r[..., k], prob)
    population = pop.reshape(-1, pop.shape[-1]).mean(axis=0)
    if part is None:
        own = no_pooling(design, family, factor)
        cp = complete_pooling(design, family)
    else:
        own = _part_no_pooling(fit, design, factor)
        cp = part_complete_pooling(fit, part)
    complete = np.zeros(len(population))
    for c, w in level_columns(design, factor)[term]:
        complete = complete + cp[c] * w
    estimate = own.estimates[:, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        moved = (estimate - partial["mean"]) / (estimate - population)
    lo, hi = interval_names(prob)
    table = pd.DataFrame({
        "n": design.factors[factor].counts,
        "no_pooling": estimate,
        "complete_pooling": complete,
        "population": population,
        "partial_pooling": partial["mean"],
        "partial_sd": partial["sd"],
        lo: partial[lo],
        hi: partial[hi],
        "pooling_factor": np.clip(np.where(np.isfinite(moved), moved, np.nan), 0.0, 1.0),
        "reason": list(own.reasons),
    }, index=pd.Index(list(design.factors[factor].levels), name=factor))
    scale = family.link if part is None else family.formula_link(part).name
    table.attrs.update({"factor": factor, "term": term, "scale": scale, "prob": prob, "part": part})
    return table


def _part_no_pooling(fit, design: Design, factor: str) -> NoPooling:
    """:func:`no_pooling` of a family parameter's formula (:func:`~hierbayes.posterior.part_pooling.part_no_pooling`):
    levels that cannot identify their coefficients keep the reason :func:`no_pooling` gives."""
    estimates, failed = part_no_pooling(fit, design.part, factor, _shared_columns(design, factor))
    reasons = [a or b for a, b in zip(_unidentified(design, factor, _factor_Z(design, factor)), failed)]
    estimates = np.where(np.array([bool(r) for r in reasons])[:, None], np.nan, estimates)
    return NoPooling(design.factor_coefs(factor), estimates, tuple(reasons), {})
