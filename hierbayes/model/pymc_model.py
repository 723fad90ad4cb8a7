"""Design + priors -> ``pm.Model``: writing the PyMC model.

Every array that depends on the data or on prior values enters as ``pm.Data``, so
the compiled model depends only on the *structure* (family, terms, blocks, level
counts, prior kinds). :func:`~hierbayes.model.data.structure_key` names that structure; the
sampler keeps one compiled model per key and refits new data or new priors by swapping the data.

The model is written in this order, which is the order of the sampler's parameters:

1. the non-centered factors' effects (:mod:`hierbayes.model.parameterizations`): when a
   coefficient is also a fixed effect, the fixed effect is sampled plus the effects' mean
   (:func:`hierbayes.model.coordinates.sheared`), so its prior needs the effects first;
2. the fixed effects: the slopes ``beta`` on centred columns, then the intercept at the
   centred columns ``Intercept_centered``; the posterior keeps them on the original scale
   as ``b`` (dim ``term``);
3. the other factors' effects (centered, centered-intercept, folded), the hierarchically
   centred factor last, drawn around the fixed effects;
4. the family's parameters and the likelihood; a parameter with a formula of its own
   (distributional regression) is, per row, the inverse of its link at its linear predictor:
   its formula's group effects (non-centered), then its fixed effects, named by the part
   (``z_<factor>__sigma``, ``b_slopes__sigma``, ``b_sigma``, ...).

With ``collapse``, the group effects are integrated out instead (:mod:`hierbayes.model.collapsed`):
only their SDs and correlations are sampled, with the family's parameters; with crossed factors, one
factor is integrated out and the others' effects are sampled as above.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sorted(m.pymc_model.named_vars)[:4]
['Intercept_centered', 'Reaction', 'X', 'Z_Subject']
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.model.coordinates import (
    centred_slopes,
    centring_shift,
    fixed_shift,
    fixed_slopes,
    less_shift,
)
from hierbayes.model.data import (
    FIXED_DATA,
    is_row_data,
    model_coords,
    model_data,
    pack_data,
    prior_groups,
    response_name,
)
from hierbayes.model.parameterizations import (
    BEFORE_FIXED_EFFECTS,
    AroundParent,
    FactorEffects,
    FixedEffects,
    NonCentered,
    add_group_effects,
    factor_parameterizations,
    record_correlations,
)
from hierbayes.specification import names as N
from hierbayes.specification.design import Design
from hierbayes.specification.families import Family
from hierbayes.specification.families.core import parameter_link
from hierbayes.specification.names import FactorNames, FixedNames
from hierbayes.specification.parameters import threshold_parameters
from hierbayes.specification.priors import PRIOR_KINDS, Prior

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


class _PriorVariables:
    """Draws parameters under their priors, whose values are the model's data."""

    def __init__(self, shared: Mapping, priors: Mapping[str, Prior]):
        self.shared, self.priors = shared, priors

    def __call__(self, name: str, labels: list[str], dims: str | None = None, scalar: bool = False, shift=None,
                 **options):
        """The parameters ``labels`` under their priors; with ``shift`` (a tensor, one per label;
        real-line priors only, all of which have a location ``mu``), their priors moved by it; ``options``
        go to the PyMC distribution of labels whose priors are of one kind (ordered thresholds' transform)."""
        groups = prior_groups(name, labels, self.priors)

        def params_of(var, kind, idx):
            params = {p: self.shared[N.prior_data(var, p)] for p in PRIOR_KINDS[kind].parameters}
            if shift is not None:
                params["mu"] = params["mu"] + (shift[0] if scalar else shift[idx])
            return params

        if len(groups) == 1:
            (var, kind, idx), = groups
            if scalar:
                return PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx))
            return PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx), dims=dims, **options)
        out = pt.zeros(len(labels))
        for var, kind, idx in groups:
            out = pt.set_subtensor(out[idx], PRIOR_KINDS[kind].distribution(var, **params_of(var, kind, idx),
                                                                            shape=len(idx)))
        return pm.Deterministic(name, out, dims=dims)


def _factor_sd(design: Design, factor: str, prior_rv):
    """The SD of each varying coefficient of ``factor``, under its prior."""
    names = FactorNames(factor, design.part)
    return prior_rv(names.sd, [names.sd_label(c) for c in design.factor_coefs(factor)], dims=names.coef_dim)


def build_model(design: Design, family: Family, priors: Mapping[str, Prior],
                parameterization: str | Mapping[str, str] = "non-centered", collapse: bool = False,
                around_fixed_effects: bool = True) -> pm.Model:
    """Write the PyMC model of ``design`` with ``family`` and ``priors``.

    Parameters
    ----------
    design : Design
    family : Family
    priors : mapping of label -> Prior
        As returned by :func:`hierbayes.specification.parameters.resolve_priors` (every parameter).
    parameterization : {"non-centered", "centered", "centered-intercept"} or dict of factor -> one of them
        How each factor's effects are drawn (:func:`hierbayes.model.parameterizations.factor_parameterizations`).
    collapse : bool
        Integrate the group effects out (:mod:`hierbayes.model.collapsed`; gaussian, one factor or two nested):
        the model then samples no group effects and ``parameterization`` is unused. With crossed factors,
        the factor of :func:`~hierbayes.model.coordinates.integrated_factors` is integrated out and the
        others' effects are sampled (``parameterization`` applies to them).
    around_fixed_effects : bool
        False keeps centered effects as deviations from the fixed effects (see
        :func:`hierbayes.model.parameterizations.factor_parameterizations`).

    Returns
    -------
    pymc.Model
    """
    data = model_data(design, family, priors, collapse, parameterization)
    coords = model_coords(design)
    chosen = factor_parameterizations(design, parameterization, collapse, around_fixed_effects)
    # collapsed with crossed factors: one factor integrated out, the others' effects sampled
    all_integrated = collapse and not chosen
    centred = next((p.fixed_means for p in chosen.values() if p.fixed_means), ())

    with pm.Model(coords=coords) as model:
        shared = _shared_data(data)
        prior_rv = _PriorVariables(shared, priors)

        # non-centered factors first: the fixed effects they share are sampled with their effects' means
        # added (see coordinates.sheared), so their priors need the effects' scales
        first = [f for f, p in chosen.items() if p.order == BEFORE_FIXED_EFFECTS]
        terms, shared_means = [], {}
        for factor in first:
            term, effects = add_group_effects(chosen[factor], design, factor, shared,
                                              _factor_sd(design, factor, prior_rv))
            terms.append(term)
            for coef, mean in chosen[factor].fixed_effect_shift(design, factor, effects).items():
                shared_means[coef] = shared_means.get(coef, 0.0) + mean
        shift = pt.stack(fixed_shift(design, shared_means, shared.get(N.X_MEAN_DATA))) if shared_means else None

        eta = sum(terms) if terms else 0.0
        fixed, eta = _fixed_effects(design, shared, prior_rv, shift, centred, eta, coords, all_integrated)
        if design.offset is not None and not all_integrated:
            eta = eta + shared[N.OFFSET_DATA]
        if all_integrated:
            _collapsed_likelihood(design, family, shared, prior_rv, fixed)
            return model

        mean_intercepts, parents = [], {p.parent: None for p in chosen.values() if isinstance(p, AroundParent)}
        # the hierarchically centred factor last: its mean takes the folded factors' mean intercepts; then
        # the factors drawn around a parent's intercepts, which then reach eta through theirs
        for factor in sorted((f for f in chosen if f not in first), key=lambda f: chosen[f].order):
            p = chosen[factor]
            at_levels = None
            if isinstance(p, AroundParent):
                at_levels = parents[p.parent][pt.cast(shared[FactorNames(factor).parent_levels], "int64")]
            term, effects = add_group_effects(p, design, factor, shared, _factor_sd(design, factor, prior_rv),
                                              replace(fixed, mean_intercepts=tuple(mean_intercepts)),
                                              at_levels, carried=factor in parents)
            eta = eta + term
            if factor in parents:
                parents[factor] = effects.per_level[:, design.factor_coefs(factor).index("Intercept")]
            if effects.mean_intercept is not None:
                mean_intercepts.append(effects.mean_intercept)

        if not design.fixed_names and not design.factors:
            eta = eta + pt.zeros(shared[N.RESPONSE_DATA].shape[0])  # one per row (a multinomial's y is rows x categories)
        params = {name: prior_rv(name, [name], scalar=True) if design.part_design(name) is None
                  else _parameter_formula(design.part_design(name), support, shared, prior_rv, coords)
                  for name, support in family.parameters}
        if family.thresholds is not None:
            params[N.THRESHOLDS] = _thresholds(design, family, shared, prior_rv, fixed.beta)
        if collapse:
            _crossed_likelihood(design, shared, prior_rv, eta, params["sigma"])
            return model
        family.observed_variable(response_name(design), eta, params, shared[N.RESPONSE_DATA],
                                 shared.get(N.TRIALS_DATA),
                                 additions={arg: shared[N.ADDITION_DATA[arg]] for arg in design.additions})
    return model


def _parameter_formula(part: Design, support: str, shared, prior_rv, coords):
    """A family parameter with its own formula, one value per row: the inverse of its link
    (:func:`~hierbayes.specification.families.core.parameter_link`) at its linear predictor, whose group
    effects are drawn non-centered and whose fixed effects are sampled on centred columns, as the mean's."""
    terms = [add_group_effects(NonCentered(), part, factor, shared, _factor_sd(part, factor, prior_rv))[0]
             for factor in part.factors]
    _, eta = _fixed_effects(part, shared, prior_rv, None, (), sum(terms) if terms else 0.0, coords, False)
    return parameter_link(support).inverse_tensor(pt.as_tensor_variable(eta))


def _fixed_effects(design: Design, shared, prior_rv, shift, centred: tuple[str, ...], eta, coords, collapse: bool):
    """Draw the fixed effects (sampled plus ``shift``, :func:`~hierbayes.model.coordinates.fixed_shift`), record
    ``b`` and add them to ``eta``, except those of ``centred`` (they enter through their factor's effects)."""
    slopes = fixed_slopes(design)
    names = FixedNames(design.part)
    alpha = beta = None
    parts = []
    if slopes:
        beta = prior_rv(names.slopes, [names.label(design.fixed_names[j]) for j in slopes], dims=names.slope_dim,
                        shift=None if shift is None else shift[1:])
        if shift is not None:
            beta = beta - shift[1:]
        if not collapse:
            # column by column, not X @ beta: these fuse into the rows' loop, and the n-long BLAS
            # dot of X @ beta's gradient spins a second OpenBLAS thread (bench/NOTES.md)
            for j in range(len(slopes)):
                if j not in centred_slopes(design, centred):  # those enter through the factor's effects
                    eta = eta + shared[names.X][:, j] * beta[j]
    if design.has_intercept:
        alpha = prior_rv(names.intercept_centered, [names.label("Intercept")], scalar=True, shift=shift)
        if shift is not None:
            alpha = alpha - shift[0]
        if "Intercept" not in centred:
            eta = eta + less_shift(alpha, centring_shift(design, centred, beta, shared.get(names.X_mean)))
        parts.append(alpha - (shared[names.X_mean] @ beta if slopes else 0.0))
    if slopes:
        parts.append(beta)
    if parts:
        b = pt.concatenate([pt.atleast_1d(p) for p in parts])
        order = (["Intercept"] if design.has_intercept else []) + coords[names.slope_dim]
        perm = [order.index(n) for n in design.fixed_names]  # formula order of the columns
        pm.Deterministic(names.effects, b[perm], dims=names.dim)
    return FixedEffects(alpha, beta), eta


def _thresholds(design: Design, family: Family, shared, prior_rv, beta):
    """An ordinal family's thresholds: sampled at the slope columns' means (``thresholds_centered``, through
    PyMC's ordered transform for ``cumulative``), recorded on the data's scale as ``thresholds``:
    ``tau = tau_c + X_mean . beta``, since ``F(tau_c - (x - X_mean) beta) = F(tau - x beta)``."""
    ordered = {"transform": pm.distributions.transforms.ordered} if family.thresholds.ordered else {}
    centred = prior_rv(N.THRESHOLDS_CENTERED, [p.label for p in threshold_parameters(design)], dims=N.THRESHOLD_DIM,
                       **ordered)
    shift = shared[N.X_MEAN_DATA] @ beta if beta is not None else 0.0
    return pm.Deterministic(N.THRESHOLDS, centred + shift, dims=N.THRESHOLD_DIM)


def _collapsed_likelihood(design: Design, family: Family, shared, prior_rv, fixed: FixedEffects) -> None:
    """The likelihood with the group effects integrated out (:mod:`hierbayes.model.marginal_likelihood`)."""
    from hierbayes.model.collapsed import nesting
    from hierbayes.model.marginal_likelihood import marginal_loglik

    pair = nesting(design)
    factor = pair[0] if pair else next(iter(design.factors))
    L = _factor_cholesky(design, factor, shared, prior_rv)
    K = _factor_cholesky(design, pair[1], shared, prior_rv) if pair else None
    params = {name: prior_rv(name, [name], scalar=True) for name, _ in family.parameters}
    theta = [fixed.alpha - shared[N.STAT.shift]] if design.has_intercept else []
    theta = theta + ([fixed.beta] if fixed.beta is not None else [])
    theta = pt.concatenate([pt.atleast_1d(t) for t in theta]) if design.fixed_names else None
    pm.Potential(N.COLLAPSED_LOGLIK, marginal_loglik(shared, theta, params["sigma"], L, K))


def _crossed_likelihood(design: Design, shared, prior_rv, eta, sigma) -> None:
    """The likelihood with one factor of a crossed design integrated out, given ``eta`` (everything sampled:
    fixed effects, the other factors' effects, the offset; :func:`~hierbayes.model.marginal_likelihood.crossed_marginal_loglik`)."""
    from hierbayes.model.coordinates import integrated_factors
    from hierbayes.model.marginal_likelihood import crossed_marginal_loglik

    factor, = integrated_factors(design)
    names = FactorNames(factor)
    L = _factor_cholesky(design, factor, shared, prior_rv)
    pm.Potential(N.COLLAPSED_LOGLIK, crossed_marginal_loglik(
        shared[N.RESPONSE_DATA] - eta, shared[names.index], shared[names.columns], design.factor_coefs(factor),
        len(design.factors[factor].levels), shared[N.STAT.ZZ], shared[N.STAT.N], sigma, L))


def _factor_cholesky(design: Design, factor: str, shared, prior_rv):
    """``L = blockdiag(diag(sd) @ chol(corr))`` over all the factor's coefficients (collapsed models)."""
    fx = FactorEffects(design, factor, shared, _factor_sd(design, factor, prior_rv))
    L = pt.zeros((len(fx.coefs), len(fx.coefs)))
    for b in fx.blocks():
        # eye * sd, not diag(sd): JAX (sampler="numpyro") needs the diagonal's length as a constant
        L = pt.set_subtensor(L[b.sl, b.sl], b.L if b.L is not None else pt.eye(b.q) * b.sd[None, :])
    record_correlations(fx.names, fx.cors)
    return L
