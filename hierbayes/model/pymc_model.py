"""Design + priors -> ``pm.Model``: writing the PyMC model.

Every array that depends on the data or on prior values enters as ``pm.Data``, so
the compiled model depends only on the *structure* (family, terms, blocks, level
counts, prior kinds). :func:`structure_key` names that structure; the sampler keeps
one compiled model per key and refits new data or new priors by swapping the data.

Group effects of a factor with J levels and Q varying coefficients:

- non-centered: ``z[J, Q] ~ Normal(0, 1)``, and for each block
  ``u = z @ L.T`` with ``L = diag(sd) @ chol(corr)`` (``chol(corr) ~ LKJ``), or
  ``u = z * sd`` for ``||`` and one-coefficient blocks. When a coefficient is also a
  fixed effect, ``z`` is drawn as its level mean ``z_mean`` and Helmert contrasts
  ``z_contrasts`` (the same iid normal ``z``), and the fixed effect is sampled plus the
  effects' mean (``Intercept_centered`` and ``beta`` then hold ``alpha + mean(u)``; ``b``
  holds the fixed effects): the sum the data fix becomes one coordinate
  (:func:`hierbayes.model.coordinates.sheared`, for factors whose levels are of even size);
- centered: ``u[j] ~ MvNormal(0, L L')`` per level (``Normal(0, sd)`` when independent);
  one centered factor (:func:`~hierbayes.model.coordinates.hierarchical_centering`: the one with the most rows per
  level) instead draws ``v[j] ~ MvNormal(mu, L L')`` centred on the fixed effects ``mu``
  of its coefficients (Gelfand, Sahu and Carlin 1995): the linear predictor uses
  ``v[j]`` in place of ``mu + u[j]`` and the posterior records ``r[j] = v[j] - mu``.
  This is the same model (a shift of unit Jacobian), and the intercept mixes much
  better when the levels hold many rows.

The fixed-effect columns other than the intercept are centred; the posterior keeps
the intercept on the original scale as ``b`` (dim ``term``) next to
``Intercept_centered``.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sorted(m.pymc_model.named_vars)[:4]
['Intercept_centered', 'Reaction', 'X', 'Z_Subject']
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hierbayes.deferred import deferred_import
from hierbayes.model.coordinates import (
    centred_slopes,
    centring_shift,
    effect_means,
    factor_blocks,
    fixed_shift,
    fixed_slopes,
    folded_factors,
    helmert_rest,
    hierarchical_centering,
    less_shift,
    parameterization_of,
    sheared,
)
from hierbayes.model.data import (
    FIXED_DATA,
    SLOPE_DIM,
    is_row_data,
    model_coords,
    model_data,
    pack_data,
    prior_groups,
    response_name,
)
from hierbayes.spec import names as N
from hierbayes.spec.design import Design
from hierbayes.spec.families import Family
from hierbayes.spec.names import FIXED_DIM, FactorNames
from hierbayes.spec.priors import PRIOR_KINDS, Prior

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["build_model"]

def _shared_data(data: Mapping[str, np.ndarray]) -> dict:
    """``pm.Data`` for the packed values; each fixed-size value is a slice of ``fixed_data``."""
    packed = pack_data(data)
    shared = {name: pm.Data(name, value) for name, value in packed.items()}
    start = 0
    for name, value in data.items():
        if not is_row_data(name):
            shape = np.shape(value)
            size = int(np.prod(shape))
            piece = shared[FIXED_DATA][start:start + size]
            shared[name] = piece.reshape(shape) if shape else piece[0]
            start += size
    return shared


def build_model(design: Design, family: Family, priors: Mapping[str, Prior],
                parameterization: str | Mapping[str, str] = "non-centered", collapse: bool = False) -> pm.Model:
    """Write the PyMC model of ``design`` with ``family`` and ``priors``.

    Parameters
    ----------
    design : Design
    family : Family
    priors : mapping of label -> Prior
        As returned by :func:`hierbayes.spec.parameters.resolve_priors` (every parameter).
    parameterization : {"non-centered", "centered"} or dict of factor -> one of them
    collapse : bool
        Integrate the group effects out (:mod:`hierbayes.model.collapsed`; gaussian, one factor or two nested):
        the model then samples no group effects and ``parameterization`` is unused.

    Returns
    -------
    pymc.Model
    """
    data = model_data(design, family, priors, collapse)
    slopes = fixed_slopes(design)
    coords = model_coords(design)
    centering = hierarchical_centering(design, parameterization, collapse)
    centred = centering[1] if centering else ()
    alpha = beta = None

    with pm.Model(coords=coords) as model:
        shared = _shared_data(data)

        def prior_rv(name: str, labels: list[str], dims: str | None = None, scalar: bool = False, shift=None):
            """The parameters ``labels`` under their priors; with ``shift`` (a tensor, one per label;
            real-line priors only, all of which have a location ``mu``), their priors moved by it."""
            groups = prior_groups(name, labels, priors)

            def params_of(var, kind, idx):
                params = {p: shared[N.prior_data(var, p)] for p in PRIOR_KINDS[kind].parameters}
                if shift is not None:
                    params["mu"] = params["mu"] + (shift[0] if scalar else shift[idx])
                return params

            if len(groups) == 1:
                (var, kind, idx), = groups
                if scalar:
                    return PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx))
                return PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx), dims=dims)
            out = pt.zeros(len(labels))
            for var, kind, idx in groups:
                out = pt.set_subtensor(out[idx], PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx),
                                                                                shape=len(idx)))
            return pm.Deterministic(name, out, dims=dims)

        # non-centered factors first: the fixed effects they share are sampled with their effects' means
        # added (see coordinates.sheared), so their priors need the effects' scales
        shear = sheared(design, parameterization, collapse)
        nc_terms, shared_means = [], {}
        for factor in shear:
            term, _, means = _group_effects(design, factor, shared, prior_rv, "non-centered",
                                            split_mean=bool(shear[factor]))
            nc_terms.append(term)
            for coef in shear[factor]:
                shared_means[coef] = shared_means.get(coef, 0.0) + means[design.factor_coefs(factor).index(coef)]
        shift = pt.stack(fixed_shift(design, shared_means, shared.get(N.X_MEAN_DATA))) if shared_means else None

        eta = sum(nc_terms) if nc_terms else 0.0
        parts = []
        if slopes:
            beta = prior_rv(N.SLOPES, [design.fixed_names[j] for j in slopes], dims=SLOPE_DIM,
                            shift=None if shift is None else shift[1:])
            if shift is not None:
                beta = beta - shift[1:]
            if not collapse:
                # column by column, not X @ beta: these fuse into the rows' loop, and the n-long BLAS
                # dot of X @ beta's gradient spins a second OpenBLAS thread (bench/NOTES.md)
                for j in range(len(slopes)):
                    if j not in centred_slopes(design, centred):  # those enter through the factor's effects
                        eta = eta + shared[N.X_DATA][:, j] * beta[j]
        if design.has_intercept:
            alpha = prior_rv(N.INTERCEPT_CENTERED, ["Intercept"], scalar=True, shift=shift)
            if shift is not None:
                alpha = alpha - shift[0]
            if "Intercept" not in centred:
                eta = eta + less_shift(alpha, centring_shift(design, centred, beta, shared.get(N.X_MEAN_DATA)))
            parts.append(alpha - (shared[N.X_MEAN_DATA] @ beta if slopes else 0.0))
        if slopes:
            parts.append(beta)
        if parts:
            b = pt.concatenate([pt.atleast_1d(p) for p in parts])
            order = (["Intercept"] if design.has_intercept else []) + coords[SLOPE_DIM]
            perm = [order.index(n) for n in design.fixed_names]  # formula order of the columns
            pm.Deterministic(N.FIXED_EFFECTS, b[perm], dims=FIXED_DIM)
        if design.offset is not None and not collapse:
            eta = eta + shared[N.OFFSET_DATA]

        if collapse:
            from hierbayes.model.collapsed import nesting
            from hierbayes.model.marginal_likelihood import marginal_loglik

            pair = nesting(design)
            factor = pair[0] if pair else next(iter(design.factors))
            L = _factor_cholesky(design, factor, shared, prior_rv)
            K = _factor_cholesky(design, pair[1], shared, prior_rv) if pair else None
            params = {name: prior_rv(name, [name], scalar=True) for name, _ in family.parameters}
            theta = [alpha - shared[N.STAT.shift]] if design.has_intercept else []
            theta = pt.concatenate([pt.atleast_1d(t) for t in theta + ([beta] if slopes else [])]) if parts else None
            pm.Potential(N.COLLAPSED_LOGLIK, marginal_loglik(shared, theta, params["sigma"], L, K))
            return model
        folded = folded_factors(design, parameterization, centering)
        mean_intercepts = []
        # the hierarchically centred factor last: its mean takes the folded factors' mean intercepts
        rest = [f for f in design.factors if f not in shear]
        for factor in sorted(rest, key=lambda f: bool(centering) and f == centering[0]):
            means = None
            if centering and factor == centering[0]:
                means = effect_means(design, factor, centred, alpha, beta, shared.get(N.X_MEAN_DATA))
                if mean_intercepts:
                    i = design.factor_coefs(factor).index("Intercept")
                    means[i] = means[i] + sum(mean_intercepts)
            term, mean_intercept, _ = _group_effects(design, factor, shared, prior_rv,
                                                     parameterization_of(parameterization, factor), means,
                                                     fold=factor in folded)
            eta = eta + term
            if mean_intercept is not None:
                mean_intercepts.append(mean_intercept)

        if not design.fixed_names and not design.factors:
            eta = eta + pt.zeros_like(shared[N.RESPONSE_DATA])
        params = {name: prior_rv(name, [name], scalar=True) for name, _ in family.parameters}
        mean = family.link_function.inverse_tensor(eta)
        family.likelihood_on_link(response_name(design), eta, mean, params, shared[N.RESPONSE_DATA],
                                  shared.get(N.TRIALS_DATA), None)
    return model


def _correlation(k: int, q: int, shared):
    """Block ``k``'s Cholesky factor of its correlation matrix (LKJ prior) and its correlations."""
    chol = pm.LKJCorr(N.corr_chol(k), n=q, eta=shared[N.prior_data(N.corr_chol(k), "eta")])
    corr = chol @ chol.T
    pairs = [(i, j) for j in range(q) for i in range(j)]  # the order of parameters.cor_pairs
    return chol, corr[[i for i, _ in pairs], [j for _, j in pairs]]


def _record_correlations(factor: str, cors: list) -> None:
    if cors:
        names = FactorNames(factor)
        pm.Deterministic(names.cor, pt.concatenate(cors) if len(cors) > 1 else cors[0], dims=names.cor_dim)


def _factor_cholesky(design: Design, factor: str, shared, prior_rv):
    """``L = blockdiag(diag(sd) @ chol(corr))`` over all the factor's coefficients (collapsed models)."""
    coefs, names = design.factor_coefs(factor), FactorNames(factor)
    sd = prior_rv(names.sd, [names.sd_label(c) for c in coefs], dims=names.coef_dim)
    L, cors = pt.zeros((len(coefs), len(coefs))), []
    for k, block, sl in factor_blocks(design, factor):
        q = len(block.coef_names)
        if block.block.correlated and q > 1:
            chol, cor = _correlation(k, q, shared)
            cors.append(cor)
            L = pt.set_subtensor(L[sl, sl], sd[sl][:, None] * chol)
        else:
            L = pt.set_subtensor(L[sl, sl], pt.diag(sd[sl]))
    _record_correlations(factor, cors)
    return L


def _group_effects(design: Design, factor: str, shared, prior_rv, parameterization: str, means: list | None = None,
                   fold: bool = False, split_mean: bool = False):
    """Add the effects of one factor to the model; return their term of the linear predictor,
    with ``fold`` the mean of its varying intercepts (else None), and with ``split_mean``
    the mean of the effects of each coefficient over the levels (else None).

    With ``means`` (one per coefficient, :func:`effect_means`; centered only) the effects
    are drawn around them, the linear predictor takes them as drawn and ``r_<factor>``
    records them less their means. With ``fold`` (centered only, :func:`folded_factors`)
    the block with the intercept is drawn as its level mean ``ubar_<factor>_<k>`` and the
    Helmert contrasts ``u_<factor>_<k>`` (J - 1 rows); the linear predictor leaves out the
    mean intercept, which the caller adds to the centred factor's mean.

    ``"centered-intercept"`` draws the intercepts so (``u_<factor>_<k>``, one column) and
    every slope non-centered given them: ``z_slopes_<factor>`` (J x slopes) iid ``N(0, 1)``
    and, in the intercept's correlated block, ``r_slopes = L[1:, 0] d + L[1:, 1:] z`` with
    ``d = (v - mu) / L[0, 0]`` the standardized intercepts (the conditional normal of the
    slopes given the intercept; ``d`` is the non-centered intercept, so the model is the same).
    """
    names = FactorNames(factor)
    coefs = design.factor_coefs(factor)
    J = len(design.factors[factor].levels)
    fdim, cdim = names.level_dim, names.coef_dim
    sd = prior_rv(names.sd, [names.sd_label(c) for c in coefs], dims=cdim)
    z = z_mean = z_slopes = None
    if parameterization == "non-centered" and split_mean:  # see coordinates.sheared
        z_mean = pm.Normal(names.z_mean, 0.0, 1.0 / np.sqrt(J), dims=cdim)
        z = z_mean + helmert_rest(pm.Normal(names.z_contrasts, 0.0, 1.0, shape=(J - 1, len(coefs))), J)
    elif parameterization == "non-centered":
        z = pm.Normal(names.z, 0.0, 1.0, dims=(fdim, cdim))
    elif parameterization == "centered-intercept":
        z_slopes = pm.Normal(names.z_slopes, 0.0, 1.0, shape=(J, len(coefs) - 1))
        slope_col = {c: i for i, c in enumerate(c for c in coefs if c != "Intercept")}
    mu = None if means is None else pt.stack([pt.as_tensor_variable(m, dtype="float64") for m in means])
    drawn, recorded, cors, mean_intercept, level_means = [], [], [], None, []
    for k, block, sl in factor_blocks(design, factor):
        q = len(block.coef_names)
        centre = np.zeros(q) if mu is None else mu[sl]
        folded = fold and "Intercept" in block.coef_names
        rows = J - 1 if folded else J
        L = None  # the block's Cholesky factor of its covariance, when correlated
        if block.block.correlated and q > 1:
            chol, cor = _correlation(k, q, shared)
            cors.append(cor)
            L = sd[sl][:, None] * chol
        if z_slopes is not None:
            zb = z_slopes[:, [slope_col[c] for c in block.coef_names if c != "Intercept"]]
            if "Intercept" not in block.coef_names:
                effects = zb @ L.T if L is not None else zb * sd[sl]
                recorded.append(effects)
                drawn.append(effects)
                continue
            assert block.coef_names[0] == "Intercept"  # the design's order within a term
            scale = sd[sl][0]  # L[0, 0]: the first row of a correlation's Cholesky factor is (1, 0, ...)
            lead = pm.Normal(names.block(k), centre[0], scale, shape=(rows, 1))
            if folded:
                ubar = pm.Normal(names.block_mean(k), 0.0, scale / np.sqrt(J), shape=1)
                contrasts = helmert_rest(lead, J)
                lead, mean_intercept = contrasts + ubar, ubar[0]
            if q > 1:
                d = (lead - centre[0]) / scale
                rest = d * L[1:, 0][None, :] + zb @ L[1:, 1:].T if L is not None else zb * sd[sl][1:]
                recorded.append(pt.concatenate([lead, rest], axis=1))
                drawn.append(pt.concatenate([contrasts if folded else lead, rest], axis=1))
            else:
                recorded.append(lead)
                drawn.append(contrasts if folded else lead)
            continue
        if L is not None:
            if z is not None:
                effects = z[:, sl] @ L.T
                if z_mean is not None:
                    level_means.append(L @ z_mean[sl])
            else:
                effects = pm.MvNormal(names.block(k), mu=centre, chol=L, shape=(rows, q))
            if folded:
                ubar = pm.MvNormal(names.block_mean(k), mu=np.zeros(q), chol=L / np.sqrt(J), shape=q)
        elif z is not None:
            effects = z[:, sl] * sd[sl]
            if z_mean is not None:
                level_means.append(z_mean[sl] * sd[sl])
        else:
            effects = pm.Normal(names.block(k), centre, sd[sl], shape=(rows, q))
            if folded:
                ubar = pm.Normal(names.block_mean(k), 0.0, sd[sl] / np.sqrt(J), shape=q)
        if folded:
            i = block.coef_names.index("Intercept")
            effects = helmert_rest(effects, J)
            mean_intercept = ubar[i]
            recorded.append(effects + ubar)
            drawn.append(effects + pt.set_subtensor(ubar[i], 0.0) if q > 1 else effects)
        else:
            recorded.append(effects)
            drawn.append(effects)
    v = pt.concatenate(recorded, axis=1) if len(recorded) > 1 else recorded[0]
    r = pm.Deterministic(names.effects, v if mu is None else v - mu, dims=(fdim, cdim))
    _record_correlations(factor, cors)
    g = shared[names.index]
    Z = shared[names.columns]
    term, zcol = 0.0, 0
    # the effects as drawn: their means are in the linear predictor through them
    effect = r if mu is None and not fold else (pt.concatenate(drawn, axis=1) if len(drawn) > 1 else drawn[0])
    for k, coef in enumerate(coefs):
        if coef == "Intercept":
            term = term + effect[:, k][g]
        else:
            term = term + Z[:, zcol] * effect[:, k][g]
            zcol += 1
    return term, mean_intercept, pt.concatenate(level_means) if level_means else None

