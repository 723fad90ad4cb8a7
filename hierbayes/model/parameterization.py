"""``parameterization="auto"``: centered or non-centered per grouping factor, from the data.

Non-centered group effects mix well when a level's data say little next to the
population spread, centered ones when they say a lot (Papaspiliopoulos, Roberts and
Skold 2007). For level ``j`` with ``n_j`` observations the ratio is

    kappa_j = n_j * tau^2 / s^2

with ``tau^2`` the between-level and ``s^2`` the within-level variance, estimated
before sampling by a one-way ANOVA (method of moments, the ANOVA estimate behind the
intra-class correlation) of the response after an ordinary least-squares fit of the
fixed effects. On the response scale this ratio is the same as on the link scale with
the family's working variance (poisson: ``1/mu``; bernoulli: ``1/(p(1-p))``), since
both variances move by the same factor ``(d mu / d eta)^2``. Binomial responses enter
as proportions, with trials as level sizes and each row's spread among its own trials in
the within-level variance (as if each trial were a row of 0 or 1); the zero-inflated and
beta-binomial responses, whose trials in a row are not independent, one row as one observation.

A varying slope's ``kappa_j`` uses the level's spread of its column in place of ``n_j``
(:func:`slope_kappas`). A factor is centered when, for every varying coefficient, nine
levels in ten have ``kappa_j`` above :data:`CENTERED_ABOVE` (the 10% quantile over its
levels, ``kappa_q10``); when only its intercept is (levels with many rows but little spread
in a slope's column, or slopes that barely vary), ``"partially-centered"``: each level's effects
drawn part-way between centered and non-centered, by weights ``kappa_j / (1 + kappa_j)`` per
coefficient (:func:`centering_weights`), so the intercepts nearly centered and a slope as far as
its level's data say. (It was ``"centered-intercept"``, the intercepts centered and the slopes
non-centered, until the bernoulli benchmark's slopes, ``kappa`` about 1, mixed 1.5 times faster
per gradient partially centered: ``bench/NOTES.md``.) Factors without a varying intercept stay
non-centered. This is the default of :class:`hierbayes.Model`.

The threshold is above the crossover of 1 that the Gibbs-sampler theory gives, on purpose:
centering ill-informed levels makes a funnel (divergences, a biased posterior), while
leaving informed levels non-centered only mixes more slowly. On the benchmark
(``bench/NOTES.md``) centering lost where ``kappa_q10`` was 1.8 (the InstEval-sized
lecturers: min ESS 431 against 509) and won from 3.7 up (the bernoulli intercepts, the
crossed and poisson factors at 6 to 22); :data:`CENTERED_ABOVE` sits between them. The
median was the first rule; it centered the students of the InstEval-sized benchmark
(median 1.39, but a quarter of the students below 1), which then mixed at half the speed
of non-centered.

Examples
--------
>>> import hierbayes as hb
>>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"),
...              parameterization="auto", collapse=False)
>>> m.parameterization
{'Subject': 'centered'}
>>> row = m.parameterization_choice.loc["Subject"]
>>> round(float(row["kappa_q10"]), 1), row["limiting"]  # the Days slope is the least informed
(4.4, 'Days')
>>> describe(m)
"Group effects: Subject centered (each level's effects drawn directly), chosen because in 90% of levels the data outweigh the prior 2.5-fold or more (kappa 4.4)"
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["choose_parameterization", "centering_weights", "level_kappas", "slope_kappas", "coefficient_kappas", "one_way_anova",
           "describe", "CENTERED_ABOVE", "CENTERED_ABOVE_BESIDE_INTEGRATED"]

CENTERED_ABOVE = 2.5
KAPPA_QUANTILE = 0.1  # the share of levels allowed below CENTERED_ABOVE in a centered factor
# a factor sampled beside one integrated out (crossed, collapsed): the other factor's effects no longer
# cross its ridge, and centered mixed far better from the Gibbs crossover up (InstEval, bench/NOTES.md)
CENTERED_ABOVE_BESIDE_INTEGRATED = 1.0


def one_way_anova(values: np.ndarray, index: np.ndarray, J: int, weights: np.ndarray | None = None,
                  within: np.ndarray | None = None) -> tuple[float, float]:
    """Method-of-moments between- and within-level variances ``(tau^2, s^2)`` of ``values``.

    ``tau^2 = max(0, (MSB - MSW) / n0)`` with ``n0 = (N - sum n_j^2 / N) / (J - 1)``, the
    ANOVA estimator for unbalanced levels; ``weights`` count each value as that many
    observations (binomial trials), and ``within`` adds each value's own sum of squares
    among those observations (a row of ``n`` trials with a share ``p`` of successes:
    ``n p (1 - p)``, :func:`_row_sums_of_squares`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(200), 50)
    >>> y = rng.normal(0, 2.0, 200)[g] + rng.normal(0, 1.0, g.size)
    >>> tau2, s2 = one_way_anova(y, g, 200)
    >>> round(tau2, 1), round(s2, 2)
    (3.8, 0.99)
    """
    w = np.ones_like(values, dtype=float) if weights is None else np.asarray(weights, dtype=float)
    n_j = np.bincount(index, weights=w, minlength=J)
    N = n_j.sum()
    mean_j = np.bincount(index, weights=w * values, minlength=J) / np.maximum(n_j, 1e-300)
    grand = (w * values).sum() / N
    msb = (n_j * (mean_j - grand) ** 2).sum() / max(J - 1, 1)
    own = 0.0 if within is None else float(np.sum(within))
    msw = ((w * (values - mean_j[index]) ** 2).sum() + own) / max(N - J, 1)
    n0 = (N - (n_j**2).sum() / N) / max(J - 1, 1)
    return float(max(0.0, (msb - msw) / n0)), float(msw)


def _response_residuals(design, family) -> tuple[np.ndarray, np.ndarray | None]:
    """The response (proportions for binomial) less its least-squares fit on the fixed effects, and how
    many observations each row counts as: its trials when they are independent (the binomial family),
    else one (a row of a zero-inflated or beta-binomial response: its trials move together)."""
    y = design.y if design.trials is None else design.y / np.maximum(design.trials, 1)
    if design.X.shape[1]:
        coef, *_ = np.linalg.lstsq(design.X, y, rcond=None)
        y = y - design.X @ coef
    return y, _independent_trials(design, family)


def _independent_trials(design, family) -> np.ndarray | None:
    """The trials of a binomial response whose trials are independent given the linear predictor: a family
    with trials and no parameters of its own (the binomial). Zero inflation or the beta-binomial's ``phi``
    makes a row's trials move together; counted as independent, their shared spread would be read as
    between-level variance, and ``"auto"`` centred levels that say little (the zero-inflated binomial's
    calibration diverged in 43 of 72 centred refits)."""
    return design.trials if design.trials is not None and not family.parameters else None


def _row_sums_of_squares(design, family) -> np.ndarray | None:
    """A binomial row's sum of squares among its own trials, ``n p (1 - p)`` for ``p`` its share of successes
    (None for the other families: a row is one observation). Without it, a row of ten trials counted ten
    times at its share has no spread of its own, ``s^2`` comes out about ten times too small, kappa ten
    times too large, and ``"auto"`` centres factors whose data say little (divergences; found by the
    binomial case of the simulation-based calibration)."""
    if _independent_trials(design, family) is None:
        return None
    p = design.y / np.maximum(design.trials, 1)
    return design.trials * p * (1 - p)


def slope_kappas(values: np.ndarray, z: np.ndarray, index: np.ndarray, J: int,
                 weights: np.ndarray | None = None, within: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """``kappa_j = S_zz,j tau^2 / s^2`` for a varying slope on column ``z``, by method of moments.

    Each level's least-squares slope of ``values`` on ``z`` (both centred within the level)
    has sampling variance ``s^2 / S_zz,j``; ``tau^2`` is their between-level variance by the
    unbalanced ANOVA estimator of :func:`one_way_anova` with ``S_zz,j`` in place of ``n_j``
    (at least 0), ``s^2`` the pooled residual variance (with ``within`` as in :func:`one_way_anova`). ``S_zz,j`` plays the part of ``n_j`` for an intercept. Levels with fewer than
    three rows or a constant ``z`` say nothing about their slope (kappa 0).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = np.repeat(np.arange(100), 30); x = rng.normal(size=g.size)
    >>> y = rng.normal(0, 0.5, 100)[g] * x + rng.normal(0, 1.0, g.size)
    >>> kappa, tau2, s2 = slope_kappas(y, x, g, 100)
    >>> round(tau2, 2), round(s2, 1), round(float(np.median(kappa)), 0)
    (0.28, 1.0, 8.0)
    """
    w = np.ones_like(values, dtype=float) if weights is None else np.asarray(weights, dtype=float)
    n_j = np.bincount(index, weights=w, minlength=J)
    safe = np.maximum(n_j, 1e-300)
    zc = z - (np.bincount(index, weights=w * z, minlength=J) / safe)[index]
    vc = values - (np.bincount(index, weights=w * values, minlength=J) / safe)[index]
    Szz = np.bincount(index, weights=w * zc * zc, minlength=J)
    counts = np.bincount(index, minlength=J)
    ok = (counts >= 3) & (Szz > 1e-12 * max(Szz.max(), 1e-300))
    if ok.sum() < 2:
        return np.zeros(J), 0.0, float("nan")
    slope = np.where(ok, np.bincount(index, weights=w * zc * vc, minlength=J) / np.where(ok, Szz, 1.0), 0.0)
    resid = vc - slope[index] * zc
    used = ok[index]
    own = 0.0 if within is None else float(np.asarray(within)[used].sum())
    s2 = float(((w * resid**2)[used].sum() + own) / max(w[used].sum() - 2 * ok.sum(), 1))
    wj = Szz[ok]  # the slopes' precisions / s^2: the ANOVA estimator with S_zz,j in place of n_j
    mean = (wj * slope[ok]).sum() / wj.sum()
    between = (wj * (slope[ok] - mean) ** 2).sum()
    tau2 = max(0.0, float((between - (ok.sum() - 1) * s2) / (wj.sum() - (wj**2).sum() / wj.sum())))
    return np.where(ok, Szz, 0.0) * tau2 / max(s2, 1e-300), tau2, s2


def _intercept_kappas(values: np.ndarray, index: np.ndarray, J: int, weights: np.ndarray | None,
                      within: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    tau2, s2 = one_way_anova(values, index, J, weights, within)
    n_j = np.bincount(index, weights=weights, minlength=J)
    return n_j * tau2 / max(s2, 1e-300), tau2, s2


def level_kappas(design, family, factor: str) -> tuple[np.ndarray, float, float]:
    """``kappa_j = n_j tau^2 / s^2`` for every level of ``factor``, with ``tau^2`` and ``s^2``."""
    fd = design.factors[factor]
    values, weights = _response_residuals(design, family)
    return _intercept_kappas(values, fd.index, len(fd.levels), weights, _row_sums_of_squares(design, family))


def coefficient_kappas(design, family, factor: str) -> dict[str, tuple[np.ndarray, float, float]]:
    """Per varying coefficient of ``factor``: every level's kappa, ``tau^2`` and ``s^2``
    (:func:`level_kappas` for the intercept, :func:`slope_kappas` for each slope), from one
    least-squares fit of the fixed effects."""
    from hierbayes.specification.linear_predictor import design_effects

    ((_, index, Z),) = [(f, i, Z) for f, i, Z in design_effects(design) if f == factor]
    values, weights = _response_residuals(design, family)
    within = _row_sums_of_squares(design, family)
    J = len(design.factors[factor].levels)
    return {coef: _intercept_kappas(values, index, J, weights, within) if coef == "Intercept"
            else slope_kappas(values, Z[:, k], index, J, weights, within)
            for k, coef in enumerate(design.factor_coefs(factor))}


def centering_weights(design, family, factor: str) -> np.ndarray:
    """Each level's weight between non-centered (0) and centered (1), per varying coefficient of ``factor``
    (levels x coefficients): ``kappa_j / (1 + kappa_j)`` (:func:`coefficient_kappas`), the share of a
    level's posterior precision that its data give in a gaussian model. Drawn with these weights, a
    level's effects and the group SD are independent there (Papaspiliopoulos, Roberts and Skold 2003):
    :class:`hierbayes.model.parameterizations.PartiallyCentered`.

    Examples
    --------
    >>> import hierbayes as hb
    >>> m = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"), collapse=False)
    >>> centering_weights(m.design, m.family, "Subject").round(2)[:2]
    array([[0.94, 0.82],
           [0.94, 0.82]])
    """
    kappas = coefficient_kappas(design, family, factor)
    return np.column_stack([np.nan_to_num(k / (1.0 + k), nan=0.0) for k, _, _ in kappas.values()])


def choose_parameterization(design, family, centered_above: float = CENTERED_ABOVE
                            ) -> tuple[dict[str, str], pd.DataFrame]:
    """Centered or non-centered for each grouping factor, and the numbers behind the choice.

    A factor's effects are drawn as one block, so it is centered only when the levels' data
    say a lot about every varying coefficient: the smallest 10% quantile of kappa over its
    coefficients (``kappa_q10``, on ``limiting``) must be above ``centered_above``
    (:data:`CENTERED_ABOVE`; :data:`CENTERED_ABOVE_BESIDE_INTEGRATED` for the factors a crossed
    design samples beside the one it integrates out).

    Only the intercept well informed: ``"partially-centered"``, each level's effects drawn part-way
    between centered and non-centered by its own kappas (:func:`centering_weights`; the intercepts
    nearly centered, a slope as far as its level's data say). ``"centered-intercept"`` was the
    choice before: the intercepts centered, the slopes non-centered (``bench/NOTES.md``).

    Returns
    -------
    choice : dict of factor -> "centered", "partially-centered" or "non-centered"
    table : DataFrame
        Index ``factor``; columns ``levels``, ``median_n``, ``tau2``, ``s2`` (the
        intercept's), ``kappa_q10`` (the least informed coefficient's), ``limiting`` (that
        coefficient), ``intercept_kappa_q10``, ``parameterization``; ``attrs["centered_above"]``: the threshold.
    """
    from hierbayes.model.coordinates import centres_intercept_only

    choice, rows = {}, []
    for factor, fd in design.factors.items():
        row = {"factor": factor, "levels": len(fd.levels), "median_n": float(np.median(fd.counts)),
               "tau2": np.nan, "s2": np.nan, "kappa_q10": np.nan, "limiting": None, "intercept_kappa_q10": np.nan}
        if "Intercept" in design.factor_coefs(factor):
            kappas = coefficient_kappas(design, family, factor)
            _, row["tau2"], row["s2"] = kappas["Intercept"]
            lows = {coef: float(np.quantile(k, KAPPA_QUANTILE)) for coef, (k, _, _) in kappas.items()}
            row["limiting"] = min(lows, key=lows.get)
            row["kappa_q10"] = lows[row["limiting"]]
            row["intercept_kappa_q10"] = lows["Intercept"]
        if row["kappa_q10"] > centered_above:
            choice[factor] = "centered"
        elif row["intercept_kappa_q10"] > centered_above and centres_intercept_only(design, factor) is None:
            choice[factor] = "partially-centered"
        else:
            choice[factor] = "non-centered"
        rows.append({**row, "parameterization": choice[factor]})
    columns = ["factor", "levels", "median_n", "tau2", "s2", "kappa_q10", "limiting", "intercept_kappa_q10",
               "parameterization"]
    table = pd.DataFrame(rows, columns=columns).set_index("factor")  # no rows: no grouping factor
    table.attrs["centered_above"] = centered_above
    return choice, table


_IN_WORDS = {
    "non-centered": "non-centered (each level's effects drawn as multiples of the group SDs)",
    "centered": "centered (each level's effects drawn directly)",
    "centered-intercept": "intercepts centered, slopes non-centered",
    "partially-centered": "partially centered (each level's effects drawn part-way between centered and "
                          "non-centered, as far as its data say)",
}


def describe(model) -> str | None:
    """One line for a fit's header, in words: how each grouping factor's effects were sampled and,
    when ``"auto"`` chose, why (None: no factor). ``kappa`` is explained in ``docs/speed.md``.

    >>> import hierbayes as hb
    >>> describe(hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")))
    'Group effects: Subject integrated out and drawn exactly afterwards (collapsed)'
    """
    if not model.design.factors:
        return None
    from hierbayes.model.coordinates import hierarchical_centering, nested_centering, sampled_design, sheared

    shear = sheared(model.design, model.parameterization, model.collapsed)
    sampled_only = sampled_design(model.design) if model.collapsed else model.design
    around = nested_centering(sampled_only, model.parameterization,
                              hierarchical_centering(model.design, model.parameterization, model.collapsed))
    sampled = list(sampled_design(model.design).factors) if model.collapsed else []
    parts = []
    for factor in model.design.factors:
        if model.collapsed and factor not in sampled:
            given = f" given the sampled effects of {', '.join(sampled)}" if sampled else ""
            parts.append(f"{factor} integrated out and drawn exactly afterwards{given} (collapsed)")
            continue
        p = model.parameterization
        chosen = p.get(factor, "non-centered") if isinstance(p, dict) else p
        text = _IN_WORDS[chosen]
        table = model.parameterization_choice
        above = table.attrs.get("centered_above", CENTERED_ABOVE) if table is not None else CENTERED_ABOVE
        if factor in getattr(model, "refitted_from", {}):
            text += f", after its chains stuck apart {model.refitted_from[factor]}"
        elif table is not None and np.isfinite(table.loc[factor, "kappa_q10"]):
            low = table.loc[factor, "kappa_q10"]
            share = f"{1 - KAPPA_QUANTILE:.0%}"
            if chosen in ("centered-intercept", "partially-centered"):
                text += (f", chosen because in {share} of levels the data outweigh the prior "
                         f"{above:g}-fold or more for the intercept (kappa "
                         f"{table.loc[factor, 'intercept_kappa_q10']:.2g}) but not for {table.loc[factor, 'limiting']} "
                         f"(kappa {low:.2g})")
            elif chosen == "centered":
                text += (f", chosen because in {share} of levels the data outweigh the prior "
                         f"{above:g}-fold or more (kappa {low:.2g})")
            else:
                text += (f", chosen because in more than {KAPPA_QUANTILE:.0%} of levels the data "
                         f"outweigh the prior less than {above:g}-fold (kappa {low:.2g})")
        if shear.get(factor):
            text += f"; the effects' mean is sampled with the fixed {', '.join(shear[factor])}"
        if factor in around:
            text += f"; its intercepts drawn around those of {around[factor]}, in which it is nested"
        parts.append(f"{factor} {text}")
    return "Group effects: " + "; ".join(parts)
