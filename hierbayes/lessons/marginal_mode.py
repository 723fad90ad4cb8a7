"""The marginal mode of a gaussian multilevel model: lme4's maximum-likelihood estimate.

Integrate the group effects out of a gaussian model and what remains is the marginal
likelihood of the fixed effects ``b``, the group SDs and correlations and ``sigma``: the rows
are ``N(X b, Z L L' Z' + sigma^2 I)`` with ``L = blockdiag(diag(sd) @ chol(corr))``.
Its maximum (with no priors) is the estimate ``lme4::lmer(..., REML = FALSE)`` reports.
Unlike the joint mode, whose group SDs collapse to zero (:mod:`hierbayes.lessons.modes`),
it is a proper point estimate of the variance components.

The log-likelihood and its gradient are those the collapsed sampler uses
(:func:`hierbayes.model.marginal_likelihood.loglik_and_gradient`):

- one grouping factor, or a factor and one nested in it: level by level of the factor
  (:func:`hierbayes.model.collapsed.sufficient_statistics`), ``O(levels x q^3)`` a gradient;
- any other gaussian design (crossed factors, three factors): all group effects as one block
  of ``Q`` columns, ``O(Q^3)`` a gradient, for up to :data:`MAX_EFFECTS` effects.

``scipy.optimize.minimize`` (L-BFGS-B) works on a small vector: the fixed effects (in
standard errors from their least-squares value), ``log sigma`` and each block's Cholesky
factor ``L`` with a log diagonal. A non-converged optimizer gives NaN, never its last point.
Other families have no closed-form marginal likelihood; their marginal mode would need a
Laplace approximation, which hierbayes does not compute: the result says so.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> mode = marginal_mode(model)
>>> mode.converged, mode.values.round(2).to_dict()
(True, {'Intercept': 251.41, 'Days': 10.47, 'sd(Intercept|Subject)': 36.01, 'sigma': 30.9})
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, sparse

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import ConvergenceWarning
from hierbayes.model.collapsed import MAX_COEFS, nested_statistics, nesting, sufficient_statistics
from hierbayes.model.coordinates import factor_blocks
from hierbayes.specification.linear_predictor import design_effects
from hierbayes.specification.names import STAT, FactorNames
from hierbayes.specification.parameters import cor_pairs, model_parameters

marginal_likelihood = deferred_import("hierbayes.model.marginal_likelihood")  # compiles with numba: on first use

__all__ = ["marginal_mode", "marginal_mode_reason", "MarginalMode", "MAX_EFFECTS"]

MAX_EFFECTS = 600  # group effects in all, for a design the level-by-level path does not cover (Q x Q work)


@dataclass
class MarginalMode:
    """The marginal mode of a model, or why there is none.

    Attributes
    ----------
    values : Series
        By parameter label (:meth:`hierbayes.Fit.summary`'s index); NaN when not computed.
    converged : bool
        scipy's success flag (False when nothing was computed).
    message : str
        The optimizer's message, or why the mode was not computed.
    """

    values: pd.Series
    converged: bool
    message: str


def marginal_mode_reason(design, family) -> str | None:
    """Why hierbayes does not compute the marginal mode of this model (None: it does).

    Examples
    --------
    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"), family="student_t")
    >>> marginal_mode_reason(m.design, m.family)
    'the student_t family has no closed-form marginal likelihood (only the gaussian with the identity link has): its marginal mode needs a Laplace approximation, which hierbayes does not compute'
    """
    if not design.factors:
        return "the model has no group effects to integrate out: its marginal mode is its joint mode"
    if family.name != "gaussian" or family.link != "identity":
        return (f"the {family.name} family has no closed-form marginal likelihood (only the gaussian with the "
                "identity link has): its marginal mode needs a Laplace approximation, which hierbayes does not "
                "compute")
    if _level_by_level(design) is None:
        total = sum(len(fd.levels) * len(design.factor_coefs(f)) for f, fd in design.factors.items())
        if total > MAX_EFFECTS:
            return (f"the model's grouping factors are crossed and have {total} group effects in all; the marginal "
                    f"mode integrates at most {MAX_EFFECTS} crossed effects out (one {total} x {total} matrix a step)")
    return None


def _level_by_level(design) -> tuple[str, str | None] | None:
    """(factor, nested factor or None) when the likelihood goes level by level of one factor."""
    pair = nesting(design)
    if any(len(design.factor_coefs(f)) > MAX_COEFS for f in design.factors):
        return None
    if pair:
        return pair[0], pair[1]
    return (next(iter(design.factors)), None) if len(design.factors) == 1 else None


# --- the parameter vector ----------------------------------------------------------------------

def _layout(design, factor: str) -> list[tuple[slice, bool]]:
    """(coefficients, full Cholesky factor?) of each block of ``factor``."""
    return [(sl, block.block.correlated and len(block.coef_names) > 1) for _, block, sl in factor_blocks(design, factor)]


def _size(layout) -> int:
    return sum((sl.stop - sl.start) * (sl.stop - sl.start + 1) // 2 if full else sl.stop - sl.start
               for sl, full in layout)


def _scale_factor(x: np.ndarray, layout, q: int) -> np.ndarray:
    """``L`` (q x q) from a factor's entries of the parameter vector (log diagonal)."""
    L, i = np.zeros((q, q)), 0
    for sl, full in layout:
        n = sl.stop - sl.start
        rows, cols = np.tril_indices(n) if full else (np.arange(n), np.arange(n))
        values = x[i:i + len(rows)]
        block = np.zeros((n, n))
        block[rows, cols] = np.where(rows == cols, np.exp(values), values)
        L[sl, sl] = block
        i += len(rows)
    return L


def _scale_gradient(d_L: np.ndarray, L: np.ndarray, layout) -> np.ndarray:
    """The gradient in a factor's entries of the parameter vector, from the gradient in ``L``."""
    out = []
    for sl, full in layout:
        n = sl.stop - sl.start
        rows, cols = np.tril_indices(n) if full else (np.arange(n), np.arange(n))
        g, Lb = d_L[sl, sl][rows, cols], L[sl, sl][rows, cols]
        out.append(np.where(rows == cols, g * Lb, g))
    return np.concatenate(out) if out else np.zeros(0)


# --- the likelihood ------------------------------------------------------------------------------

class _Likelihood:
    """The marginal log-likelihood and its gradient in ``(theta, sigma, L per factor)``."""

    def __init__(self, design):
        y = design.y - (design.offset if design.offset is not None else 0.0)
        X = design.X
        effects = {f: (index, Z) for f, index, Z in design_effects(design)}
        self.factors = list(design.factors)
        self.q = {f: len(design.factor_coefs(f)) for f in self.factors}
        self.J = {f: len(design.factors[f].levels) for f in self.factors}
        self.path = _level_by_level(design)
        if self.path:
            top, nested = self.path
            index, Z = effects[top]
            self.stats = sufficient_statistics(y, X, index, Z, self.J[top])
            if nested:
                self.stats.update(nested_statistics(y, X, Z, effects[nested][0], effects[nested][1], nesting(design)[2]))
        else:  # every effect in one block: one "level" holding all rows
            cols, values, start = [], [], 0
            for f in self.factors:  # column start + j q + c: coefficient c of level j
                index, Zf = effects[f]
                cols.append(start + index[:, None] * self.q[f] + np.arange(self.q[f])[None, :])
                values.append(Zf)
                start += self.J[f] * self.q[f]
            cols, values = np.concatenate(cols, axis=1), np.concatenate(values, axis=1)
            Zall = sparse.csr_matrix((values.ravel(), cols.ravel(), np.arange(0, values.size + 1, values.shape[1])),
                                     shape=(len(y), start))
            stats = {STAT.N: np.float64(len(y)), STAT.yy: np.float64(y @ y), STAT.Wy: X.T @ y, STAT.WW: X.T @ X,
                     STAT.Zy: (Zall.T @ y)[None], STAT.ZW: np.asarray(Zall.T @ X)[None],
                     STAT.ZZ: (Zall.T @ Zall).toarray()[None]}
            self.stats = {k: np.ascontiguousarray(v, dtype=float) if np.ndim(v) else v for k, v in stats.items()}

    def __call__(self, theta, sigma, Ls: dict):
        """``(f, df/dtheta, df/dsigma, {factor: df/dL})``."""
        if self.path:
            top, nested = self.path
            f, d_theta, d_sigma, d_L, d_K = marginal_likelihood.loglik_and_gradient(self.stats, theta, sigma, Ls[top],
                                                                Ls[nested] if nested else None)
            return f, d_theta, d_sigma, {top: d_L, **({nested: d_K} if nested else {})}
        blocks = [np.kron(np.eye(self.J[f]), Ls[f]) for f in self.factors]
        Q = sum(b.shape[0] for b in blocks)
        big, start = np.zeros((Q, Q)), 0
        for b in blocks:
            big[start:start + len(b), start:start + len(b)] = b
            start += len(b)
        f, d_theta, d_sigma, d_big, _ = marginal_likelihood.loglik_and_gradient(self.stats, theta, sigma, big)
        d_Ls, start = {}, 0
        for fac in self.factors:
            J, q = self.J[fac], self.q[fac]
            d = d_big[start:start + J * q, start:start + J * q].reshape(J, q, J, q)
            d_Ls[fac] = np.einsum("jajb->ab", d)
            start += J * q
        return f, d_theta, d_sigma, d_Ls


def marginal_mode(model, maxiter: int | None = None) -> MarginalMode:
    """Maximize the marginal likelihood of a gaussian model: its group effects integrated out, no priors.

    For a gaussian model with the identity link this is the maximum-likelihood estimate of
    ``lme4::lmer(..., REML = FALSE)``: the fixed effects, the group SDs and correlations and
    ``sigma``. hierbayes's priors are left out, so that the numbers are lme4's.

    Parameters
    ----------
    model : Model
    maxiter : int, optional
        Most iterations of the optimizer (L-BFGS-B; default 2000).

    Returns
    -------
    MarginalMode
        ``values`` by parameter label. All NaN, with the reason in ``message``, when the family
        is not gaussian (:func:`marginal_mode_reason`) or the optimizer did not converge.
    """
    design, family = model.design, model.family
    labels = [p.label for p in model_parameters(design, family)]
    empty = pd.Series(np.nan, index=labels, name="marginal_mode")
    reason = marginal_mode_reason(design, family)
    if reason:
        return MarginalMode(empty, False, reason)
    loglik = _Likelihood(design)
    layouts = {f: _layout(design, f) for f in design.factors}
    X, y = design.X, design.y - (design.offset if design.offset is not None else 0.0)
    p = X.shape[1]
    theta0 = np.linalg.lstsq(X, y, rcond=None)[0] if p else np.zeros(0)
    s0 = float(np.sqrt(np.mean((y - X @ theta0) ** 2))) or 1.0
    se = s0 * np.sqrt(np.diag(np.linalg.pinv(X.T @ X))) if p else np.zeros(0)
    se = np.where(se > 0, se, 1.0)

    def unpack(x):
        theta, sigma, Ls, i = theta0 + se * x[:p], float(np.exp(x[p])), {}, p + 1
        for f, layout in layouts.items():
            n = _size(layout)
            Ls[f] = _scale_factor(x[i:i + n], layout, loglik.q[f])
            i += n
        return theta, sigma, Ls

    def objective(x):
        theta, sigma, Ls = unpack(x)
        f, d_theta, d_sigma, d_Ls = loglik(theta, sigma, Ls)
        grad = [d_theta * se, [d_sigma * sigma]] + [_scale_gradient(d_Ls[fac], Ls[fac], lay) for fac, lay in layouts.items()]
        return -f, -np.concatenate([np.ravel(g) for g in grad])

    x0 = [np.zeros(p), [np.log(s0)]]
    for f, layout in layouts.items():  # each SD starts at half the residual SD over its column's size
        Z = next(Z for g, _, Z in design_effects(design) if g == f)
        start = np.log(0.5 * s0 / np.maximum(np.sqrt(np.mean(Z**2, axis=0)), 1e-12))
        for sl, full in layout:
            n = sl.stop - sl.start
            rows, cols = np.tril_indices(n) if full else (np.arange(n), np.arange(n))
            x0.append(np.where(rows == cols, start[sl][rows], 0.0))
    res = optimize.minimize(objective, np.concatenate([np.ravel(v) for v in x0]), jac=True, method="L-BFGS-B",
                            options={"maxiter": maxiter or 2000, "ftol": 1e-14, "gtol": 1e-9})
    if not res.success:
        message = f"the optimizer did not converge (L-BFGS-B, {res.nit} iterations: {res.message})"
        warnings.warn(f"the marginal mode: {message}; its values are NaN", ConvergenceWarning, stacklevel=2)
        return MarginalMode(empty, False, message)
    message = f"L-BFGS-B, {res.nit} iterations: {res.message}"
    theta, sigma, Ls = unpack(res.x)
    values = dict(zip(design.fixed_names, theta))
    for f in design.factors:
        names, C = FactorNames(f), Ls[f] @ Ls[f].T
        coefs, sd = design.factor_coefs(f), np.sqrt(np.diag(Ls[f] @ Ls[f].T))
        values.update({names.sd_label(c): s for c, s in zip(coefs, sd)})
        values.update({names.cor_label(a, b): C[coefs.index(a), coefs.index(b)] / (sd[coefs.index(a)] * sd[coefs.index(b)])
                       for a, b in cor_pairs(design, f)})
    values["sigma"] = sigma
    return MarginalMode(pd.Series(values, name="marginal_mode").reindex(labels), True, message)
