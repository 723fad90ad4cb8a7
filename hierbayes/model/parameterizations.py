"""How a grouping factor's effects are drawn: one class per parameterization.

The group effects of a factor with J levels are the same model whatever the sampler's
coordinates: per block of coefficients, ``r_j ~ N(0, L L')`` iid over the levels, with
``L = diag(sd) @ chol(corr)`` (``diag(sd)`` for ``||`` and one-coefficient blocks). Which
coordinates mix depends on how much each level's data say (``docs/speed.md``;
:mod:`hierbayes.model.parameterization` chooses). Each class below draws one factor's
effects in one set of coordinates and returns what the linear predictor and the recorded
``r_<factor>`` need (:class:`Effects`), in the manner of numpyro's reparameterizers:

- :class:`NonCentered`: ``z_<factor>`` (J x Q) iid ``N(0, 1)`` and ``r = z L'`` per block;
- :class:`ShearedNonCentered`: the same ``z`` drawn as its level mean ``z_mean_<factor>``
  and Helmert contrasts ``z_contrasts_<factor>``, the fixed effects sampled plus the effects'
  mean (:func:`hierbayes.model.coordinates.sheared`);
- :class:`Centered`: ``u_<factor>_<k>`` (J x q) ``~ N(0, L L')`` per block;
- :class:`CenteredIntercept`: the varying intercepts centered, the slopes non-centered
  given them (``z_slopes_<factor>``);
- :class:`HierarchicallyCentered`: a centered factor's effects drawn around the fixed
  effects, ``r = v - mu`` (:func:`hierbayes.model.coordinates.hierarchical_centering`);
- :class:`Folded`: a centered factor's intercepts drawn as their mean ``ubar_<factor>_<k>``
  and J - 1 Helmert contrasts, the mean joining the hierarchically centred factor's
  (:func:`hierbayes.model.coordinates.folded_factors`);
- :class:`AroundParent`: a centered factor nested in another centered factor drawn around its
  parent level's intercept (:func:`hierbayes.model.coordinates.nested_centering`);
- :class:`PartiallyCentered`: each level's effects part-way between centered and non-centered,
  by its own weights ``t_<factor>_<k>_<c>`` (:func:`hierbayes.model.parameterization.centering_weights`).

Each is a change of coordinates (of constant Jacobian, but for :class:`PartiallyCentered`, whose
``t`` are drawn under their own normal so that the effects' distribution is unchanged): the
posterior is the same (``tests/unit/test_parameterizations.py`` compares the log densities point by point).
:func:`factor_parameterizations` maps a model's ``parameterization`` to one per factor and
:func:`add_group_effects` writes a factor into the PyMC model being built.

Adding a parameterization: subclass :class:`Parameterization` with a ``draw`` that adds the
factor's variables and returns its :class:`Effects` (and ``starts`` when a variable should
not start at zero), map the user's word to it in :func:`factor_parameterizations`, and add
a row to the tables of ``tests/unit/test_parameterizations.py``.

The model is written node for node as before this module existed, so that the draws of a
fixed seed stay bit-identical (``bench/same_draws.py``): hence, for instance, :attr:`Block.sd`
makes a new subtensor at each use.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"), collapse=False)
>>> factor_parameterizations(m.design, "non-centered")
{'Subject': ShearedNonCentered(coefs=('Intercept', 'Days'))}
>>> factor_parameterizations(m.design, "centered-intercept")
{'Subject': HierarchicallyCentered(inner=CenteredIntercept(), coefs=('Intercept',))}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.model.coordinates import (
    effect_means,
    factor_blocks,
    folded_factors,
    helmert_rest,
    hierarchical_centering,
    mean_and_contrasts_beside,
    nested_centering,
    parameterization_of,
    sampled_design,
    sheared,
)
from hierbayes.model.correlations import correlation, record_correlations
from hierbayes.model.effects import (
    AFTER_FIXED_EFFECTS,
    BEFORE_FIXED_EFFECTS,
    LAST,
    Block,
    Effects,
    FactorEffects,
    FixedEffects,
    Parameterization,
)
from hierbayes.model.levels import Levels, all_levels, mean_and_contrast_rows, mean_and_contrasts
from hierbayes.specification.design import Design
from hierbayes.specification.names import X_MEAN_DATA, FactorNames

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["Parameterization", "NonCentered", "ShearedNonCentered", "Centered", "CenteredIntercept", "PartiallyCentered",
           "HierarchicallyCentered", "CenteredByMean", "Folded", "AroundParent", "Effects", "Levels", "FactorEffects", "FixedEffects", "Block",
           "factor_parameterizations", "add_group_effects", "PARAMETERIZATIONS", "correlation", "record_correlations",
           "BEFORE_FIXED_EFFECTS", "AFTER_FIXED_EFFECTS", "LAST"]


@dataclass(frozen=True)
class NonCentered(Parameterization):
    """``z_<factor>`` (levels x coefficients) iid ``N(0, 1)``; each block's effects are ``z L'``."""

    value: ClassVar[str] = "non-centered"
    order: ClassVar[int] = BEFORE_FIXED_EFFECTS

    def standardized(self, fx: FactorEffects):
        """The standardized effects ``z`` (J x Q), and their level mean when drawn apart (else None)."""
        return pm.Normal(fx.names.z, 0.0, 1.0, dims=(fx.names.level_dim, fx.names.coef_dim)), None

    def draw(self, fx: FactorEffects) -> Effects:
        z, z_mean = self.standardized(fx)
        recorded, level_means = [], []
        for b in fx.blocks():
            recorded.append(b.scale(z[:, b.sl]))
            if z_mean is not None:
                level_means.append(b.scale_mean(z_mean[b.sl]))
        return Effects(recorded, recorded, level_means)


@dataclass(frozen=True)
class ShearedNonCentered(NonCentered):
    """Non-centered, with ``z`` drawn as its level mean ``z_mean_<factor>`` (``N(0, 1/J)``) and Helmert
    contrasts ``z_contrasts_<factor>`` (J - 1 x Q, iid ``N(0, 1)``): the same iid ``z``. The fixed
    effects of ``coefs`` are sampled plus the effects' mean (:func:`hierbayes.model.coordinates.sheared`)."""

    coefs: tuple[str, ...] = ()

    def standardized(self, fx: FactorEffects):
        names, J = fx.names, fx.J
        z_mean = pm.Normal(names.z_mean, 0.0, 1.0 / np.sqrt(J), dims=names.coef_dim)
        z = z_mean + helmert_rest(pm.Normal(names.z_contrasts, 0.0, 1.0, shape=(J - 1, len(fx.coefs))), J)
        return z, z_mean

    def fixed_effect_shift(self, design: Design, factor: str, effects: Effects) -> dict[str, Any]:
        means = pt.concatenate(effects.level_means)
        return {coef: means[design.factor_coefs(factor).index(coef)] for coef in self.coefs}


@dataclass(frozen=True)
class Centered(Parameterization):
    """Each block's effects drawn as they are: ``u_<factor>_<k>`` (J x q) ``~ N(centre, L L')``."""

    value: ClassVar[str] = "centered"
    centered_columns: ClassVar[slice] = slice(None)  # the block's columns u holds

    def level_starts(self, names: FactorNames, k: int, sl: slice, means: np.ndarray, J: int, data: Mapping) -> dict:
        """Block ``k``'s variables started at the effects' ``means`` (one per coefficient of the block)."""
        return {names.block(k): np.tile(means[self.centered_columns], (J, 1))}

    def draw(self, fx: FactorEffects) -> Effects:
        recorded, drawn, mean_intercept = [], [], None
        for b in fx.blocks():
            intercept = b.coefs.index("Intercept") if "Intercept" in b.coefs else None
            levels = fx.levels(fx, b.k, fx.centre_of(b), b.q, b.L, b.sd, b.sd, intercept)
            recorded.append(levels.recorded)
            drawn.append(levels.drawn)
            if levels.mean_intercept is not None:
                mean_intercept = levels.mean_intercept
        return Effects(recorded, drawn, mean_intercept=mean_intercept)


@dataclass(frozen=True)
class CenteredIntercept(Parameterization):
    """The varying intercepts drawn centered (``u_<factor>_<k>``, one column) and every slope
    non-centered given them: ``z_slopes_<factor>`` (J x slopes) iid ``N(0, 1)`` and, in the
    intercept's correlated block, ``r_slopes = L[1:, 0] d + L[1:, 1:] z`` with ``d = (v - mu) / L[0, 0]``
    the standardized intercepts (the slopes' conditional normal given the intercepts; ``d`` is the
    non-centered intercept, so the model is the same). The design puts the intercept first in its term.
    """

    value: ClassVar[str] = "centered-intercept"
    centered_columns: ClassVar[slice] = slice(0, 1)
    level_starts = Centered.level_starts

    def draw(self, fx: FactorEffects) -> Effects:
        coefs = fx.coefs
        z_slopes = pm.Normal(fx.names.z_slopes, 0.0, 1.0, shape=(fx.J, len(coefs) - 1))
        slope_col = {c: i for i, c in enumerate(c for c in coefs if c != "Intercept")}
        recorded, drawn, mean_intercept = [], [], None
        for b in fx.blocks():
            zb = z_slopes[:, [slope_col[c] for c in b.coefs if c != "Intercept"]]
            if "Intercept" not in b.coefs:
                effects = b.scale(zb)
                recorded.append(effects)
                drawn.append(effects)
                continue
            assert b.coefs[0] == "Intercept"  # the design's order within a term
            centre = fx.centre_of(b)
            centre = centre[0] if centre.ndim == 1 else centre[:, :1]  # the intercept's: one, or one per level
            scale = b.sd[0]  # L[0, 0]: the first row of a correlation's Cholesky factor is (1, 0, ...)
            lead = fx.levels(fx, b.k, centre, 1, None, scale, scale, 0)
            mean_intercept = lead.mean_intercept
            if b.q > 1:
                d = (lead.recorded - centre) / scale
                rest = d * b.L[1:, 0][None, :] + zb @ b.L[1:, 1:].T if b.L is not None else zb * b.sd[1:]
                recorded.append(pt.concatenate([lead.recorded, rest], axis=1))
                drawn.append(pt.concatenate([lead.drawn, rest], axis=1))
            else:
                recorded.append(lead.recorded)
                drawn.append(lead.drawn)
        return Effects(recorded, drawn, mean_intercept=mean_intercept)


@dataclass(frozen=True)
class PartiallyCentered(Parameterization):
    """Each level's effects drawn part-way between centered and non-centered, by how much its data say
    (partial non-centering: Papaspiliopoulos, Roberts and Skold 2003; Gorinova, Moore and Hoffman 2020).

    Coefficient ``c`` of a block, at level ``j``, given the block's earlier coefficients: conditional
    mean ``m_jc`` (its centre plus ``L[c, :c]`` times their standardized effects) and SD ``s_c = L[c, c]``.
    It is drawn as ``t_jc ~ N(w_jc m_jc, s_c^w_jc)`` (``t_<factor>_<k>_<c>``) and
    ``v_jc = m_jc + s_c^(1 - w_jc) (t_jc - w_jc m_jc)``, so that ``v_jc ~ N(m_jc, s_c)``: the same model.
    ``w = 1`` is centered, ``w = 0`` non-centered; ``w_jc = kappa_jc / (1 + kappa_jc)``, the share of the
    level's posterior precision its data give in a gaussian model, the weight that makes ``t`` and the
    SDs independent there (:func:`hierbayes.model.parameterization.centering_weights`; data, so that
    new data reuse the compiled model). A level-by-level answer where one choice for the whole factor
    must leave the levels in between badly placed (``bench/NOTES.md``: the bernoulli slopes).
    """

    value: ClassVar[str] = "partially-centered"

    def draw(self, fx: FactorEffects) -> Effects:
        weights = fx.shared[fx.names.centering_weights]
        recorded = []
        for b in fx.blocks():
            centre = fx.centre_of(b)
            columns, standardized = [], []
            for c in range(b.q):
                w = weights[:, b.sl.start + c]
                s = b.L[c, c] if b.L is not None else b.sd[c]
                m = centre[..., c] + sum(b.L[c, i] * standardized[i] for i in range(c)) if b.L is not None \
                    else centre[..., c]
                s_w = pt.exp(w * pt.log(s))  # s^w: one exp a level (a power and its gradient cost 3x as much)
                t = pm.Normal(fx.names.partial(b.k, c), w * m, s_w, shape=fx.J)
                d = t - w * m
                columns.append(m + (s / s_w) * d)
                standardized.append(d / s_w)
            v = pt.stack(columns, axis=1)
            recorded.append(v)
        return Effects(recorded, recorded)

    def level_starts(self, names: FactorNames, k: int, sl: slice, means: np.ndarray, J: int, data: Mapping) -> dict:
        """Block ``k``'s variables where the effects equal ``means``: ``t = w m``."""
        weights = np.asarray(data[names.centering_weights])
        return {names.partial(k, c): weights[:, sl.start + c] * means[c] for c in range(len(means))}


@dataclass(frozen=True)
class HierarchicallyCentered(Parameterization):
    """A centered factor's effects drawn around the fixed effects ``mu`` of ``coefs`` (Gelfand, Sahu and
    Carlin 1995): the linear predictor takes ``v_j`` in place of ``mu + u_j`` and ``r_<factor>``
    records ``v_j - mu``. A shift of unit Jacobian; the intercept mixes much better when the levels
    hold many rows. ``mu``'s intercept also takes the folded factors' mean intercepts (:class:`Folded`).
    """

    inner: Centered | CenteredIntercept | PartiallyCentered
    coefs: tuple[str, ...]
    order: ClassVar[int] = LAST

    @property
    def value(self) -> str:
        return self.inner.value

    @property
    def fixed_means(self) -> tuple[str, ...]:
        return self.coefs

    def draw(self, fx: FactorEffects) -> Effects:
        means = effect_means(fx.design, fx.factor, self.coefs, fx.fixed.alpha, fx.fixed.beta, fx.shared.get(X_MEAN_DATA))
        if fx.fixed.mean_intercepts:
            i = fx.coefs.index("Intercept")
            means[i] = means[i] + sum(fx.fixed.mean_intercepts)
        mu = pt.stack([pt.as_tensor_variable(m, dtype="float64") for m in means])
        effects = self.inner.draw(replace(fx, centre=mu))
        return replace(effects, centre=mu, through_recorded=False)

    def starts(self, design: Design, factor: str, alpha, beta, data: Mapping) -> dict[str, np.ndarray]:
        """Each block's centered effects start at their means, the fixed effects' starts."""
        means = np.array(effect_means(design, factor, self.coefs, alpha, beta, data.get(X_MEAN_DATA)))
        J = len(design.factors[factor].levels)
        return {name: value for k, _, sl in factor_blocks(design, factor) if means[sl].any()
                for name, value in self.inner.level_starts(FactorNames(factor), k, sl, means[sl], J, data).items()}


@dataclass(frozen=True)
class CenteredByMean(HierarchicallyCentered):
    """:class:`HierarchicallyCentered` for the factor sampled beside one integrated out, its varying
    intercepts drawn as their mean around the fixed effects and contrasts (:func:`mean_and_contrasts`).
    The integrated factor's effects absorb a common shift of all these levels, held back only by its
    prior: in the plain coordinates a direction along every level at once, which a diagonal metric
    crosses slowly (the intercept's ESS); here it is one coordinate. The contrasts run over the levels
    ordered by size, so that each compares levels of like precision (``bench/NOTES.md``)."""

    def draw(self, fx: FactorEffects) -> Effects:
        return super().draw(replace(fx, levels=mean_and_contrasts))

    def starts(self, design: Design, factor: str, alpha, beta, data: Mapping) -> dict[str, np.ndarray]:
        """The mean starts at the fixed effects' starts, the contrasts at zero."""
        means = np.array(effect_means(design, factor, self.coefs, alpha, beta, data.get(X_MEAN_DATA)))
        return {FactorNames(factor).block_mean(k): means[sl][self.inner.centered_columns]
                for k, block, sl in factor_blocks(design, factor) if "Intercept" in block.coef_names and means[sl].any()}


@dataclass(frozen=True)
class Folded(Parameterization):
    """A centered factor whose varying intercepts' block is drawn as its mean ``ubar_<factor>_<k>``
    (``N(0, L L' / J)``) and J - 1 Helmert contrasts ``u_<factor>_<k>`` (an orthogonal map of J iid
    rows: unit Jacobian). The linear predictor leaves the mean intercept out, and the hierarchically
    centred factor's mean takes it (:func:`hierbayes.model.coordinates.folded_factors`)."""

    inner: Centered | CenteredIntercept

    @property
    def value(self) -> str:
        return self.inner.value

    def draw(self, fx: FactorEffects) -> Effects:
        effects = self.inner.draw(replace(fx, levels=self.levels))
        return replace(effects, through_recorded=False)

    @staticmethod
    def levels(fx: FactorEffects, k: int, centre, q: int, L, sd, mean_sd, intercept: int | None) -> Levels:
        """:func:`all_levels`, with the block of the intercept (column ``intercept``) drawn as its mean
        (SD ``mean_sd / sqrt(J)``, or ``L / sqrt(J)``) and contrasts."""
        if intercept is None:
            return all_levels(fx, k, centre, q, L, sd, mean_sd, intercept)
        ubar, contrasts = mean_and_contrast_rows(fx, k, q, L, sd, mean_sd, centre, np.zeros(q))
        drawn = contrasts + pt.set_subtensor(ubar[intercept], 0.0) if q > 1 else contrasts
        return Levels(contrasts + ubar, drawn, ubar[intercept])


@dataclass(frozen=True)
class AroundParent(Parameterization):
    """A centered factor nested in the centered factor ``parent``, its varying intercepts drawn around
    their parent level's: ``v_j ~ N(w_parent(j), ...)``, ``w`` what the parent adds to the linear
    predictor, which takes ``v`` in place of ``w + r`` (``r_<factor>`` records ``v - w``): a shift,
    :class:`HierarchicallyCentered` one level down (:func:`~hierbayes.model.coordinates.nested_centering`).
    ``depth``: levels below the chain's top (the drawing order); ``root_centering``: the top's
    :func:`~hierbayes.model.coordinates.hierarchical_centering`, when it has one (where levels start)."""

    inner: Centered | CenteredIntercept | PartiallyCentered
    parent: str
    depth: int = 1
    root_centering: tuple | None = None

    @property
    def value(self) -> str:
        return self.inner.value

    @property
    def order(self) -> int:
        return LAST + self.depth

    def draw(self, fx: FactorEffects) -> Effects:
        w = fx.parent_intercepts
        centre = pt.stack([w if coef == "Intercept" else pt.zeros_like(w) for coef in fx.coefs], axis=1)
        effects = self.inner.draw(replace(fx, centre=centre))
        return replace(effects, centre=centre, through_recorded=False)

    def starts(self, design: Design, factor: str, alpha, beta, data: Mapping) -> dict[str, np.ndarray]:
        """The intercepts start at the top's, when it starts at the fixed intercept."""
        if self.root_centering is None or "Intercept" not in self.root_centering[1]:
            return {}
        top, coefs = self.root_centering
        mean = effect_means(design, top, coefs, alpha, beta, data.get(X_MEAN_DATA))[design.factor_coefs(top).index("Intercept")]
        k, block, sl = next(b for b in factor_blocks(design, factor) if "Intercept" in b[1].coef_names)
        row = np.where(np.array(block.coef_names) == "Intercept", mean, 0.0)
        return self.inner.level_starts(FactorNames(factor), k, sl, row, len(design.factors[factor].levels), data)


_BY_VALUE = {p.value: p for p in (NonCentered, Centered, CenteredIntercept, PartiallyCentered)}
PARAMETERIZATIONS = tuple(_BY_VALUE)  # the values of ``parameterization=`` ("auto" aside)


def factor_parameterizations(design: Design, parameterization, collapse: bool = False,
                             around_fixed_effects: bool = True) -> dict[str, Parameterization]:
    """The parameterization of each sampled grouping factor's effects, in formula order (with ``collapse``,
    none of the integrated factors: :func:`~hierbayes.model.coordinates.sampled_design`).

    Parameters
    ----------
    design : Design
    parameterization : str or dict of factor -> str
        ``"non-centered"``, ``"centered"`` or ``"centered-intercept"``, for every factor or per
        factor (validated by :class:`hierbayes.model.definition.ModelDefinition`).
    collapse : bool
        The effects of :func:`~hierbayes.model.coordinates.integrated_factors` are integrated out: not drawn.
    around_fixed_effects : bool
        False draws every centered factor's effects as deviations ``r_j ~ N(0, L L')``
        (no :class:`HierarchicallyCentered`, no :class:`Folded`): the model in its own terms,
        where the joint mode's collapse is ``r = 0`` (:mod:`hierbayes.lessons.modes`).

    Returns
    -------
    dict of factor -> Parameterization
        With the design's say: a non-centered factor is :class:`ShearedNonCentered` when
        :func:`~hierbayes.model.coordinates.sheared` shears it, the centered factor of
        :func:`~hierbayes.model.coordinates.hierarchical_centering` is :class:`HierarchicallyCentered`
        and those of :func:`~hierbayes.model.coordinates.folded_factors` :class:`Folded`.

    Examples
    --------
    >>> import pandas as pd
    >>> import hierbayes as hb
    >>> df = pd.DataFrame({"y": range(12), "x": [0, 1] * 6, "g": list("aabbcc") * 2, "h": list("deddde") * 2})
    >>> m = hb.Model("y ~ x + (1 | g) + (1 + x || h)", df, parameterization="centered", collapse=False)  # h: more rows a level
    >>> factor_parameterizations(m.design, m.parameterization)
    {'g': Folded(inner=Centered()), 'h': HierarchicallyCentered(inner=Centered(), coefs=('Intercept', 'x'))}
    """
    beside_integrated = collapse and mean_and_contrasts_beside(design)
    if collapse:  # the integrated factors are drawn after sampling; the crossed others are sampled
        design = sampled_design(design)
    centering = hierarchical_centering(design, parameterization) if around_fixed_effects else None
    shear = sheared(design, parameterization)
    folded = folded_factors(design, parameterization, centering)
    nests = nested_centering(design, parameterization, centering) if around_fixed_effects else {}
    out = {}
    for factor in design.factors:
        chosen = _BY_VALUE[parameterization_of(parameterization, factor)]()
        if shear.get(factor):
            chosen = ShearedNonCentered(shear[factor])
        elif centering and factor == centering[0]:
            by_mean = beside_integrated and not isinstance(chosen, PartiallyCentered)  # its levels are drawn one by one
            chosen = (CenteredByMean if by_mean else HierarchicallyCentered)(chosen, centering[1])
        elif factor in folded:
            chosen = Folded(chosen)
        elif factor in nests:
            top, depth = factor, 0
            while top in nests:
                top, depth = nests[top], depth + 1
            chosen = AroundParent(chosen, nests[factor], depth,
                                  centering if centering and top == centering[0] else None)
        out[factor] = chosen
    return out


def add_group_effects(parameterization: Parameterization, design: Design, factor: str, shared: Mapping, sd,
                      fixed: FixedEffects = FixedEffects(), parent_intercepts=None,
                      carried: bool = False) -> tuple[Any, Effects]:
    """Add one factor's effects, drawn by ``parameterization``, to the PyMC model being built.

    Parameters
    ----------
    parameterization : Parameterization
    design : Design
    factor : str
    shared : mapping
        The model's data (``pm.Data`` and its slices), by name.
    sd : tensor
        The factor's SDs, one per varying coefficient (drawn under their priors).
    fixed : FixedEffects
        The fixed effects drawn so far (for :class:`HierarchicallyCentered`).
    parent_intercepts : tensor, optional
        For :class:`AroundParent`: the parent's intercept at each of the factor's levels.
    carried : bool
        The factor's intercepts reach the linear predictor through those of a factor nested in it
        (:class:`AroundParent`): its term leaves them out.

    Returns
    -------
    (tensor, Effects)
        The factor's term of the linear predictor (one per row), and its effects; the model
        records ``r_<factor>`` and, with correlated blocks, ``cor_<factor>``.
    """
    fx = FactorEffects(design, factor, shared, sd, fixed, parent_intercepts=parent_intercepts)
    effects = parameterization.draw(fx)
    names = fx.names
    v = pt.concatenate(effects.recorded, axis=1) if len(effects.recorded) > 1 else effects.recorded[0]
    r = pm.Deterministic(names.effects, v if effects.centre is None else v - effects.centre,
                         dims=(names.level_dim, names.coef_dim))
    record_correlations(names, fx.cors)
    if effects.through_recorded:
        effect = r
    else:  # the effects as drawn: their means are in the linear predictor through them
        effect = pt.concatenate(effects.drawn, axis=1) if len(effects.drawn) > 1 else effects.drawn[0]
    g, Z = shared[names.index], shared[names.columns]
    term, zcol = 0.0, 0
    for k, coef in enumerate(fx.coefs):
        if coef == "Intercept":
            term = term if carried else term + effect[:, k][g]
        else:
            term = term + Z[:, zcol] * effect[:, k][g]
            zcol += 1
    return term, replace(effects, per_level=effect)
