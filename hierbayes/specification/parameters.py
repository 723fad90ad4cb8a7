"""The parameters as users see them: every printed parameter, its posterior variable, and its prior.

Users see brms-style labels (``Intercept``, ``Days``, ``sd(Days|Subject)``,
``cor(Intercept,Days|Subject)``, ``sigma``) in every table and in ``priors=``. The
posterior stores them in a few array variables with level- and coefficient-named
dims. :func:`model_parameters` lists every parameter with its label, class, posterior
variable and selection; :func:`resolve_priors` combines the data-scaled defaults with
what the user asked for. The labels and variable names themselves come from
:mod:`hierbayes.specification.names`.

Examples
--------
>>> import pandas as pd
>>> from hierbayes.specification.formula import parse
>>> from hierbayes.specification.families import get_family
>>> from hierbayes.specification.design import make_design
>>> df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 2.0, 1.0], "x": [0, 1, 0, 1, 2, 2], "g": list("aabbcc")})
>>> d = make_design(parse("y ~ x + (x | g)"), df, get_family("gaussian"))
>>> [p.label for p in model_parameters(d, get_family("gaussian"))]
['Intercept', 'x', 'sd(Intercept|g)', 'sd(x|g)', 'cor(Intercept,x|g)', 'sigma']
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hierbayes.common.errors import DataError, PriorError, did_you_mean
from hierbayes.specification import priors as P
from hierbayes.specification.design import Design
from hierbayes.specification.families import Family
from hierbayes.specification.names import (
    FIXED_DIM,
    THRESHOLD_DIM,
    THRESHOLDS,
    FactorNames,
    FixedNames,
    coef_dim,
    cor_dim,
    cor_pair,
    effects_var,
    factor_dim,
    group_effect_label,
    part_class,
    safe_name,
    threshold_coords,
    threshold_label,
)

__all__ = ["Parameter", "model_parameters", "effects_var", "group_effect_label", "group_effect_parameters", "cor_pairs",
           "lkj_label", "threshold_parameters", "prior_targets", "default_priors", "resolve_priors", "safe_name",
           "check_distinct_names",
           "factor_dim", "coef_dim", "cor_dim", "FIXED_DIM"]


DERIVED = "derived"
"""The class of a family's derived quantity (ordered beta's ``cutone``): summarised, takes no prior."""


def check_distinct_names(design: Design) -> None:
    """Refuse two grouping factors whose internal names (:func:`safe_name`) are one, as ``g.1`` and
    ``g_1``: their variables would overwrite each other; and a printed name that two formulas
    give (a column ``sigma_x`` in the mean's formula and ``x`` in sigma's: ``sigma_x`` twice).

    Raises
    ------
    DataError
        Naming both factors, or the name.
    """
    seen: dict[str, str] = {}
    for factor in design.all_factors:
        other = seen.setdefault(safe_name(factor), factor)
        if other != factor:
            raise DataError(f"grouping factors {other!r} and {factor!r} would share the internal name "
                            f"{safe_name(factor)!r} (symbols become '_'); rename one of the columns")
    labels = [p.label for part in design.parts for p in _linear_parameters(part)]
    if twice := set(labels) & {p.label for p in _linear_parameters(design)} or {x for x in labels if labels.count(x) > 1}:
        raise DataError(f"two formulas name a parameter {sorted(twice)[0]!r}; rename the column behind it")


def group_effect_parameters(design: Design, levels: dict[str, list[str]] | None = None) -> list[Parameter]:
    """One :class:`Parameter` per level and varying coefficient (all levels unless ``levels`` names some)."""
    out = []
    for part in (design, *design.parts):
        for factor, fd in part.factors.items():
            names = FactorNames(factor, part.part)
            chosen = fd.levels if levels is None else levels.get(factor, [])
            out += [Parameter(names.effect_label(level, c), "r", names.effects,
                              {names.level_dim: level, names.coef_dim: c}, "real", factor, part.part)
                    for level in chosen for c in part.factor_coefs(factor)]
    return out


@dataclass(frozen=True)
class Parameter:
    """A parameter as users see it.

    Attributes
    ----------
    label : str
        Printed name, also the key in ``priors=``.
    cls : str
        brms class: ``"Intercept"``, ``"b"``, ``"sd"``, ``"cor"`` or the family parameter's name;
        ``"derived"`` for a family's quantity computed from its parameters (no prior).
    var : str
        Posterior variable holding it.
    sel : dict
        Selection of this parameter within ``var``.
    support : str
        ``"real"``, ``"positive"`` or ``"correlation"``.
    factor : str or None
        Grouping factor, for ``sd`` and ``cor``.
    part : str or None
        The family parameter whose formula it belongs to (``sigma`` for ``sigma_Days``); None: the mean's.
    """

    label: str
    cls: str
    var: str
    sel: dict = field(default_factory=dict, hash=False)
    support: str = "real"
    factor: str | None = None
    part: str | None = None

    @property
    def prior_class(self) -> str:
        """The class a prior may be given by: ``cls``, with the part's suffix in a parameter's formula (``b_sigma``)."""
        return part_class(self.cls, self.part)


def cor_pairs(design: Design, factor: str) -> list[tuple[str, str]]:
    """Coefficient pairs of the correlations of ``factor``: within each correlated block,
    ``(c0, c1), (c0, c2), (c1, c2), ...`` (column by column of the upper triangle)."""
    pairs = []
    for block in design.blocks:
        if block.factor == factor and block.block.correlated:
            c = block.coef_names
            pairs += [(c[i], c[j]) for j in range(len(c)) for i in range(j)]
    return pairs


def threshold_parameters(design: Design) -> list[Parameter]:
    """An ordinal model's thresholds ``Intercept[1]`` .. ``Intercept[K-1]`` (class ``Intercept``); none for the others."""
    return [Parameter(threshold_label(k), "Intercept", THRESHOLDS, {THRESHOLD_DIM: coord})
            for k, coord in enumerate(threshold_coords(len(design.categories)), 1)]


def _linear_parameters(design: Design) -> list[Parameter]:
    """The fixed effects, SDs and correlations of one formula (the mean's, or a family parameter's)."""
    fixed, part = FixedNames(design.part), design.part
    out = [Parameter(fixed.label(name), "Intercept" if name == "Intercept" else "b", fixed.effects, {fixed.dim: name},
                     part=part) for name in design.fixed_names]
    for factor in design.factors:
        names = FactorNames(factor, part)
        out += [Parameter(names.sd_label(c), "sd", names.sd, {names.coef_dim: c}, "positive", factor, part)
                for c in design.factor_coefs(factor)]
        out += [Parameter(names.cor_label(a, b), "cor", names.cor, {names.cor_dim: cor_pair(a, b)},
                          "correlation", factor, part)
                for a, b in cor_pairs(design, factor)]
    return out


def model_parameters(design: Design, family: Family) -> list[Parameter]:
    """Every summarised parameter of the model, in the order tables print them: the mean's formula, each
    family parameter's formula (``sigma_Intercept``, ``sd(sigma_Intercept|g)``), the family parameters
    that are one number."""
    out = threshold_parameters(design)
    out += [p for part in (design, *design.parts) for p in _linear_parameters(part)]
    out += [Parameter(name, name, name, {}, support) for name, support in family.parameters
            if design.part_design(name) is None]
    out += [Parameter(name, DERIVED, name) for name, _ in family.derived]
    return out


def lkj_label(block, part: str | None = None) -> str:
    """Prior key of a correlated block's LKJ prior: ``cor(Intercept,Days|Subject)`` (in ``part``'s formula:
    ``cor(sigma_Intercept,sigma_Days|Subject)``)."""
    return FactorNames(block.factor, part).cor_label(*block.coef_names)


def prior_targets(design: Design, family: Family) -> list[tuple[str, str, str]]:
    """(label, class, support) of every parameter that takes a prior, in order.

    Differs from :func:`model_parameters` in two respects: a correlated block takes one
    LKJ prior on its whole correlation matrix, and a family's derived quantities take none.
    """
    targets = [(p.label, p.prior_class, p.support) for p in model_parameters(design, family)
               if p.cls not in ("cor", DERIVED)]
    targets += [(lkj_label(b, part.part), part_class("cor", part.part), "correlation") for part in (design, *design.parts)
                for b in part.blocks if b.block.correlated and len(b.coef_names) > 1]
    return targets


def _column_sd(values: np.ndarray) -> float:
    sd = float(np.std(values))
    return sd if sd > 0 else 1.0


def default_priors(design: Design, family: Family) -> dict[str, P.Prior]:
    """Weakly informative priors scaled to the data (the rstanarm recipe).

    With ``s = sd(y)`` on the identity link, ``s = 0.4`` on tan_half (``TAN_HALF_SCALE``: keeps
    von_mises's mean direction off the branches at +-pi) and ``s = 1`` on the others, ``m`` the
    link of the response mean, and ``sd(x)`` a column's standard deviation:

    - ``Intercept`` (on centred predictors): Normal(m, 2.5 s)
    - an ordinal family's thresholds ``Intercept[k]`` (at the slopes' means): Normal(t_k, 2.5),
      ``t_k`` the threshold that gives the categories their shares in the data at ``eta = 0``
      (brms: Student-t(3, 0, 2.5))
    - fixed slope on ``x``: Normal(0, 2.5 s / sd(x))
    - ``sd(x|g)``: HalfNormal(s / sd(x)), with sd(x) = 1 for the intercept
    - ``cor(...|g)``: LKJ(2)
    - family parameters: from the family registry (``sigma``: Exponential(1 / s)).

    A nominal family's category ``c`` (``categorical``, ``multinomial``) has the scales of a logit-link mean
    (``muc_Intercept`` ~ Normal(log(p_c / p_1), 2.5), ``p`` the categories' shares in the data,
    ``muc_x`` ~ Normal(0, 2.5 / sd(x)), ``sd(muc_x|g)`` ~ HalfNormal(1 / sd(x))); another family parameter
    with a formula (``sigma ~ x + (1 | g)``) has, on its link (``family.formula_link``),
    ``sigma_Intercept`` ~ Normal(link(c), 1.5) with ``c`` the start of the parameter's own default prior
    (its mean: ``s`` for ``sigma``), ``sigma_x`` ~ Normal(0, 1 / sd(x)), ``sd(sigma_x|g)`` ~
    HalfNormal(1 / sd(x)) and LKJ(2).
    """
    r = family.summarise_response(design.y, design.trials)
    priors = _linear_priors(design, r.location, 2.5 * r.scale, 2.5 * r.scale, r.scale)
    own = family.default_priors(r)
    for k, part in enumerate(design.parts):
        if family.nominal:  # a category's linear predictor: the mean's scales, centred at its share's log odds
            priors.update(_linear_priors(part, r.category_logits[k], 2.5, 2.5, 1.0))
            continue
        prior = own[part.part]
        start = P.PRIOR_KINDS[prior.kind].start(prior.values)
        centre = float(family.formula_link(part.part).forward(start))
        priors.update(_linear_priors(part, centre, PART_INTERCEPT_SD, PART_SLOPE_SD, PART_GROUP_SD))
    for k, location in enumerate(r.thresholds, 1):
        priors[threshold_label(k)] = P.Normal(location, 2.5)
    priors.update({name: prior for name, prior in own.items() if design.part_design(name) is None})
    return priors


PART_INTERCEPT_SD, PART_SLOPE_SD, PART_GROUP_SD = 1.5, 1.0, 1.0
"""The scales of a family parameter's formula's default priors, on the parameter's link (:func:`default_priors`)."""


def _linear_priors(design: Design, centre: float, intercept_sd: float, slope_sd: float,
                   group_sd: float) -> dict[str, P.Prior]:
    """Default priors of one formula's fixed effects, SDs and correlations: the intercept Normal(centre,
    intercept_sd), a slope Normal(0, slope_sd / sd(x)), an SD HalfNormal(group_sd / sd(x)), LKJ(2)."""
    fixed, priors = FixedNames(design.part), {}
    for j, name in enumerate(design.fixed_names):
        if name == "Intercept":
            priors[fixed.label(name)] = P.Normal(centre, intercept_sd)
        else:
            priors[fixed.label(name)] = P.Normal(0.0, slope_sd / _column_sd(design.X[:, j]))
    for block in design.blocks:
        for k, coef in enumerate(block.coef_names):
            z_sd = 1.0 if coef == "Intercept" else _column_sd(block.Z[:, k])
            priors[FactorNames(block.factor, design.part).sd_label(coef)] = P.HalfNormal(group_sd / z_sd)
        if block.block.correlated and len(block.coef_names) > 1:
            priors[lkj_label(block, design.part)] = P.LKJ(2.0)
    return priors


def resolve_priors(design: Design, family: Family, user: dict | None) -> dict[str, P.Prior]:
    """The priors in force: defaults, overridden by class (``"b"``, ``"sd"``, ``"cor"``), then by label.

    Raises
    ------
    PriorError
        For a key that names no parameter (with the closest label suggested), or a
        prior whose support does not fit its parameter.
    """
    targets = prior_targets(design, family)
    resolved = default_priors(design, family)
    user = dict(user or {})
    labels = {label for label, _, _ in targets}
    classes = {cls for _, cls, _ in targets}
    for key in user:
        if key not in labels and key not in classes:
            close = did_you_mean(key, sorted(labels))
            hint = f"; did you mean {close!r}?" if close else f"; the parameters are {sorted(labels)}"
            raise PriorError(f"prior given for {key!r}, which is not a parameter of this model{hint}")
    for label, cls, support in targets:
        prior = user.get(label, user.get(cls))
        if prior is not None:
            P.check_support(label, prior, support)
            resolved[label] = prior
    if family.thresholds is not None and family.thresholds.ordered:
        _check_one_kind([p.label for p in threshold_parameters(design)], resolved)
    return {label: resolved[label] for label, _, _ in targets}


def _check_one_kind(labels: list[str], priors: dict[str, P.Prior]) -> None:
    """Refuse ordered thresholds with priors of several kinds: they are sampled as one ordered vector."""
    kinds = {priors[label].kind for label in labels}
    if len(kinds) > 1:
        raise PriorError(f"the thresholds {labels[0]} .. {labels[-1]} are sampled as one ordered vector, so their "
                         f"priors must be of one kind; got {sorted(kinds)}: give them all Normal or all StudentT "
                         "(e.g. priors={'Intercept': hb.StudentT(3, 0, 2.5)})")
