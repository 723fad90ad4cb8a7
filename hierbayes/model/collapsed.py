"""Collapsed Gaussian group effects: integrate them out exactly, draw them back exactly.

For a Gaussian model whose varying terms are all on one grouping factor, stack the
factor's coefficients into one ``Z`` (``q`` columns) with ``L = blockdiag(diag(sd) @
chol(corr))``, so that ``u_j = L w_j`` with ``w_j ~ N(0, I)``. Level ``j``'s rows are then
``y_j ~ N(W_j theta, Z_j L L' Z_j' + s^2 I)`` and, with ``r_j = y_j - W_j theta``,
``M_j = I + L' Z_j'Z_j L / s^2`` and ``c_j = L' Z_j' r_j``:

- ``log det V_j = n_j log s^2 + log det M_j`` (matrix determinant lemma),
- ``r_j' V_j^-1 r_j = (r_j'r_j - c_j' M_j^-1 c_j / s^2) / s^2`` (Woodbury).

:mod:`hierbayes.model.marginal_likelihood` evaluates the sum over levels and its gradient as
one PyTensor Op.

Everything comes from sums computed once in one pass over the rows
(:func:`sufficient_statistics`, ``np.bincount``, never a rows-by-levels matrix): the
totals ``y'y``, ``W'y``, ``W'W`` and per level ``Z'y``, ``Z'W``, ``Z'Z``. A gradient costs
``O(J q^3 + J q p + p^2)``, whatever the number of rows.

The sampler sees only the fixed effects, the SDs, the correlations and sigma. After
sampling, :func:`draw_group_effects` draws every level's effects from their exact
conditional posterior ``w_j ~ N(M_j^-1 c_j / s^2, M_j^-1)``, ``u_j = L w_j``, once per
posterior draw, so the joint draws are draws of the same posterior as the
non-centered model's and ``r_<factor>`` feeds group effects, ICCs, predictions and
shrinkage plots unchanged.

A factor with a factor nested in it (``(1 | school/class)``: ``school`` and
``school:class``, every class in one school) is integrated out level by level of the outer
factor: a school's rows and the effects of the school and of its classes form one block,
whose inverse and determinant come from the Schur complement of the classes
(:func:`nesting`, :func:`nested_statistics`), still ``O(levels x q^3)`` per gradient.

With crossed factors (``(1 | s) + (1 | d)``), one factor is integrated out
(:func:`~hierbayes.model.coordinates.integrated_factors`: the one with the most levels) and
the others' effects ``c`` are sampled: given ``c``, the factor's levels are independent and the
same algebra holds with the residual ``r = y - W theta - Z_other c``, whose level sums the
model forms from the rows at each gradient
(:func:`~hierbayes.model.marginal_likelihood.crossed_marginal_loglik`). The effects are drawn
back per draw given that draw's ``c`` (:func:`draw_group_effects` with ``offsets``, from the
sparse cross-sums of the two factors' levels).

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> m.collapsed
True
>>> sorted(v.name for v in m.fitting_model.free_RVs)
['Intercept_centered', 'b_slopes', 'corr_chol_0', 'sd_Subject', 'sigma']
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from hierbayes.model.coordinates import MAX_COEFS, factor_blocks, integrated_factors, nesting, sampled_design
from hierbayes.specification import names as N
from hierbayes.specification.linear_predictor import design_effects
from hierbayes.specification.names import STAT, STAT_NAMES, FactorNames, FixedNames

__all__ = ["collapse_reason", "nesting", "integrated_factors", "sufficient_statistics", "nested_statistics", "draw_group_effects", "collapsed_data",
           "with_group_effects", "MAX_COEFS", "STAT_NAMES"]

def collapse_reason(design, family) -> str | None:
    """Why the group effects of this model cannot be integrated out exactly (None if they can).

    Examples
    --------
    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"), family="student_t")
    >>> collapse_reason(m.design, m.family)
    'the student_t family is not gaussian with the identity link'
    """
    if not design.factors:
        return "the model has no grouping factor, so there are no group effects to integrate out"
    if family.name != "gaussian" or family.link != "identity":
        return f"the {family.name} family is not gaussian with the identity link"
    if design.parts:
        return (f"{design.parts[0].part} has a formula of its own, so the residual SD varies by row and the "
                "group effects cannot be integrated out in closed form")
    if design.additions:
        terms = " + ".join(str(a) for a in design.spec.response.additions if a.term != "trials")
        return f"the response has the addition terms {terms}, which the integrated likelihood does not take"
    integrated = integrated_factors(design)
    if not integrated:
        factor = next(iter(design.factors))
        q = len(design.factor_coefs(factor))
        return f"{factor!r} has {q} varying coefficients (at most {MAX_COEFS} are integrated out)"
    for factor in integrated:
        q = len(design.factor_coefs(factor))
        if q > MAX_COEFS:
            return f"{factor!r} has {q} varying coefficients (at most {MAX_COEFS} are integrated out)"
    return None


# --- sufficient statistics --------------------------------------------------------------------

def _level_sums(index: np.ndarray, J: int, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``out[j, a, b] = sum over rows of level j of A[:, a] * B[:, b]``, by ``np.bincount``."""
    out = np.empty((J, A.shape[1], B.shape[1]))
    for a in range(A.shape[1]):
        for b in range(B.shape[1]):
            out[:, a, b] = np.bincount(index, weights=A[:, a] * B[:, b], minlength=J)
    return out


def sufficient_statistics(y: np.ndarray, W: np.ndarray, index: np.ndarray, Z: np.ndarray, J: int,
                          shift: float = 0.0) -> dict[str, np.ndarray]:
    """The sums the collapsed likelihood needs, in one pass over the rows.

    Parameters
    ----------
    y : ndarray (N,)
        Response (minus any offset).
    W : ndarray (N, p)
        Fixed-effect columns as the sampler sees them (a column of ones for the
        centred intercept, then the centred slopes).
    index : ndarray (N,)
        Level of each row.
    Z : ndarray (N, q)
        The factor's varying columns (ones for a varying intercept).
    J : int
        Number of levels.
    shift : float
        Subtracted from ``y`` first (the response mean when ``W`` has the intercept);
        its coefficient is then ``intercept - shift``, which keeps ``y'y`` small.

    Returns
    -------
    dict
        ``cz_N``, ``cz_shift``, ``cz_yy``, ``cz_Wy`` (p,), ``cz_WW`` (p, p), ``cz_Zy`` (J, q),
        ``cz_ZW`` (J, q, p), ``cz_ZZ`` (J, q, q).

    Examples
    --------
    >>> y = np.array([1.0, 2.0, 4.0]); g = np.array([0, 0, 1])
    >>> s = sufficient_statistics(y, np.ones((3, 1)), g, np.ones((3, 1)), 2)
    >>> s["cz_Zy"].ravel().tolist(), s["cz_ZZ"].ravel().tolist(), float(s["cz_yy"])
    ([3.0, 4.0], [2.0, 1.0], 21.0)
    """
    y = np.asarray(y, dtype=float) - shift
    W, Z = np.asarray(W, dtype=float).reshape(len(y), -1), np.asarray(Z, dtype=float)
    return {
        STAT.N: np.float64(len(y)),
        STAT.shift: np.float64(shift),
        STAT.yy: np.float64(y @ y),
        STAT.Wy: W.T @ y,
        STAT.WW: W.T @ W,
        STAT.Zy: _level_sums(index, J, Z, y[:, None])[:, :, 0],
        STAT.ZW: _level_sums(index, J, Z, W),
        STAT.ZZ: _level_sums(index, J, Z, Z),
    }


def nested_statistics(y: np.ndarray, W: np.ndarray, Z: np.ndarray, index: np.ndarray, V: np.ndarray,
                      parent: np.ndarray, shift: float = 0.0) -> dict[str, np.ndarray]:
    """The nested factor's sums, its levels ordered by the level of the factor that holds them.

    Parameters
    ----------
    y, W, Z : ndarray
        As in :func:`sufficient_statistics` (``Z``: the outer factor's columns).
    index : ndarray (N,)
        Nested level of each row.
    V : ndarray (N, q_v)
        The nested factor's varying columns.
    parent : ndarray (J_v,)
        Outer level of each nested level (:func:`nesting`).
    shift : float

    Returns
    -------
    dict
        ``cz_Vy`` (J_v, q_v), ``cz_VW`` (J_v, q_v, p), ``cz_VV`` (J_v, q_v, q_v), ``cz_VZ``
        (J_v, q_v, q), in the order ``np.argsort(parent, kind="stable")``, and ``cz_first``
        (J + 1,): the nested levels of outer level ``j`` are ``first[j]:first[j + 1]``.
    """
    y = np.asarray(y, dtype=float) - shift
    W, Z, V = (np.asarray(a, dtype=float).reshape(len(y), -1) for a in (W, Z, V))
    Jv = len(parent)
    order = np.argsort(parent, kind="stable")
    counts = np.bincount(parent, minlength=int(parent.max()) + 1 if Jv else 0)
    return {
        STAT.Vy: _level_sums(index, Jv, V, y[:, None])[order, :, 0],
        STAT.VW: _level_sums(index, Jv, V, W)[order],
        STAT.VV: _level_sums(index, Jv, V, V)[order],
        STAT.VZ: _level_sums(index, Jv, V, Z)[order],
        STAT.first: np.concatenate([[0], np.cumsum(counts)]).astype(float),
    }


# --- exact draws of the group effects ----------------------------------------------------------------

def draw_group_effects(stats: dict, theta: np.ndarray | None, sigma: np.ndarray, L: np.ndarray,
                       rng: np.random.Generator, K: np.ndarray | None = None, max_values: int = 4_000_000,
                       offsets: np.ndarray | None = None):
    """One draw of every level's effects per posterior draw, from their conditional posterior.

    Parameters
    ----------
    stats : dict
        :func:`sufficient_statistics` (NumPy arrays), with :func:`nested_statistics` when ``K`` is given.
    theta : ndarray (S, p) or None
    sigma : ndarray (S,)
    L : ndarray (S, q, q)
    rng : numpy.random.Generator
    K : ndarray (S, q_v, q_v), optional
        The nested factor's scale factor per draw.
    max_values : int
        Draws are processed in chunks of about this many numbers (memory bound).
    offsets : ndarray (S, J, q), optional
        ``Z_j'`` times the sampled factors' effects, per draw (crossed designs: the factor's
        levels are independent given them), subtracted from ``Z_j' r_j``.

    Returns
    -------
    ndarray (S, J, q), or a pair of it and (S, J_v, q_v) with ``K``
        ``u_j = L w_j`` with ``w_j ~ N(S_j^-1 r_j / s^2, S_j^-1)`` (``S_j = M_j`` and ``r_j = c_j``
        without a nested factor), then each nested level's ``K v_k`` with
        ``v_k | w_j ~ N(D_k^-1 (c_k / s^2 - B_k' w_j), D_k^-1)`` (:mod:`hierbayes.model.marginal_likelihood`).

    Examples
    --------
    With a tiny residual SD the effects are pinned to the level means' departures:

    >>> y = np.array([1.0, 1.0, 3.0, 3.0]); g = np.array([0, 0, 1, 1])
    >>> st = sufficient_statistics(y, np.ones((4, 1)), g, np.ones((4, 1)), 2)
    >>> u = draw_group_effects(st, np.array([[2.0]]), np.array([1e-4]), np.array([[[10.0]]]),
    ...                        np.random.default_rng(0))
    >>> np.round(u[0, :, 0], 2).tolist()
    [-1.0, 1.0]
    """
    S, q = L.shape[0], L.shape[-1]
    J = stats[STAT.ZZ].shape[0]
    Jv, qv = (0, 0) if K is None else stats[STAT.Vy].shape
    u, e = np.empty((S, J, q)), np.empty((S, Jv, qv))
    if Jv:
        parent = np.repeat(np.arange(J), np.diff(stats[STAT.first]).astype(int))
    step = max(1, max_values // max(1, J * q * q + Jv * q * qv))
    for start in range(0, S, step):
        sl = slice(start, min(S, start + step))
        Ls, s2 = L[sl], sigma[sl][:, None, None] ** 2
        c, M = _scaled_terms(stats[STAT.Zy], stats[STAT.ZW], stats[STAT.ZZ], theta, sl, Ls, s2,
                             None if offsets is None else offsets[sl])
        if Jv:  # Schur complement of the nested levels
            Ks = K[sl]
            ck, D = _scaled_terms(stats[STAT.Vy], stats[STAT.VW], stats[STAT.VV], theta, sl, Ks, s2)
            RD = _cholesky(D)
            B = np.swapaxes(Ls, 1, 2)[:, None] @ np.swapaxes(stats[STAT.VZ], 1, 2)[None] @ Ks[:, None] / s2[..., None]
            DinvBt = np.stack([_chol_solve(RD, B[..., a, :]) for a in range(q)], axis=-1)  # (S, Jv, qv, q)
            Dinvc = _chol_solve(RD, ck)
            M = M.copy()
            c = c.copy()
            np.add.at(M, (slice(None), parent), -(B @ DinvBt))
            np.add.at(c, (slice(None), parent), -(B @ Dinvc[..., None])[..., 0])
        R = _cholesky(M)  # S_j = R R'
        w = _chol_solve(R, c / s2) + _solve_upper(R, rng.standard_normal(c.shape))  # covariance R^-T R^-1
        u[sl] = w @ np.swapaxes(Ls, 1, 2)                                           # u_j = L w_j
        if Jv:
            Btw = (w[:, parent, None, :] @ B)[..., 0, :]                            # B_k' w_j
            v = _chol_solve(RD, ck / s2 - Btw) + _solve_upper(RD, rng.standard_normal(ck.shape))
            e[sl] = v @ np.swapaxes(Ks, 1, 2)
    return u if K is None else (u, e)


def _scaled_terms(Zy, ZW, ZZ, theta, sl, Ls, s2, offsets=None):
    """``c_j = L' Z_j' r_j`` (S, J, q) and ``M_j = I + L' Z_j'Z_j L / s^2`` (S, J, q, q) for draws ``sl``."""
    J, q = Zy.shape
    w = Zy[None] if theta is None else Zy[None] - (theta[sl] @ ZW.reshape(J * q, -1).T).reshape(-1, J, q)
    if offsets is not None:
        w = w - offsets
    M = np.eye(q) + (np.swapaxes(Ls, 1, 2)[:, None] @ ZZ[None] @ Ls[:, None]) / s2[..., None]
    return w @ Ls, M


def _chol_solve(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with R R' x = b."""
    return _solve_upper(R, _solve_lower(R, b))


# small q x q systems for every (draw, level) at once: loops over q, arrays over the rest

def _cholesky(M: np.ndarray) -> np.ndarray:
    R = np.zeros_like(M)
    for i in range(M.shape[-1]):
        for j in range(i + 1):
            s = M[..., i, j] - (R[..., i, :j] * R[..., j, :j]).sum(axis=-1)
            R[..., i, j] = np.sqrt(s) if i == j else s / R[..., j, j]
    return R


def _solve_lower(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with R x = b, R lower triangular."""
    x = np.zeros_like(b)
    for i in range(b.shape[-1]):
        x[..., i] = (b[..., i] - (R[..., i, :i] * x[..., :i]).sum(axis=-1)) / R[..., i, i]
    return x


def _solve_upper(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with R' x = b, R lower triangular."""
    x = np.zeros_like(b)
    for i in reversed(range(b.shape[-1])):
        x[..., i] = (b[..., i] - (R[..., i + 1:, i] * x[..., i + 1:]).sum(axis=-1)) / R[..., i, i]
    return x


# --- glue: the model's data and its posterior ------------------------------------------------------

def collapsed_data(data: dict, design) -> dict:
    """:func:`hierbayes.model.data.model_data` with the rows replaced by the sufficient statistics.

    ``W`` is what the non-collapsed model multiplies its fixed effects by: a column of ones
    for the (centred) intercept, then the centred slope columns ``X``. With a nested factor
    (:func:`nesting`), its sums (:func:`nested_statistics`) are added. With crossed factors the
    rows stay (the sampled factors' effects and the fixed effects make each row's residual,
    whose level sums the likelihood takes: :func:`~hierbayes.model.marginal_likelihood.crossed_marginal_loglik`),
    and only ``N`` and the integrated factor's ``Z'Z`` are added.
    """
    effects = {factor: (index, Z) for factor, index, Z in design_effects(design)}
    pair = nesting(design)
    factor = integrated_factors(design)[0]
    if sampled_design(design).factors:  # crossed: the rows stay for the sampled factors' effects
        index, Z = effects[factor]
        return {**data, STAT.N: np.float64(len(index)),
                STAT.ZZ: _level_sums(index, len(design.factors[factor].levels), Z, Z)}
    y = data[N.RESPONSE_DATA] - data.get(N.OFFSET_DATA, 0.0)
    W = np.column_stack([np.ones(len(y))] * design.has_intercept + [data[N.X_DATA]])
    shift = float(y.mean()) if design.has_intercept else 0.0
    rows = {N.RESPONSE_DATA, N.OFFSET_DATA, N.X_DATA} | {
        name for f in effects for name in (FactorNames(f).index, FactorNames(f).columns)}
    out = {k: v for k, v in data.items() if k not in rows}
    index, Z = effects[factor]
    out.update(sufficient_statistics(y, W, index, Z, len(design.factors[factor].levels), shift))
    if pair:
        nested_index, V = effects[pair[1]]
        out.update(nested_statistics(y, W, Z, nested_index, V, pair[2], shift))
    return out


def _draws(posterior: xr.Dataset, name: str, *dims) -> np.ndarray:
    """(chain * draw, ...) values of one posterior variable."""
    values = posterior[name].transpose("chain", "draw", *dims).values
    return values.reshape(-1, *values.shape[2:])


def _scale_draws(posterior: xr.Dataset, design, factor: str) -> np.ndarray:
    """``L = blockdiag(diag(sd) @ chol(corr))`` per draw, (S, q, q), as the model builds it."""
    sd = _draws(posterior, FactorNames(factor).sd, FactorNames(factor).coef_dim)
    L = np.zeros(sd.shape + sd.shape[-1:])
    for k, block, sl in factor_blocks(design, factor):
        if block.block.correlated and len(block.coef_names) > 1:
            L[:, sl, sl] = sd[:, sl, None] * _draws(posterior, N.corr_chol(k), ...)
        else:
            idx = np.arange(sl.start, sl.stop)
            L[:, idx, idx] = sd[:, sl]
    return L


def with_group_effects(run, design, data: dict, seed: int | None):
    """Add ``r_<factor>`` to a collapsed model's sampler run: one exact draw per posterior draw.

    Parameters
    ----------
    run : hierbayes.backend.sampling.SamplerRun
    design : Design
    data : dict
        The collapsed model's data (:func:`collapsed_data`).
    seed : int, optional
    """
    t0 = time.perf_counter()
    posterior = run.tree["posterior"].to_dataset()
    pair = nesting(design)
    factor = integrated_factors(design)[0]
    shape = (posterior.sizes["chain"], posterior.sizes["draw"])
    rng = np.random.default_rng(None if seed is None else [seed, 1])
    if sampled_design(design).factors:
        stats, theta, offsets = _crossed_statistics(posterior, design, data, factor)
        effects = {factor: draw_group_effects(stats, theta, _draws(posterior, "sigma"),
                                              _scale_draws(posterior, design, factor), rng, offsets=offsets)}
        return _record(run, posterior, effects, shape, t0)
    parts = []
    if design.has_intercept:
        parts.append(_draws(posterior, N.INTERCEPT_CENTERED)[:, None] - data[STAT.shift])
    if N.SLOPES in posterior:
        parts.append(_draws(posterior, N.SLOPES, ...))
    theta = np.concatenate(parts, axis=1) if parts else None
    L = _scale_draws(posterior, design, factor)
    effects = {factor: draw_group_effects(data, theta, _draws(posterior, "sigma"), L, rng)} if not pair else {}
    if pair:
        K = _scale_draws(posterior, design, pair[1])
        u, e = draw_group_effects(data, theta, _draws(posterior, "sigma"), L, rng, K=K)
        effects[factor] = u
        effects[pair[1]] = e[:, np.argsort(np.argsort(pair[2], kind="stable"))]  # back to the level order
    return _record(run, posterior, effects, shape, t0)


def _record(run, posterior: xr.Dataset, effects: dict, shape: tuple, t0: float):
    """Put the drawn ``effects`` (by factor, (S, J, q)) into the run's posterior as ``r_<factor>``."""
    for f in effects:
        names = FactorNames(f)
        dims = ("chain", "draw", names.level_dim, names.coef_dim)
        posterior[names.effects] = (dims, effects[f].reshape(shape + effects[f].shape[1:]))
    run.tree["posterior"] = xr.DataTree(posterior)
    run.timings["effects"] = time.perf_counter() - t0
    return run


def _crossed_statistics(posterior: xr.Dataset, design, data: dict, factor: str):
    """What :func:`draw_group_effects` needs for the integrated factor of a crossed design.

    ``Z_j' r_j`` with ``r = y - offset - X b - sum_f Z_f u_f`` per draw is ``Z'y`` less the fixed
    part ``Z_j'X b`` (``theta = b``, ``Z'W = Z'X``) less ``offsets = Z_j' Z_f u_f``: for each pair of
    columns, the sparse cross-sum matrix of the factor's levels and the sampled factor's levels
    (one entry per pair of levels that share rows) times the draws of ``u_f``; never a row per draw.
    """
    from scipy import sparse

    effects = {f: (index, Z) for f, index, Z in design_effects(design)}
    index, Z = effects[factor]
    J, q = len(design.factors[factor].levels), Z.shape[1]
    y = data[N.RESPONSE_DATA] - data.get(N.OFFSET_DATA, 0.0)
    stats = {STAT.ZZ: data[STAT.ZZ], STAT.Zy: _level_sums(index, J, Z, y[:, None])[:, :, 0],
             STAT.ZW: _level_sums(index, J, Z, design.X)}
    fixed = FixedNames()
    theta = _draws(posterior, fixed.effects, fixed.dim) if design.fixed_names else None
    S = posterior.sizes["chain"] * posterior.sizes["draw"]
    offsets = np.zeros((S, J, q))
    for f in sampled_design(design).factors:
        g, Zf = effects[f]
        names = FactorNames(f)
        u = _draws(posterior, names.effects, names.level_dim, names.coef_dim)
        for a in range(q):
            for b in range(Zf.shape[1]):
                cross = sparse.csr_matrix((Z[:, a] * Zf[:, b], (index, g)), shape=(J, u.shape[1]))
                offsets[:, :, a] += (cross @ u[:, :, b].T).T
    return stats, theta, offsets
