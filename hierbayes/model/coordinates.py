"""The sampler's coordinates for group effects and the fixed effects they share.

The same model can be sampled in several coordinates, and which one mixes depends on how much
each level's data say (``docs/speed.md``). :mod:`hierbayes.model.parameterizations` draws the
effects in them; the choices about coordinates are here, as functions of the design:

- :func:`hierarchical_centering`: the centered factor whose effects are drawn around the fixed
  effects (and :func:`folded_factors`, the other centered factors whose mean intercept joins it);
  a factor sampled ``"centered-intercept"`` counts as centered for its varying intercept only,
  its slopes drawn non-centered given it (:func:`centres_intercept_only`);
- :func:`nested_centering`: the centered factors drawn around the effects of the centered factor
  they are nested in (:func:`nested_in`);
- :func:`sheared`: the non-centered factors whose standardized effects are drawn as their mean
  and Helmert contrasts (:func:`helmert_rest`), with the fixed effect sampled plus the effects'
  mean (:func:`fixed_shift`);
- :func:`integrated_factors`: the factors a collapsed gaussian model integrates out
  (:mod:`hierbayes.model.collapsed`), and :func:`sampled_design`, the design of the others,
  whose effects the sampler still draws (the crossed factors of a crossed design).

Each is a change of coordinates with a constant Jacobian: the posterior is the same
(``tests/unit/test_parameterizations.py`` checks the log densities point by point).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.specification.design import Design

pt = deferred_import("pytensor.tensor")

__all__ = ["hierarchical_centering", "folded_factors", "sheared", "fixed_shift", "helmert_rest", "parameterization_of",
           "fixed_counterparts", "fixed_slopes", "factor_blocks", "centres_intercept_only", "CENTERED", "SHEAR_BALANCE",
           "nesting", "integrated_factors", "sampled_design", "MAX_COEFS", "nested_in", "nested_centering",
           "level_ranks", "mean_and_contrasts_beside", "MEAN_AND_CONTRASTS_ROWS"]

CENTERED = ("centered", "centered-intercept", "partially-centered")  # those that draw the intercepts (nearly) centered

SHEAR_BALANCE = 2.0  # largest ratio of the 90% to the 10% quantile of a factor's level sizes for sheared

MAX_COEFS = 8  # varying coefficients of the factor integrated out (q x q work per level)

# rows per level of the factor integrated out from which the centered factor sampled beside it is drawn as
# its mean and contrasts (CenteredByMean): measured on two designs, 165 (a million crossed rows: the
# intercept's ESS 335 -> 2,628) and 25 (InstEval: ESS unchanged, sampling 16% slower), bench/NOTES.md
MEAN_AND_CONTRASTS_ROWS = 50.0


def mean_and_contrasts_beside(design: Design) -> bool:
    """Whether the centered factor sampled beside an integrated one is drawn as its mean and contrasts.

    The integrated factor's effects absorb a common shift of the sampled factor's levels, held back
    only by their prior; the more rows each of its levels has, the more fully they absorb it, and
    the longer that direction is for the sampler. From :data:`MEAN_AND_CONTRASTS_ROWS` rows per
    integrated level (mean) on. False without a crossed factor integrated out.
    """
    integrated = integrated_factors(design)
    if not integrated or not sampled_design(design).factors:
        return False
    return len(design.y) / len(design.factors[integrated[0]].levels) >= MEAN_AND_CONTRASTS_ROWS


def fixed_slopes(design: Design) -> list[int]:
    """Positions in ``design.fixed_names`` of the fixed effects other than the intercept."""
    return [j for j, n in enumerate(design.fixed_names) if n != "Intercept"]


def nesting(design) -> tuple[str, str, np.ndarray] | None:
    """``(factor, nested factor, parent)`` when the design's two factors are nested, else None.

    ``parent[k]`` is the level of ``factor`` that holds level ``k`` of the nested factor
    (``school`` and ``school:class`` of ``(1 | school/class)``: every class is in one school).

    Examples
    --------
    >>> import pandas as pd
    >>> import hierbayes as hb
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "school": list("aabbbb"), "klass": list("xyxyzz")})
    >>> top, nested, parent = nesting(hb.Model("y ~ 1 + (1 | school/klass)", df).design)
    >>> top, nested, parent.tolist()
    ('school', 'school:klass', [0, 0, 1, 1, 1])
    """
    if len(design.factors) != 2:
        return None
    (a, fa), (b, fb) = design.factors.items()
    for top, ft, nested, fn in ((a, fa, b, fb), (b, fb, a, fa)):
        parent = fn.within(ft)
        if parent is not None:
            return top, nested, parent
    return None


def nested_in(design: Design) -> dict[str, tuple[str, np.ndarray]]:
    """Each grouping factor nested in another, with the nearest such factor and the parent of each of its
    levels (:meth:`~hierbayes.specification.design.FactorDesign.within`).

    The nearest is the one with the most levels among the factors with fewer levels than it
    in which it is nested (``class`` in ``school`` in ``district``: ``school``); the first in
    formula order on ties. Factors nested in none are left out.

    Examples
    --------
    >>> import pandas as pd
    >>> import hierbayes as hb
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "d": list("aabbcc"), "dept": list("ppppqq"),
    ...                    "s": list("xyxyxy")})
    >>> {k: (p, m.tolist()) for k, (p, m) in nested_in(hb.Model("y ~ (1 | s) + (1 | d) + (1 | dept)", df).design).items()}
    {'d': ('dept', [0, 0, 1])}
    """
    out: dict[str, tuple[str, np.ndarray]] = {}
    for child, fc in design.factors.items():
        for parent, fp in design.factors.items():
            nearer = child not in out or len(fp.levels) > len(design.factors[out[child][0]].levels)
            if len(fp.levels) < len(fc.levels) and nearer:
                levels = fc.within(fp)
                if levels is not None:
                    out[child] = (parent, levels)
    return out


def nested_centering(design: Design, parameterization, centering) -> dict[str, str]:
    """Centered factors drawn around the effects of the centered factor they are nested in: ``{child: parent}``.

    When a factor is nested in another (:func:`nested_in`; ``d`` in ``dept``), the data fix each
    child level's total intercept (its parent's plus its own) far better than either part: drawn
    around zero, a child level and its parent trade along a ridge, and the parent's effects mix
    slowly. So a centered child's varying intercepts are drawn around its parent level's, and the
    parent's intercept reaches the linear predictor only through them (Gelfand, Sahu and Carlin's
    hierarchical centering, one level further down:
    :class:`hierbayes.model.parameterizations.AroundParent`). Both must be centered (or
    ``"centered-intercept"``) with a varying intercept; a parent is carried by one child only (the
    first in formula order), and the factor of ``centering`` (:func:`hierarchical_centering`) is
    never a child. ``design`` is the design of the sampled factors (:func:`sampled_design`).
    """
    out: dict[str, str] = {}
    for child, (parent, _) in nested_in(design).items():
        both = all(parameterization_of(parameterization, f) in CENTERED and "Intercept" in design.factor_coefs(f)
                   for f in (child, parent))
        if both and parent not in out.values() and not (centering and child == centering[0]):
            out[child] = parent
    return out


def integrated_factors(design: Design) -> tuple[str, ...]:
    """The grouping factors whose effects a collapsed gaussian model integrates out (by level).

    The only factor; a factor and the factor nested in it (:func:`nesting`); of crossed
    factors, the one with the most levels among those of at most :data:`MAX_COEFS` varying
    coefficients (the first on ties). Given the other factors' effects, its levels are
    independent, so it is integrated out exactly while the others are sampled
    (:func:`sampled_design`): the most levels leave the sampler the fewest dimensions.
    Empty when no factor qualifies.

    >>> import pandas as pd
    >>> import hierbayes as hb
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "g": list("aabbcc"), "h": list("xyxyxy")})
    >>> integrated_factors(hb.Model("y ~ 1 + (1 | g) + (1 | h)", df).design)
    ('g',)
    """
    pair = nesting(design)
    if pair:
        return pair[:2]
    eligible = [f for f in design.factors if len(design.factor_coefs(f)) <= MAX_COEFS]
    if not eligible:
        return ()
    return (max(eligible, key=lambda f: len(design.factors[f].levels)),)


def sampled_design(design: Design) -> Design:
    """``design`` without the factors a collapsed model integrates out (:func:`integrated_factors`):
    the factors whose effects the sampler draws. Its blocks stay, so a block keeps its position
    (``corr_chol_<k>``); only its ``factors`` lose the integrated ones."""
    gone = integrated_factors(design)
    return replace(design, factors={f: fd for f, fd in design.factors.items() if f not in gone})


def level_ranks(counts: np.ndarray) -> np.ndarray:
    """Each level's place in the order of the levels by their row counts, most rows first (ties in
    level order): the order of :class:`~hierbayes.model.parameterizations.CenteredByMean`'s contrasts.

    >>> level_ranks(np.array([3, 10, 1, 10])).tolist()
    [2, 0, 3, 1]
    """
    ranks = np.empty(len(counts), dtype=np.int64)
    ranks[np.argsort(-np.asarray(counts), kind="stable")] = np.arange(len(counts))
    return ranks


def parameterization_of(parameterization, factor: str) -> str:
    return parameterization.get(factor, "non-centered") if isinstance(parameterization, Mapping) else parameterization


def centres_intercept_only(design: Design, factor: str) -> str | None:
    """Why ``factor`` cannot be sampled ``"centered-intercept"`` (None: it can).

    That draws the varying intercepts centered and the block's slopes non-centered given
    them (their conditional normal: ``r_slope = L[1:, 0] (v - mu) / L[0, 0] + L[1:, 1:] z``;
    the design puts the intercept first in its term), so there must be both.
    """
    coefs = design.factor_coefs(factor)
    if "Intercept" not in coefs or len(coefs) < 2:
        return f"{factor!r} needs a varying intercept and a varying slope"
    return None


def factor_blocks(design: Design, factor: str):
    """(position in ``design.blocks``, block, slice of the factor's coefficients) of each block of ``factor``."""
    start = 0
    for k, block in enumerate(design.blocks):
        if block.factor == factor:
            q = len(block.coef_names)
            yield k, block, slice(start, start + q)
            start += q


def fixed_counterparts(design: Design, factor: str) -> tuple[str, ...]:
    """The varying coefficients of ``factor`` that are also fixed effects of the same column.

    The varying intercept's counterpart is the fixed intercept; a varying slope's is the
    fixed slope of the same name whose ``X`` column equals the slope's ``Z`` column.
    """
    Z = np.concatenate([b.Z for b in design.blocks if b.factor == factor], axis=1)
    out = []
    for k, coef in enumerate(design.factor_coefs(factor)):
        if coef == "Intercept" and design.has_intercept:
            out.append(coef)
        elif coef != "Intercept" and coef in design.fixed_names and np.array_equal(
                Z[:, k], design.X[:, design.fixed_names.index(coef)]):
            out.append(coef)
    return tuple(out)


def hierarchical_centering(design: Design, parameterization, collapse: bool = False
                           ) -> tuple[str, tuple[str, ...]] | None:
    """The centered factor whose effects are drawn around the fixed effects, and which coefficients are.

    A fixed effect can be the mean of one factor's effects only (not of two crossed
    factors). Of the factors sampled ``"centered"`` that have a varying coefficient which
    is also a fixed effect, the one with the most rows per level (median; the first in
    formula order on ties) takes them: there the data say the most about each level, so
    the fixed effect and the mean of the effects are the most correlated when sampled
    apart. None when no factor qualifies; with ``collapse``, of the factors still sampled
    (:func:`sampled_design`).

    Parameters
    ----------
    design : Design
    parameterization : str or dict of factor -> str
    collapse : bool

    Returns
    -------
    (factor, coefficients) or None

    Examples
    --------
    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"), collapse=False)
    >>> hierarchical_centering(m.design, "centered")
    ('Subject', ('Intercept', 'Days'))
    >>> hierarchical_centering(m.design, "non-centered") is None
    True
    """
    if collapse:  # only the factors the sampler still draws
        design = sampled_design(design)
    best = None
    for factor, fd in design.factors.items():
        chosen = parameterization_of(parameterization, factor)
        if chosen not in CENTERED:
            continue
        coefs = fixed_counterparts(design, factor)
        if chosen == "centered-intercept":
            coefs = tuple(c for c in coefs if c == "Intercept")
        if coefs:
            rows = float(np.median(fd.counts))
            if best is None or rows > best[0]:
                best = (rows, factor, coefs)
    return None if best is None else best[1:]


def centred_slopes(design: Design, centred: tuple[str, ...]) -> list[int]:
    """Positions in ``beta`` of the fixed slopes that are the mean of a factor's effects."""
    return [i for i, j in enumerate(fixed_slopes(design)) if design.fixed_names[j] in centred]


def centring_shift(design: Design, centred: tuple[str, ...], beta, X_mean):
    """``X_mean . beta`` over the centred slopes: the fixed slopes multiply ``X - X_mean``, the
    effects raw ``Z``, so ``(x - m) beta + x u = -m beta + x (beta + u)`` (None when there is none).

    Works on NumPy arrays (starts) and PyTensor tensors (the model) alike.
    """
    taken = centred_slopes(design, centred)
    if not taken or not design.has_intercept:
        return None
    return X_mean[taken] @ beta[taken]


def less_shift(alpha, shift):
    return alpha if shift is None else alpha - shift


def effect_means(design: Design, factor: str, centred: tuple[str, ...], alpha, beta, X_mean) -> list:
    """The mean of each varying coefficient of ``factor`` under hierarchical centering (0.0: not centred).

    The intercept's is ``alpha - X_mean . beta`` over the centred slopes (see
    :func:`centring_shift`), a slope's is its fixed effect. NumPy or PyTensor alike.
    """
    slopes = [design.fixed_names[j] for j in fixed_slopes(design)]
    means = []
    for coef in design.factor_coefs(factor):
        if coef not in centred:
            means.append(0.0)
        elif coef == "Intercept":
            means.append(less_shift(alpha, centring_shift(design, centred, beta, X_mean)))
        else:
            means.append(beta[slopes.index(coef)])
    return means


def helmert_rest(w, J: int):
    """``H w`` for the orthonormal Helmert basis ``H`` (J x J-1) of the contrasts among J levels, in O(J).

    Column ``k`` of ``H`` (k = 1..J-1) is ``(1, ..., 1, -k, 0, ..., 0) / sqrt(k (k + 1))`` with
    ``k`` ones: orthonormal, and orthogonal to the constant. So ``u = ubar + H w`` with
    ``ubar ~ N(0, S / J)`` and the rows of ``w`` iid ``N(0, S)`` are J iid ``N(0, S)`` rows,
    written as their mean and the contrasts around it (an orthogonal map: unit Jacobian).

    Examples
    --------
    >>> import pytensor
    >>> w = pt.matrix("w")
    >>> H = pytensor.function([w], helmert_rest(w, 4))(np.eye(3))
    >>> bool(np.allclose(H.T @ H, np.eye(3)) and np.allclose(H.sum(axis=0), 0))
    True
    """
    k = np.arange(1, J, dtype=float)[:, None]
    c = w / np.sqrt(k * (k + 1.0))
    after = pt.concatenate([pt.cumsum(c[::-1], axis=0)[::-1], pt.zeros((1, w.shape[1]))], axis=0)
    return after - pt.concatenate([pt.zeros((1, w.shape[1])), k * c], axis=0)


def folded_factors(design: Design, parameterization, centering) -> list[str]:
    """Centered factors whose mean varying intercept is folded into the hierarchically centred one.

    With crossed factors, the intercept of one factor's centred effects and the mean of
    another's effects are identified only together (the data fix their sum), a direction
    that spans every level of both factors. Each other centered factor with a varying
    intercept is then drawn as its mean and the contrasts around it
    (:func:`helmert_rest`), and its mean intercept joins the centred factor's mean: the
    slow direction shrinks to two numbers. (Crossed 20k, ``bench/NOTES.md``, table ``results_centering``:
    minimum ESS 216 non-centered, 258 centred into one factor, 2047 with the fold.)
    """
    if not centering or "Intercept" not in centering[1]:
        return []
    around_parent = nested_centering(design, parameterization, centering)
    return [f for f in design.factors if f != centering[0] and "Intercept" in design.factor_coefs(f)
            and parameterization_of(parameterization, f) in ("centered", "centered-intercept")
            and f not in around_parent]  # a partially centered factor's levels are drawn one by one


def sheared(design: Design, parameterization, collapse: bool = False) -> dict[str, tuple[str, ...]]:
    """Each non-centered factor, with the coefficients whose fixed effect is sampled plus the
    mean of the factor's effects (empty: none; with ``collapse``, of the factors still sampled).

    In non-centered coordinates the data fix a fixed effect plus the mean of a factor's
    effects, ``alpha + sd * mean(z)``, and leave the two apart to the priors: a narrow ridge
    through ``alpha`` and all of ``z`` that NUTS crosses in small steps when the levels hold
    many rows (the intercept had the lowest ESS of crossed 20k and poisson 10k). So such a
    factor's standardized effects are drawn as their mean ``z_mean`` and Helmert contrasts
    (:func:`helmert_rest`; the same iid normal effects), and the fixed effect is sampled as
    ``alpha + sd * z_mean``, under the prior of ``alpha`` moved by ``sd * z_mean``
    (a shift: unit Jacobian, the same posterior). The likelihood then sees neither
    ``z_mean`` nor ``alpha`` alone. Coefficients a centered factor takes
    (:func:`hierarchical_centering`) and factors of a single level are left alone.

    Only for factors whose levels hold about as many rows each (10% and 90% quantiles of
    the level sizes within :data:`SHEAR_BALANCE`): the Helmert contrasts mix the levels, so
    data-rich levels of unequal sizes make them correlated, which a diagonal mass matrix
    cannot follow (the InstEval-sized model, levels of 1 to 920 rows, sampled 4x slower:
    ``bench/NOTES.md``).

    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"), collapse=False)
    >>> sheared(m.design, "non-centered")
    {'Subject': ('Intercept', 'Days')}
    >>> sheared(m.design, "centered")
    {}
    """
    if collapse:  # only the factors the sampler still draws
        design = sampled_design(design)
    centering = hierarchical_centering(design, parameterization)
    centred = centering[1] if centering else ()

    def balanced(counts) -> bool:
        low, high = np.quantile(counts, [0.1, 0.9])
        return len(counts) > 1 and high <= SHEAR_BALANCE * low

    return {f: tuple(c for c in fixed_counterparts(design, f) if c not in centred)
            if balanced(design.factors[f].counts) else ()
            for f in design.factors if parameterization_of(parameterization, f) == "non-centered"}


def fixed_shift(design: Design, means: Mapping[str, object], X_mean):
    """What the sampled fixed effects add to ``[alpha, *beta]``: the effects' means (:func:`sheared`).
    NumPy or PyTensor alike.

    The fixed slopes multiply centred columns and the effects raw ones, so a slope's mean
    effect also moves the intercept of the centred columns by ``X_mean`` times it:
    ``alpha + (x - m) beta + x u = (alpha + m u) + (x - m)(beta + u)``.
    """
    slopes = [design.fixed_names[j] for j in fixed_slopes(design)]
    beta_shift = [means.get(c, 0.0) for c in slopes]
    alpha_shift = means.get("Intercept", 0.0)
    if design.has_intercept:
        alpha_shift = alpha_shift + sum(X_mean[j] * means[c] for j, c in enumerate(slopes) if c in means)
    return [alpha_shift, *beta_shift]
