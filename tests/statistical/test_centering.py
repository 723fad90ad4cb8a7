"""Hierarchical centering of the centered parameterization (hierbayes.model.parameterizations).

One centered factor draws its effects around the fixed effects (``v_j ~ N(mu, L L')``)
instead of around zero; the posterior keeps ``r_j = v_j - mu``. This is a shift of unit
Jacobian, so the model is the same: the log density equals the non-centered one at the
corresponding point up to the non-centered construction's own Jacobian
(``tests/unit/test_parameterizations.py``), the starts are PyMC's, and centered and
non-centered fits of one data set agree within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pytest
from same_effects import assert_fits_agree, crossed, grouped_counts, nested_counts

import hierbayes as hb
from hierbayes.model import coordinates
from hierbayes.model import data as contract
from hierbayes.specification import names as N

FIT = dict(draws=500, tune=500, chains=2, seed=3, progressbar=False, warn=False)


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
    # collapsed, item (the most levels) is integrated out: of the factors still sampled, rater takes them
    assert coordinates.hierarchical_centering(m.design, "centered", collapse=True) == ("rater", ("Intercept",))
    assert coordinates.hierarchical_centering(hb.Model("y ~ x + (1 | item)", df).design, "centered",
                                              collapse=True) is None
    # slopes join when they are fixed effects too; a slope without one, or no fixed intercept, does not
    slopes = hb.Model("y ~ x + (1 + x | item)", df).design
    assert coordinates.hierarchical_centering(slopes, "centered") == ("item", ("Intercept", "x"))
    only_slope = hb.Model("y ~ 1 + (1 + x | item)", df).design
    assert coordinates.hierarchical_centering(only_slope, "centered") == ("item", ("Intercept",))
    no_intercept = hb.Model("y ~ 0 + x + (1 + x | item)", df).design
    assert coordinates.hierarchical_centering(no_intercept, "centered") == ("item", ("x",))
    # which factor takes them is part of the compiled structure
    assert m.structure[-3] == ("rater", ("Intercept",))
    keys = {contract.structure_key(m.design, m.family, m.priors, p) for p in ({"item": "centered", "rater": "centered"},
                                                                           {"item": "centered"})}
    assert len(keys) == 2


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
    assert u.structure[-2] == (("item", ()), ("rater", ("Intercept",)))  # the compiled model's key holds the choice
    from hierbayes.model.parameterization import describe

    nc = "non-centered (each level's effects drawn as multiples of the group SDs)"
    assert describe(m) == (f"Group effects: item {nc}; the effects' mean is sampled with the fixed Intercept, x; "
                           f"rater {nc}; the effects' mean is sampled with the fixed Intercept")
    assert describe(u).startswith(f"Group effects: item {nc}; rater {nc}; the effects' mean")
    assert coordinates.sheared(m.design, {"item": "centered"}) == {"rater": ()}


C, CI = "centered", "centered-intercept"


@pytest.mark.parametrize("formula, data, family, priors, parameterization", [
    ("y ~ x + (1 + x | item) + (1 | rater)", crossed, "gaussian", {}, C),
    ("y ~ x + (1 + x || g)", grouped_counts, "poisson", {"x": hb.StudentT(4, 0.3, 1), "Intercept": hb.Normal(1, 2)}, C),
    ("y ~ 0 + x + (1 + x | item)", crossed, "gaussian", {"x": hb.Normal(1.5, 2)}, C),
    ("y ~ x + (1 + x | g)", grouped_counts, "poisson", {"Intercept": hb.Normal(1, 2)}, CI),
    ("y ~ x + (1 + x || g)", grouped_counts, "poisson", {"Intercept": hb.Normal(1, 2)}, CI),
    ("y ~ x + (1 + x | school) + (1 | klass)", nested_counts, "poisson", {"Intercept": hb.Normal(1, 2)}, C),
])
def test_starts_are_pymcs_initial_point_with_effects_at_the_fixed_effects(formula, data, family, priors,
                                                                           parameterization):
    from pymc.initial_point import make_initial_point_fn

    m = hb.Model(formula, data(), family, priors=priors, parameterization=parameterization, collapse=False)
    if "Intercept" in priors and m.family.link != "identity":
        # a log-link intercept starts at the data's location whatever its stated prior (tests/integration/
        # test_initial_point.py); with the stated prior centred there PyMC's initial point is that start too
        location = float(m.family.summarise_response(m.design.y, m.design.trials).location)
        priors = {**priors, "Intercept": hb.Normal(location, dict(priors["Intercept"].params)["sigma"])}
        m = hb.Model(formula, data(), family, priors=priors, parameterization=parameterization, collapse=False)
    values = contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)
    ours = contract.initial_values(m.design, m.family, m.priors, values, m.parameterization, m.collapsed)
    theirs = make_initial_point_fn(model=m.fitting_model, return_transformed=True)(0)
    assert set(ours) <= set(theirs)
    assert any(name.startswith("u_") and np.any(value != 0) for name, value in ours.items())
    for name, value in theirs.items():
        np.testing.assert_allclose(ours.get(name, np.zeros_like(value)), value, rtol=1e-12, atol=0, err_msg=name)


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


def test_crossed_gaussian_centered_and_non_centered_fitsassert_fits_agree(crossed_fits):
    c, nc = crossed_fits["centered"], crossed_fits["non-centered"]
    assert "u_rater_1" in c.posterior and "z_mean_rater" in nc.posterior  # rater (50 rows per level) took the intercept
    assert c.posterior["u_item_0"].shape[-2:] == (39, 1) and "ubar_item_0" in c.posterior  # item's mean folded in
    for var in ("b", "sd_item", "sd_rater", "sigma", "r_item", "r_rater"):
        assert_fits_agree(c, nc, var)
    assert int(c.idata["sample_stats"]["diverging"].sum()) == 0


def test_poisson_correlated_slopes_centered_and_non_centered_fitsassert_fits_agree(poisson_fits):
    c, nc = poisson_fits["centered"], poisson_fits["non-centered"]
    assert "u_g_0" in c.posterior
    for var in ("b", "sd_g", "cor_g", "r_g"):
        assert_fits_agree(c, nc, var)


def test_poisson_with_only_the_intercepts_centered_agrees_with_non_centered(poisson_fits):
    ci, nc = poisson_fits["centered-intercept"], poisson_fits["non-centered"]
    assert ci.posterior["u_g_0"].shape[-1] == 1 and ci.posterior["z_slopes_g"].shape[-1] == 1
    for var in ("b", "sd_g", "cor_g", "r_g"):
        assert_fits_agree(ci, nc, var)
    assert "Group effects: g intercepts centered, slopes non-centered" in repr(ci)


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
    # the intercept's mean is the intercept of the raw columns: Intercept_centered - X_mean * slopes
    p = poisson_fits["centered"].posterior
    x_mean = poisson_fits["centered"].model.design.X[:, 1].mean()
    mu = np.stack([p["Intercept_centered"].values - x_mean * p[N.SLOPES].values[..., 0], p[N.SLOPES].values[..., 0]], -1)
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
