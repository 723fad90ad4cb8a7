"""The sampler's data contract: every array the PyMC model reads, by name, and the key of its structure.

Every array that depends on the data or on prior values enters the PyMC model as
``pm.Data`` (:mod:`hierbayes.model.pymc_model`), so the compiled model depends only on the
*structure* (family, terms, blocks, level counts, prior kinds). :func:`structure_key`
names that structure; the sampler keeps one compiled model per key and refits new data or
new priors by swapping the values :func:`model_data` and :func:`pack_data` give, starting
from :func:`initial_values`.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> sorted(model_data(m.design, m.family, m.priors))[:4]
['Intercept_centered__mu', 'Intercept_centered__sigma', 'X', 'X_mean']
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import DataError
from hierbayes.model.coordinates import (
    fixed_slopes,
    hierarchical_centering,
    level_ranks,
    mean_and_contrasts_beside,
    nested_in,
    parameterization_of,
    sampled_design,
    sheared,
)
from hierbayes.model.parameterization import centering_weights
from hierbayes.model.parameterizations import PARAMETERIZATIONS, factor_parameterizations
from hierbayes.specification import names as N
from hierbayes.specification.design import Design
from hierbayes.specification.families import FAMILIES, Family
from hierbayes.specification.names import FIXED_DATA, SLOPE_DIM, FactorNames, is_row_data, response_name
from hierbayes.specification.parameters import cor_pairs, lkj_label, threshold_parameters
from hierbayes.specification.priors import PRIOR_KINDS, Prior

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["model_data", "model_coords", "initial_values", "prior_blocks", "pack_data", "structure_key", "PARAMETERIZATIONS",
           "response_name", "internal_names", "is_row_data", "FIXED_DATA", "SLOPE_DIM"]


def internal_names(design: Design, family: Family | None = None) -> set[str]:
    """Names the PyMC model may give its own variables, data and dims (a factor's dim may not take one):
    :func:`hierbayes.specification.names.model_names` over every prior kind and ``family``'s parameters
    (every registered family's when None).

    >>> import hierbayes as hb
    >>> {"b", "sigma", "sd_Subject"} <= internal_names(hb.Model("Reaction ~ Days + (1 | Subject)",
    ...                                                        hb.datasets.load("sleepstudy")).design)
    True
    """
    kinds = {kind: spec.parameters for kind, spec in PRIOR_KINDS.items()}
    families = FAMILIES.values() if family is None else [family]
    return N.model_names(design, kinds, {name for fam in families for name in fam.reported})


def check_factor_names(design: Design, family: Family) -> None:
    """Refuse a grouping factor whose name the model already uses for one of its own variables (a factor
    named ``shape`` is fine in a gaussian model, not in a gamma one, whose parameter it is)."""
    taken = internal_names(design, family)
    for factor in design.all_factors:
        if factor in taken:
            raise DataError(f"grouping factor {factor!r} has the name of one of the model's own variables; "
                            f"rename the column (for example df.rename(columns={{{factor!r}: {factor + '_group'!r}}}))")


def _varying_columns(design: Design, factor: str) -> list[int]:
    """Positions (in the factor's coefficients) of the non-intercept Z columns."""
    return [k for k, c in enumerate(design.factor_coefs(factor)) if c != "Intercept"]


def _factor_Z(design: Design, factor: str) -> np.ndarray:
    Z = np.concatenate([b.Z for b in design.blocks if b.factor == factor], axis=1)
    return Z[:, _varying_columns(design, factor)]


def prior_groups(name: str, labels: list[str], priors: Mapping[str, Prior]) -> list[tuple[str, str, list[int]]]:
    """Split labels by prior kind: (variable name, kind, positions)."""
    kinds: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        kinds.setdefault(priors[label].kind, []).append(i)
    if len(kinds) == 1:
        return [(name, next(iter(kinds)), list(range(len(labels))))]
    return [(N.kind_variable(name, kind), kind, idx) for kind, idx in kinds.items()]


def prior_blocks(design: Design, family: Family) -> list[tuple[str, list[str], bool]]:
    """(variable, labels, scalar) of every group of parameters with a prior other than LKJ.

    A group whose labels have priors of several kinds becomes one variable per kind
    (:func:`prior_groups`).

    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
    >>> [name for name, _, _ in prior_blocks(m.design, m.family)]
    ['Intercept_centered', 'b_slopes', 'sd_Subject', 'sigma']
    """
    blocks = [block for part in (design, *design.parts) for block in _formula_prior_blocks(part)]
    if family.thresholds is not None:  # after the mean's intercept (an ordinal model has none)
        blocks.insert(1 if design.has_intercept else 0,
                      (N.THRESHOLDS_CENTERED, [p.label for p in threshold_parameters(design)], False))
    return blocks + [(name, [name], True) for name, _ in family.parameters if design.part_design(name) is None]


def _formula_prior_blocks(design: Design) -> list[tuple[str, list[str], bool]]:
    """:func:`prior_blocks` of one formula (the mean's, or a family parameter's): intercept, slopes, SDs."""
    fixed = N.FixedNames(design.part)
    slopes = [fixed.label(design.fixed_names[j]) for j in fixed_slopes(design)]
    blocks = [(fixed.intercept_centered, [fixed.label("Intercept")], True)] if design.has_intercept else []
    if slopes:
        blocks.append((fixed.slopes, slopes, False))
    for factor in design.factors:
        names = FactorNames(factor, design.part)
        blocks.append((names.sd, [names.sd_label(c) for c in design.factor_coefs(factor)], False))
    return blocks


def initial_values(design: Design, family: Family, priors: Mapping[str, Prior],
                   data: Mapping[str, np.ndarray], parameterization: str | Mapping[str, str] = "non-centered",
                   collapse: bool = False) -> dict[str, np.ndarray]:
    """Where the sampler starts every parameter with a prior, on the sampler's scale.

    Each starts at its prior's location (PyMC's ``support_point``: ``mu``, a half
    distribution's scale, an exponential's mean), but the mean's intercept on a link other than the
    identity, which starts at the data's location (the link of the response mean, the centre of its
    default prior, so a stated prior far from the data does not start the sampler where exp(eta)
    overflows), positive parameters on the log scale
    under PyMC's value name (``sigma_log__``); the effects drawn around the fixed effects
    (:func:`hierarchical_centering`) start at the fixed effects' starts. Parameters absent
    here (standardized or zero-mean group effects, correlation Cholesky factors) start at
    zero, which is the identity for a correlation. The prior values come from ``data``
    (:func:`model_data`), so new data or new priors move the start without the PyMC model.

    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
    >>> start = initial_values(m.design, m.family, m.priors, model_data(m.design, m.family, m.priors))
    >>> round(float(start["Intercept_centered"]), 1), sorted(start)
    (298.5, ['Intercept_centered', 'b_slopes', 'sd_Subject_log__', 'sigma_log__'])
    >>> start = initial_values(m.design, m.family, m.priors, model_data(m.design, m.family, m.priors), "centered")
    >>> start["u_Subject_0"][:2].round(1)  # the level intercepts start at the fixed intercept
    array([[298.5],
           [298.5]])
    """
    out, natural = {}, {}
    for name, labels, _ in prior_blocks(design, family):
        for var, kind, idx in prior_groups(name, labels, priors):
            spec = PRIOR_KINDS[kind]
            value = np.asarray(spec.start({p: np.asarray(data[N.prior_data(var, p)]) for p in spec.parameters}),
                               dtype=float)
            natural[name] = np.zeros(len(labels)) if name not in natural else natural[name]
            natural[name][idx] = value
            if name == N.THRESHOLDS_CENTERED and family.thresholds.ordered:
                out[N.ordered_value(var)] = _ordered_start(value, design, family)
            elif spec.support == "positive":
                out[N.log_value(var)] = np.log(value)
            elif spec.support == "unit":
                out[N.logodds_value(var)] = np.log(value) - np.log1p(-value)
            else:
                out[var] = value
    if design.has_intercept and not family.nominal and family.link != "identity" and N.INTERCEPT_CENTERED in out:
        # the mean's intercept starts where the data put it (the centre of its default prior), whatever
        # prior is stated: a stated prior far from the data's scale (or SBC's priors held fixed against
        # extreme simulated data) would start a log-link model where exp(eta) is off by orders of magnitude
        # (nutpie could not start, or chains stuck there); on the identity link nothing overflows
        location = float(family.summarise_response(design.y, design.trials).location)
        if np.isfinite(location):
            natural[N.INTERCEPT_CENTERED][0] = location
            out[N.INTERCEPT_CENTERED] = np.full_like(out[N.INTERCEPT_CENTERED], location)
    alpha = natural[N.INTERCEPT_CENTERED][0] if design.has_intercept else None
    for factor, chosen in factor_parameterizations(design, parameterization, collapse).items():
        out.update(chosen.starts(design, factor, alpha, natural.get(N.SLOPES), data))
    return out


def _ordered_start(locations: np.ndarray, design: Design, family: Family) -> np.ndarray:
    """Ordered thresholds' start on the sampler's scale (the first, then the log gaps): their priors'
    locations, or where they do not increase, the thresholds that give the categories their shares."""
    if not np.all(np.diff(locations) > 0):
        locations = np.asarray(family.summarise_response(design.y, None).thresholds)
    return np.concatenate([locations[:1], np.log(np.diff(locations))])


def model_coords(design: Design) -> dict[str, list]:
    """The PyMC model's coordinates: fixed-effect terms, and each factor's levels, coefficients
    and correlation pairs (the dims of :mod:`hierbayes.specification.parameters`)."""
    coords = {}
    for part in (design, *design.parts):
        fixed = N.FixedNames(part.part)
        coords[fixed.dim] = list(part.fixed_names)
        coords[fixed.slope_dim] = [part.fixed_names[j] for j in fixed_slopes(part)]
        for factor, fd in part.factors.items():
            names = FactorNames(factor, part.part)
            coords[names.level_dim] = list(fd.levels)
            coords[names.coef_dim] = list(part.factor_coefs(factor))
            pairs = cor_pairs(part, factor)
            if pairs:
                coords[names.cor_dim] = [N.cor_pair(a, b) for a, b in pairs]
    if design.categories:
        coords[N.THRESHOLD_DIM] = N.threshold_coords(len(design.categories))
    return coords


def model_data(design: Design, family: Family, priors: Mapping[str, Prior],
               collapse: bool = False, parameterization: str | Mapping[str, str] = "non-centered"
               ) -> dict[str, np.ndarray]:
    """Every ``pm.Data`` value of the model, by name: data arrays and prior parameters.

    With ``collapse``, the rows are replaced by the sufficient statistics of
    :mod:`hierbayes.model.collapsed`. A factor of ``parameterization`` ``"partially-centered"``
    carries its levels' :func:`~hierbayes.model.parameterization.centering_weights`.
    """
    data: dict[str, np.ndarray] = {N.RESPONSE_DATA: design.observed}
    if design.trials is not None:
        data[N.TRIALS_DATA] = design.trials
    if design.offset is not None:
        data[N.OFFSET_DATA] = design.offset
    data.update({N.ADDITION_DATA[arg]: values for arg, values in design.additions.items()})
    _formula_data(design, data, thresholds=family.thresholds is not None)
    for name, labels, scalar in prior_blocks(design, family):
        for var, kind, idx in prior_groups(name, labels, priors):
            for p in PRIOR_KINDS[kind].parameters:
                values = np.array([priors[labels[i]].values[p] for i in idx], dtype=float)
                data[N.prior_data(var, p)] = values[0] if scalar else values
    for part in (design, *design.parts):
        for k, block in enumerate(part.blocks):
            if block.block.correlated and len(block.coef_names) > 1:
                data[N.prior_data(N.corr_chol(k, part.part), "eta")] = np.float64(
                    priors[lkj_label(block, part.part)].values["eta"])
    for part in design.parts:  # after the mean's: a model without parts keeps its data's layout
        _formula_data(part, data)
    for child, (_, parent) in nested_in(sampled_design(design) if collapse else design).items():
        data[N.FactorNames(child).parent_levels] = parent.astype(float)  # AroundParent's: a slice of fixed_data
    for factor, fd in (sampled_design(design).factors.items() if collapse else ()):  # CenteredByMean's
        data[N.FactorNames(factor).level_ranks] = level_ranks(fd.counts).astype(float)
    for factor in (sampled_design(design) if collapse else design).factors:  # PartiallyCentered's
        if parameterization_of(parameterization, factor) == "partially-centered":
            data[N.FactorNames(factor).centering_weights] = centering_weights(design, family, factor)
    if collapse:
        from hierbayes.model.collapsed import collapsed_data

        data = collapsed_data(data, design)
    return data


def _formula_data(design: Design, data: dict[str, np.ndarray], thresholds: bool = False) -> None:
    """Add one formula's rows to ``data``: its fixed slopes' columns (centred, with their means, when there
    is an intercept; an ordinal model's ``thresholds`` are sampled at the means, the columns kept as they
    are) and each factor's level index and varying columns."""
    fixed = N.FixedNames(design.part)
    X = design.X[:, fixed_slopes(design)]
    if design.has_intercept or thresholds:
        data[fixed.X_mean] = X.mean(axis=0)
    if design.has_intercept:
        X = X - data[fixed.X_mean]
    data[fixed.X] = X
    for factor, fd in design.factors.items():
        names = FactorNames(factor, design.part)
        data[names.index] = fd.index
        data[names.columns] = _factor_Z(design, factor)


def pack_data(data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's ``pm.Data`` values: the row arrays by name, everything else in one vector.

    Prior parameters, ``X_mean`` and the collapsed sufficient statistics have sizes fixed by
    the structure, so they travel as one flat vector (``fixed_data``, in ``data``'s order):
    every separate shared variable costs numba about half a second to compile into nutpie's
    C callback (``bench/NOTES.md``).
    """
    out = {name: value for name, value in data.items() if is_row_data(name)}
    fixed = [np.ravel(np.asarray(value, dtype=float)) for name, value in data.items() if not is_row_data(name)]
    out[FIXED_DATA] = np.concatenate(fixed) if fixed else np.zeros(0)
    return out


def structure_key(design: Design, family: Family, priors: Mapping[str, Prior], parameterization,
                  collapse: bool = False) -> tuple:
    """What the compiled model depends on; equal keys can share one compiled model."""
    return (
        family.name, family.link, family.fingerprint, response_name(design), design.fixed_names,
        design.offset is not None, design.trials is not None, tuple(design.additions),
        tuple((b.factor, b.coef_names, b.block.correlated, len(design.factors[b.factor].levels))
              for b in design.blocks),
        tuple((label, p.kind) for label, p in priors.items()),
        tuple(parameterization_of(parameterization, f) for f in design.factors),
        bool(collapse) and mean_and_contrasts_beside(design),  # depends on the rows per level, not in the key above
        tuple((child, parent) for child, (parent, _) in nested_in(sampled_design(design) if collapse else design).items()),
        bool(collapse),
        hierarchical_centering(design, parameterization, collapse),
        tuple(sheared(design, parameterization, collapse).items()),
        tuple((part.part, part.fixed_names, tuple((b.factor, b.coef_names, b.block.correlated,
                                                    len(part.factors[b.factor].levels)) for b in part.blocks))
              for part in design.parts),
    )


