"""Test helpers: data for the parameterizations, and the non-centered point with the same group effects.

Every parameterization of a factor's effects (:mod:`hierbayes.model.parameterizations`) is a change
of coordinates with a known Jacobian (constant, but for the partially centered one's, a power of the
SDs), so a model's log density at a point equals the non-centered model's at the point with the
same effects, SDs, correlations and fixed effects, up to that Jacobian. :func:`non_centered_point` computes that point and the Jacobian; the tests of
``tests/unit/test_parameterizations.py`` and ``tests/statistical/test_centering.py`` use it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import hierbayes as hb
from hierbayes.model import coordinates
from hierbayes.model import data as contract
from hierbayes.model.parameterizations import (
    Centered,
    CenteredIntercept,
    Folded,
    PartiallyCentered,
    ShearedNonCentered,
    factor_parameterizations,
)
from hierbayes.specification import names as N


def crossed(seed: int = 0, items: int = 40, raters: int = 24, n: int = 1200) -> pd.DataFrame:
    """Crossed items and raters: 30 rows per item, 50 per rater."""
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(items), n // items)
    rater = rng.permutation(np.repeat(np.arange(raters), n // raters))
    x = rng.normal(3.0, 1.0, n)  # far from zero: the centring of X matters
    y = 2.0 + 0.5 * x + rng.normal(0, 0.7, items)[item] + rng.normal(0, 0.5, raters)[rater] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": x, "item": [f"i{i:02d}" for i in item], "rater": [f"r{j:02d}" for j in rater]})


def uneven_crossed() -> pd.DataFrame:
    """:func:`crossed` with items of 2 to 58 rows: too uneven for their non-centered effects to be sheared."""
    df = crossed()
    return df.drop(index=[i for i in df.index if df.item[i] < "i20" and i % 30 >= 2])


def grouped_counts(seed: int = 1, groups: int = 30, per: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(1.0, 1.0, g.size)
    eta = 0.3 + 0.4 * x + rng.normal(0, 0.5, groups)[g] + rng.normal(0, 0.2, groups)[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "z": rng.normal(size=g.size),
                         "g": [f"g{j:02d}" for j in g]})


def nested_counts(seed: int = 2, districts: int = 4, schools: int = 3, classes: int = 4, per: int = 10,
                  raters: int = 6) -> pd.DataFrame:
    """Poisson counts of classes in schools in districts (each class in one school, each school in one
    district), with ``rater`` crossed with all of them, and a gaussian ``score`` of the same design."""
    rng = np.random.default_rng(seed)
    n_school, n_class = districts * schools, districts * schools * classes
    klass = np.repeat(np.arange(n_class), per)
    school, district = klass // classes, klass // (classes * schools)
    rater = rng.integers(0, raters, klass.size)
    x = rng.normal(size=klass.size)
    effects = (rng.normal(0, 0.5, districts)[district] + rng.normal(0, 0.4, n_school)[school]
               + rng.normal(0, 0.3, n_class)[klass] + rng.normal(0, 0.3, raters)[rater])
    return pd.DataFrame({"y": rng.poisson(np.exp(0.8 + 0.3 * x + effects)), "score": 1 + x + effects + rng.normal(size=x.size),
                         "x": x, "district": [f"d{i}" for i in district], "school": [f"s{i:02d}" for i in school],
                         "klass": [f"c{i:02d}" for i in klass], "rater": [f"r{i}" for i in rater]})


def helmert(J: int) -> np.ndarray:
    """The J x (J - 1) Helmert basis of :func:`hierbayes.model.coordinates.helmert_rest`."""
    import pytensor
    import pytensor.tensor as pt

    w = pt.matrix("w")
    return pytensor.function([w], coordinates.helmert_rest(w, J))(np.eye(J - 1))


def _scale_factor(design, factor: str, sd: np.ndarray, cor: np.ndarray | None) -> np.ndarray:
    """``L = blockdiag(diag(sd) chol(corr))`` over the factor's blocks (``cor``: ``cor_<factor>``, block after block)."""
    L, used = np.zeros((len(sd), len(sd))), 0
    for _, block, sl in coordinates.factor_blocks(design, factor):
        q = len(block.coef_names)
        corr = np.eye(q)
        if block.block.correlated and q > 1:
            pairs = [(i, j) for j in range(q) for i in range(j)]  # the order of parameters.cor_pairs
            for (i, j), c in zip(pairs, cor[used:used + len(pairs)]):
                corr[i, j] = corr[j, i] = c
            used += len(pairs)
        L[sl, sl] = sd[sl][:, None] * np.linalg.cholesky(corr)
    return L


def _centered_columns(model: hb.Model, factor: str, chosen) -> tuple[np.ndarray, int]:
    """How centered each of the factor's columns is drawn, summed over the levels (J for a centered
    column, the levels' weights for a partially centered one, 0 non-centered), and how many of its
    columns are folded into their level mean."""
    design = model.design
    base = getattr(chosen, "inner", chosen)
    coefs = design.factor_coefs(factor)
    J = len(design.factors[factor].levels)
    columns = np.zeros(len(coefs))
    if isinstance(base, Centered):
        columns[:] = J
    elif isinstance(base, CenteredIntercept):
        columns[coefs.index("Intercept")] = J
    elif isinstance(base, PartiallyCentered):
        data = contract.model_data(design, model.family, model.priors, model.collapsed, model.parameterization)
        columns = data[N.FactorNames(factor).centering_weights].sum(axis=0)
    folded = 0
    if isinstance(chosen, Folded):
        block = next(b for _, b, _ in coordinates.factor_blocks(design, factor) if "Intercept" in b.coef_names)
        folded = len(block.coef_names) if isinstance(base, Centered) else 1
    return columns, folded


def non_centered_point(model: hb.Model, plain: hb.Model, point: dict) -> tuple[dict, float]:
    """The point of ``plain`` (the same model, non-centered) with the group effects, SDs, correlations and
    fixed effects of ``model`` at ``point``, and ``log |d point / d that point|``.

    ``z = r L^-T`` with ``L = blockdiag(diag(sd) chol(corr))``: a factor drawn centered adds
    ``J log L[c, c]`` for each column ``c`` it draws centered (``"centered-intercept"``: the
    intercept's only), one drawn partially centered ``sum_j w_jc log L[c, c]`` (its levels' weights); one whose intercepts' block is folded into its level mean and Helmert
    contrasts (``u -> (ubar, w)``) the constant ``-q/2 log J``; and a factor sheared in ``plain`` and
    not in ``model`` (``z -> (z_mean, w)``, its fixed effects sampled plus the effects' mean, a shift)
    ``Q/2 log J`` (the other way round, ``-Q/2 log J``).
    """
    pm_c, design = model.pymc_model, model.design
    factors = list(design.factors)
    names = [N.FactorNames(f) for f in factors]
    recorded = [n.effects for n in names] + [n.sd for n in names] + [n.cor for n in names if n.cor in pm_c.named_vars]
    values = dict(zip(recorded, pm_c.compile_fn(pm_c.replace_rvs_by_values([pm_c[v] for v in recorded]),
                                                inputs=pm_c.value_vars, on_unused_input="ignore")(point)))
    coordinates_of = {name for n, f in zip(names, factors) for name in n.names(
        (k, len(b.coef_names)) for k, b in enumerate(design.blocks) if b.factor == f)} - set(recorded)
    out = {name: value for name, value in point.items() if name not in coordinates_of}
    chosen, reference = (factor_parameterizations(m.design, m.parameterization) for m in (model, plain))
    log_jacobian, effect_means = 0.0, {}
    for factor, n in zip(factors, names):
        r = values[n.effects]
        J, q = r.shape
        L = _scale_factor(design, factor, values[n.sd], values.get(n.cor))
        columns, folded = _centered_columns(model, factor, chosen[factor])
        log_jacobian += (columns * np.log(np.diag(L))).sum() - 0.5 * folded * np.log(J)
        z = np.linalg.solve(L, r.T).T
        if isinstance(reference[factor], ShearedNonCentered):
            # z = z_mean + H w, H orthonormal and orthogonal to the constant: w = H'z, |dz/d(z_mean, w)| = J^(q/2)
            out[n.z_mean], out[n.z_contrasts] = z.mean(axis=0), helmert(J).T @ z
        else:
            out[n.z] = z
        for side, sign in ((reference[factor], 1), (chosen[factor], -1)):
            if isinstance(side, ShearedNonCentered):
                log_jacobian += sign * 0.5 * q * np.log(J)
                for c in side.coefs:
                    i = design.factor_coefs(factor).index(c)
                    effect_means[c] = effect_means.get(c, 0.0) + sign * r[:, i].mean()
    # the fixed effects are sampled plus the effects' means (a shift of unit Jacobian)
    X_mean = contract.model_data(plain.design, plain.family, plain.priors).get(N.X_MEAN_DATA)
    shift = coordinates.fixed_shift(plain.design, effect_means, X_mean)
    if N.INTERCEPT_CENTERED in out:
        out[N.INTERCEPT_CENTERED] = out[N.INTERCEPT_CENTERED] + shift[0]
    if N.SLOPES in out:
        out[N.SLOPES] = out[N.SLOPES] + np.array(shift[1:])
    assert set(out) == {v.name for v in plain.pymc_model.value_vars}
    return out, log_jacobian


def assert_same_log_density(model: hb.Model, plain: hb.Model, seed: int = 4, points: int = 3) -> None:
    """``model``'s log density equals ``plain``'s (non-centered) at the same effects, less the Jacobian,
    at ``points`` points around ``model``'s initial point."""
    logp, logp_plain = model.pymc_model.compile_logp(), plain.pymc_model.compile_logp()
    rng = np.random.default_rng(seed)
    start = model.pymc_model.initial_point()
    for _ in range(points):
        point = {name: value + rng.normal(0, 0.3, np.shape(value)) for name, value in start.items()}
        other, log_jacobian = non_centered_point(model, plain, point)
        np.testing.assert_allclose(float(logp(point)), float(logp_plain(other)) - log_jacobian, rtol=1e-10)
        assert np.abs(float(logp(point)) - float(logp_plain(other))) > 1  # the Jacobian is there: not a vacuous check


def assert_fits_agree(centered: hb.Fit, plain: hb.Fit, var: str, limit: float = 5.0) -> None:
    """Posterior means of ``var`` within ``limit`` Monte Carlo standard errors, element by element."""
    from arviz_stats.base import array_stats

    def mean_and_se2(fit):
        draws = fit.posterior[var].transpose("chain", "draw", ...).values
        ess = array_stats.ess(np.moveaxis(draws, (0, 1), (-2, -1)), method="bulk")
        return draws.mean((0, 1)), draws.var((0, 1)) / ess

    (m1, v1), (m2, v2) = mean_and_se2(centered), mean_and_se2(plain)
    z = np.abs(m1 - m2) / np.sqrt(v1 + v2)
    assert float(z.max()) < limit, f"{var}: centered and non-centered means {float(z.max()):.1f} MC SEs apart"
