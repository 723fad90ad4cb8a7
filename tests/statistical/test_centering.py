"""Hierarchical centering of the centered parameterization (hierbayes.model.data).

One centered factor draws its effects around the fixed effects (``v_j ~ N(mu, L L')``)
instead of around zero; the posterior keeps ``r_j = v_j - mu``. This is a shift of unit
Jacobian, so the model is the same: the log density equals the non-centered one at the
corresponding point up to the non-centered construction's own Jacobian, the starts are
PyMC's, and centered and non-centered fits of one data set agree within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.model import coordinates
from hierbayes.model import data as contract
from hierbayes.specification.parameters import safe_name

FIT = dict(draws=500, tune=500, chains=2, seed=3, progressbar=False, warn=False)


def crossed(seed: int = 0, items: int = 40, raters: int = 24, n: int = 1200) -> pd.DataFrame:
    """Crossed items and raters: 30 rows per item, 50 per rater."""
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(items), n // items)
    rater = rng.permutation(np.repeat(np.arange(raters), n // raters))
    x = rng.normal(3.0, 1.0, n)  # far from zero: the centring of X matters
    y = 2.0 + 0.5 * x + rng.normal(0, 0.7, items)[item] + rng.normal(0, 0.5, raters)[rater] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": x, "item": [f"i{i:02d}" for i in item], "rater": [f"r{j:02d}" for j in rater]})


def grouped_counts(seed: int = 1, groups: int = 30, per: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per)
    x = rng.normal(1.0, 1.0, g.size)
    eta = 0.3 + 0.4 * x + rng.normal(0, 0.5, groups)[g] + rng.normal(0, 0.2, groups)[g] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "g": [f"g{j:02d}" for j in g]})


def test_helmert_contrasts_are_orthonormal_and_sum_to_zero():
    import pytensor
    import pytensor.tensor as pt

    w = pt.matrix("w")
    H = pytensor.function([w], coordinates.helmert_rest(w, 6))(np.eye(5))
    np.testing.assert_allclose(H.T @ H, np.eye(5), atol=1e-12)
    np.testing.assert_allclose(H.sum(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(H[:, 0], [2**-0.5, -(2**-0.5), 0, 0, 0, 0])


def test_the_centered_factor_with_most_rows_per_level_takes_the_fixed_effects():
    df = crossed()
    m = hb.Model("y ~ x + (1 | item) + (1 | rater)", df, parameterization="centered")
    assert coordinates.hierarchical_centering(m.design, "centered") == ("rater", ("Intercept",))
    assert coordinates.hierarchical_centering(m.design, {"item": "centered"}) == ("item", ("Intercept",))
    assert coordinates.hierarchical_centering(m.design, "non-centered") is None
    assert coordinates.hierarchical_centering(m.design, "centered", collapse=True) is None
    # slopes join when they are fixed effects too; a slope without one, or no fixed intercept, does not
    slopes = hb.Model("y ~ x + (1 + x | item)", df).design
    assert coordinates.hierarchical_centering(slopes, "centered") == ("item", ("Intercept", "x"))
    only_slope = hb.Model("y ~ 1 + (1 + x | item)", df).design
    assert coordinates.hierarchical_centering(only_slope, "centered") == ("item", ("Intercept",))
    no_intercept = hb.Model("y ~ 0 + x + (1 + x | item)", df).design
    assert coordinates.hierarchical_centering(no_intercept, "centered") == ("item", ("x",))
    # which factor takes them is part of the compiled structure
    assert m.structure[-2] == ("rater", ("Intercept",))
    keys = {contract.structure_key(m.design, m.family, m.priors, p) for p in ({"item": "centered", "rater": "centered"},
                                                                           {"item": "centered"})}
    assert len(keys) == 2


def _non_centered_point(centered: hb.Model, plain: hb.Model, point: dict) -> tuple[dict, float]:
    """The non-centered model's point for a centered one (``z = r L^-T``, ``L = diag(sd) chol(corr)``;
    ``r / sd`` without correlations) and ``log |dv/dz|``.

    A factor whose mean intercept is folded into the centred one is drawn as its level mean
    and Helmert contrasts: ``u -> (ubar, w)`` adds the constant ``q/2 log J``. A
    ``"centered-intercept"`` factor draws only its first column so (``u`` holds the
    intercepts, ``z_slopes`` are the non-centered ``z`` of the rest): ``q`` is 1 there, and 0
    for a factor ``centered`` leaves non-centered. (Factors of one block, correlated or not.)
    """
    pm_c = centered.pymc_model
    factors = list(centered.design.factors)
    cors = [f"cor_{safe_name(f)}" for f in factors if f"cor_{safe_name(f)}" in pm_c.named_vars]
    values = pm_c.compile_fn(pm_c.replace_rvs_by_values([pm_c[f"r_{safe_name(f)}"] for f in factors]
                                                        + [pm_c[f"sd_{safe_name(f)}"] for f in factors]
                                                        + [pm_c[name] for name in cors]),
                             inputs=pm_c.value_vars, on_unused_input="ignore")(point)
    k = len(factors)
    cor_values = dict(zip(cors, values[2 * k:]))
    out = {name: value for name, value in point.items() if not name.startswith(("u_", "ubar_", "z_"))}
    log_jacobian = 0.0
    sheared = coordinates.sheared(plain.design, "non-centered")
    effect_means = {}
    for factor, r, sd in zip(factors, values[:k], values[k:2 * k]):
        s, (J, q) = safe_name(factor), r.shape
        corr = np.eye(q)
        if f"cor_{s}" in cor_values:  # in the order of parameters.cor_pairs
            pairs = [(i, j) for j in range(q) for i in range(j)]
            for (i, j), c in zip(pairs, cor_values[f"cor_{s}"]):
                corr[i, j] = corr[j, i] = c
        L = sd[:, None] * np.linalg.cholesky(corr)
        chosen = coordinates.parameterization_of(centered.parameterization, factor)
        drawn_centered = {"centered": q, "centered-intercept": 1, "non-centered": 0}[chosen]
        columns = [plain.design.factor_coefs(factor).index("Intercept")] if chosen == "centered-intercept" else (
            slice(0, drawn_centered))
        log_jacobian += J * np.log(np.diag(L))[columns].sum()
        if f"ubar_{s}_0" in point:
            log_jacobian -= 0.5 * drawn_centered * np.log(J)
        z = np.linalg.solve(L, r.T).T
        if not sheared[factor]:
            out[f"z_{s}"] = z
            continue
        # z = z_mean + H w with H orthonormal, orthogonal to the constant: w = H'z, |dz/d(z_mean, w)| = J^(q/2)
        H = _helmert(J)
        out[f"z_mean_{s}"], out[f"z_contrasts_{s}"] = z.mean(axis=0), H.T @ z
        log_jacobian += 0.5 * q * np.log(J)
        for c in sheared[factor]:
            i = plain.design.factor_coefs(factor).index(c)
            effect_means[c] = effect_means.get(c, 0.0) + r[:, i].mean()
    # the fixed effects are sampled plus the effects' means (a shift of unit Jacobian)
    X_mean = contract.model_data(plain.design, plain.family, plain.priors).get("X_mean")
    shift = coordinates.fixed_shift(plain.design, effect_means, X_mean)
    if "Intercept_centered" in out:
        out["Intercept_centered"] = out["Intercept_centered"] + shift[0]
    if "beta" in out:
        out["beta"] = out["beta"] + np.array(shift[1:])
    assert set(out) == {v.name for v in plain.pymc_model.value_vars}
    return out, log_jacobian


def _helmert(J: int) -> np.ndarray:
    import pytensor
    import pytensor.tensor as pt

    w = pt.matrix("w")
    return pytensor.function([w], coordinates.helmert_rest(w, J))(np.eye(J - 1))


def test_non_centered_factors_of_even_level_sizes_sample_the_fixed_effects_with_their_means():
    df = crossed()  # 30 rows per item, 50 per rater
    m = hb.Model("y ~ x + (1 + x | item) + (1 | rater)", df, collapse=False, parameterization="non-centered")
    assert coordinates.sheared(m.design, "non-centered") == {"item": ("Intercept", "x"), "rater": ("Intercept",)}
    assert {"z_mean_item", "z_contrasts_item", "z_mean_rater"} <= {v.name for v in m.pymc_model.free_RVs}
    # items of 2 to 58 rows: their Helmert contrasts would be correlated, so they stay plain
    uneven = df.drop(index=[i for i in df.index if df.item[i] < "i20" and i % 30 >= 2])
    u = hb.Model("y ~ x + (1 + x | item) + (1 | rater)", uneven, collapse=False, parameterization="non-centered")
    assert coordinates.sheared(u.design, "non-centered") == {"item": (), "rater": ("Intercept",)}
    assert "z_item" in u.pymc_model.named_vars and "z_mean_item" not in u.pymc_model.named_vars
    assert u.structure[-1] == (("item", ()), ("rater", ("Intercept",)))  # the compiled model's key holds the choice
    from hierbayes.model.parameterization import describe

    assert describe(m) == ("Group effects: item non-centered, the effects' mean sampled with the fixed Intercept, x; "
                           "rater non-centered, the effects' mean sampled with the fixed Intercept")
    assert describe(u).startswith("Group effects: item non-centered; rater non-centered, the effects' mean")
    assert coordinates.sheared(m.design, {"item": "centered"}) == {"rater": ()}


C, CI = "centered", "centered-intercept"


@pytest.mark.parametrize("formula, data, family, parameterization", [
    ("y ~ x + (1 | item) + (1 | rater)", crossed, "gaussian", C),
    ("y ~ x + (1 + x || item) + (1 | rater)", crossed, "gaussian", C),
    ("y ~ x + (1 + x || g)", grouped_counts, "poisson", C),
    ("y ~ 0 + x + (1 + x | item)", crossed, "gaussian", C),  # a shared slope without a fixed intercept
    ("y ~ 1 + (1 + x | g)", grouped_counts, "poisson", C),   # a varying slope without a fixed one
    ("y ~ x + (1 + x | g)", grouped_counts, "poisson", C),   # correlated, both shared
    # the intercepts centered, the slopes non-centered given them
    ("y ~ x + (1 + x | g)", grouped_counts, "poisson", CI),
    ("y ~ x + (1 + x || g)", grouped_counts, "poisson", CI),
    ("y ~ x + (0 + x | g) + (1 | g)", grouped_counts, "poisson", CI),  # the intercept's term second
    ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {"item": CI}),
    ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {"item": CI, "rater": C}),  # item's mean folded
])
def test_log_density_is_the_non_centered_one_at_the_same_effects(formula, data, family, parameterization):
    """log p_centered(alpha, beta, v, sd) = log p_noncentered(alpha, beta, z = (v - mu) / sd, sd) - J sum log sd."""
    df = data()
    centered = hb.Model(formula, df, family, parameterization=parameterization, collapse=False)
    plain = hb.Model(formula, df, family, parameterization="non-centered", collapse=False)
    logp_c, logp_nc = centered.pymc_model.compile_logp(), plain.pymc_model.compile_logp()
    rng = np.random.default_rng(4)
    start = centered.pymc_model.initial_point()
    for _ in range(3):
        point = {name: value + rng.normal(0, 0.3, np.shape(value)) for name, value in start.items()}
        other, log_jacobian = _non_centered_point(centered, plain, point)
        np.testing.assert_allclose(float(logp_c(point)), float(logp_nc(other)) - log_jacobian, rtol=1e-10)
        assert np.abs(float(logp_c(point)) - float(logp_nc(other))) > 1  # the Jacobian is there: not a vacuous check


@pytest.mark.parametrize("formula, data, family, priors, parameterization", [
    ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {}, C),
    ("y ~ x + (1 + x || g)", grouped_counts, "poisson", {"x": hb.StudentT(4, 0.3, 1), "Intercept": hb.Normal(1, 2)}, C),
    ("y ~ 0 + x + (1 + x | item)", crossed, "gaussian", {"x": hb.Normal(1.5, 2)}, C),
    ("y ~ x + (1 + x | g)", grouped_counts, "poisson", {"Intercept": hb.Normal(1, 2)}, CI),
    ("y ~ x + (1 + x || g)", grouped_counts, "poisson", {"Intercept": hb.Normal(1, 2)}, CI),
])
def test_starts_are_pymcs_initial_point_with_effects_at_the_fixed_effects(formula, data, family, priors,
                                                                           parameterization):
    from pymc.initial_point import make_initial_point_fn

    m = hb.Model(formula, data(), family, priors=priors, parameterization=parameterization, collapse=False)
    values = contract.model_data(m.design, m.family, m.priors, m.collapsed)
    ours = contract.initial_values(m.design, m.family, m.priors, values, m.parameterization, m.collapsed)
    theirs = make_initial_point_fn(model=m.fitting_model, return_transformed=True)(0)
    assert set(ours) <= set(theirs)
    assert any(name.startswith("u_") and np.any(value != 0) for name, value in ours.items())
    for name, value in theirs.items():
        np.testing.assert_allclose(ours.get(name, np.zeros_like(value)), value, rtol=1e-12, atol=0, err_msg=name)


def _agree(centered: hb.Fit, plain: hb.Fit, var: str, limit: float = 5.0) -> None:
    """Posterior means of ``var`` within ``limit`` Monte Carlo standard errors, element by element."""
    from arviz_stats.base import array_stats

    def mean_and_se2(fit):
        draws = fit.posterior[var].transpose("chain", "draw", ...).values
        ess = array_stats.ess(np.moveaxis(draws, (0, 1), (-2, -1)), method="bulk")
        return draws.mean((0, 1)), draws.var((0, 1)) / ess

    (m1, v1), (m2, v2) = mean_and_se2(centered), mean_and_se2(plain)
    z = np.abs(m1 - m2) / np.sqrt(v1 + v2)
    assert float(z.max()) < limit, f"{var}: centered and non-centered means {float(z.max()):.1f} MC SEs apart"


@pytest.fixture(scope="module")
def crossed_fits():
    df = crossed()
    return {p: hb.Model("y ~ x + (1 | item) + (1 | rater)", df, parameterization=p, collapse=False).fit(**FIT)
            for p in ("centered", "non-centered")}


@pytest.fixture(scope="module")
def poisson_fits():
    df = grouped_counts()
    return {p: hb.Model("y ~ x + (1 + x | g)", df, "poisson", parameterization=p).fit(**FIT)
            for p in ("centered", "non-centered", "centered-intercept")}


def test_crossed_gaussian_centered_and_non_centered_fits_agree(crossed_fits):
    c, nc = crossed_fits["centered"], crossed_fits["non-centered"]
    assert "u_rater_1" in c.posterior and "z_mean_rater" in nc.posterior  # rater (50 rows per level) took the intercept
    assert c.posterior["u_item_0"].shape[-2:] == (39, 1) and "ubar_item_0" in c.posterior  # item's mean folded in
    for var in ("b", "sd_item", "sd_rater", "sigma", "r_item", "r_rater"):
        _agree(c, nc, var)
    assert int(c.idata["sample_stats"]["diverging"].sum()) == 0


def test_poisson_correlated_slopes_centered_and_non_centered_fits_agree(poisson_fits):
    c, nc = poisson_fits["centered"], poisson_fits["non-centered"]
    assert "u_g_0" in c.posterior
    for var in ("b", "sd_g", "cor_g", "r_g"):
        _agree(c, nc, var)


def test_poisson_with_only_the_intercepts_centered_agrees_with_non_centered(poisson_fits):
    ci, nc = poisson_fits["centered-intercept"], poisson_fits["non-centered"]
    assert ci.posterior["u_g_0"].shape[-1] == 1 and ci.posterior["z_slopes_g"].shape[-1] == 1
    for var in ("b", "sd_g", "cor_g", "r_g"):
        _agree(ci, nc, var)
    assert "Group effects: g centered-intercept" in repr(ci)


def test_centered_intercept_needs_a_leading_varying_intercept_and_a_slope():
    df = grouped_counts()
    for formula in ("y ~ x + (1 | g)", "y ~ x + (0 + x | g)"):
        with pytest.raises(hb.HierbayesError, match="'g' needs a varying intercept and a varying slope"):
            hb.Model(formula, df, "poisson", parameterization="centered-intercept")
    with pytest.raises(hb.HierbayesError, match="'h' needs a varying intercept and a varying slope"):
        hb.Model("y ~ x + (x | g) + (1 | h)", df.assign(h=df["g"]), "poisson", parameterization="centered-intercept")


def test_recorded_effects_are_deviations_from_the_fixed_effects(crossed_fits, poisson_fits):
    """r_<factor> keeps its dims and levels, and is v - mu draw by draw (so near zero on average over levels)."""
    c = crossed_fits["centered"]
    r = c.posterior["r_rater"]
    assert r.dims == ("chain", "draw", "rater", "rater__coef")
    assert list(r["rater"].values) == [f"r{j:02d}" for j in range(24)] and list(r["rater__coef"].values) == ["Intercept"]
    mean = c.posterior["Intercept_centered"].values + c.posterior["ubar_item_0"].values[..., 0]
    np.testing.assert_allclose(r.values[..., 0], c.posterior["u_rater_1"].values[..., 0] - mean[..., None])
    items = c.posterior["r_item"].values[..., 0]
    np.testing.assert_allclose(items.mean(-1), c.posterior["ubar_item_0"].values[..., 0], atol=1e-12)
    spread = float(c.posterior["sd_rater"].mean()) / np.sqrt(24)  # prior SD of the mean of 24 effects
    assert np.abs(r.mean("rater").values).mean() < 2 * spread
    # the intercept's mean is the intercept of the raw columns: Intercept_centered - X_mean * beta
    p = poisson_fits["centered"].posterior
    x_mean = poisson_fits["centered"].model.design.X[:, 1].mean()
    mu = np.stack([p["Intercept_centered"].values - x_mean * p["beta"].values[..., 0], p["beta"].values[..., 0]], -1)
    np.testing.assert_allclose(p["r_g"].values, p["u_g_0"].values - mu[..., None, :], atol=1e-10)
    # the fixed effects on the original scale are what the fit reports
    np.testing.assert_allclose(p["b"].sel(term="Intercept").values, mu[..., 0])
    # and the linear predictor from b and r is the model's (group_effects, predictions use it)
    eta = poisson_fits["centered"].linear_predictor()
    d = poisson_fits["centered"].model.design
    j = d.factors["g"].index[7]
    manual = (p["b"].values[..., 0] + p["r_g"].values[..., j, 0]
              + (p["b"].values[..., 1] + p["r_g"].values[..., j, 1]) * d.X[7, 1])
    np.testing.assert_allclose(eta[..., 7], manual)
