"""Distributional regression recovers known values: a residual SD and a negative binomial shape that
vary with a predictor (and, for the SD, by group); its predictions of the parameter are the inverse
link of its linear predictor, draw by draw; a saved fit loads with the same summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from recovery import assert_recovered, exact_effects, groups

import hierbayes as hb

FIT = {"draws": 400, "tune": 400, "chains": 2, "seed": 11, "progressbar": False, "warn": False}

TRUE_GAUSSIAN = {"Intercept": 1.0, "x": 0.5, "sd(Intercept|g)": 0.8,
                 "sigma_Intercept": -0.5, "sigma_x": 0.4, "sd(sigma_Intercept|g)": 0.4}


@pytest.fixture(scope="module")
def gaussian() -> tuple[pd.DataFrame, hb.Fit]:
    rng = np.random.default_rng(5)
    g = groups(25, 20)
    level = pd.factorize(g)[0]
    x = rng.normal(size=g.size)
    t = TRUE_GAUSSIAN
    mu = t["Intercept"] + t["x"] * x + exact_effects(rng, 25, t["sd(Intercept|g)"])[level]
    log_sigma = t["sigma_Intercept"] + t["sigma_x"] * x + exact_effects(rng, 25, t["sd(sigma_Intercept|g)"])[level]
    df = pd.DataFrame({"y": rng.normal(mu, np.exp(log_sigma)), "x": x, "g": g})
    model = hb.Model(hb.Formula("y ~ x + (1 | g)", sigma="~ x + (1 | g)"), df)
    return df, model.fit(**FIT)


def test_a_residual_sd_varying_with_x_and_by_group_is_recovered(gaussian):
    _, fit = gaussian
    assert_recovered(fit, TRUE_GAUSSIAN)
    assert "sigma has a formula of its own" in repr(fit)  # the summary says why nothing was integrated out


def test_predicted_sigma_is_exp_of_its_linear_predictor_draw_by_draw(gaussian):
    _, fit = gaussian
    post = fit.posterior
    new = pd.DataFrame({"x": [-1.0, 0.0, 2.0], "g": ["g03", "g03", "g17"]})
    b = post["b_sigma"].transpose("chain", "draw", "sigma_term").values
    r = post["r_g__sigma"].sel(g__sigma__coef="Intercept").transpose("chain", "draw", "g")
    u = np.stack([r.sel(g=level).values for level in new["g"]], axis=-1)
    by_hand = np.exp(b[..., :1] + b[..., 1:] * new["x"].to_numpy() + u)
    np.testing.assert_allclose(fit.predict(new, kind="sigma").values, by_hand, rtol=1e-12)
    population = np.exp(b[..., :1] + b[..., 1:] * new["x"].to_numpy())
    np.testing.assert_allclose(fit.predict(new, kind="sigma", groups="population").values, population, rtol=1e-12)


def test_loo_scores_each_row_with_its_own_sigma(gaussian):
    df, fit = gaussian
    plain = hb.Model("y ~ x + (1 | g)", df).fit(**FIT)
    # the data were made with a varying sigma: the model that says so predicts them better
    assert fit.loo(warn=False).elpd > plain.loo(warn=False).elpd + 20


def test_a_saved_distributional_fit_loads_with_the_same_summaries(gaussian, tmp_path):
    df, fit = gaussian
    path = tmp_path / "sigma.nc"
    fit.save(path)
    again = hb.load(path)
    assert again.model.formula == fit.model.formula
    pd.testing.assert_frame_equal(again.summary(), fit.summary())
    new = df.iloc[:5]
    np.testing.assert_array_equal(again.predict(new, kind="sigma").values, fit.predict(new, kind="sigma").values)


def test_a_negative_binomial_shape_varying_with_x_is_recovered():
    rng = np.random.default_rng(8)
    x = rng.normal(size=600)
    truth = {"Intercept": 2.0, "x": 0.3, "alpha_Intercept": np.log(2.0), "alpha_x": 0.6}
    mean = np.exp(truth["Intercept"] + truth["x"] * x)
    alpha = np.exp(truth["alpha_Intercept"] + truth["alpha_x"] * x)
    df = pd.DataFrame({"count": rng.negative_binomial(alpha, alpha / (alpha + mean)), "x": x})
    fit = hb.Model(hb.Formula("count ~ x", alpha="~ x"), df, "negative_binomial").fit(**FIT)
    assert_recovered(fit, truth)
    assert "alpha" not in fit.summary().index


def test_the_report_has_the_group_effects_of_sigmas_formula(gaussian):
    from hierbayes.cli import run_files
    from hierbayes.viz.report import render_report, report_tables

    _, fit = gaussian
    tables = report_tables(fit)
    pd.testing.assert_frame_equal(tables["group_effects_g__sigma"], fit.group_effects("g", part="sigma"))
    assert "icc" not in tables  # undefined with a sigma per row
    page = render_report(fit, {}, [])
    assert "Group effects: g, in the formula for sigma (on its link)" in page
    assert "sigma ~ x + (1 | g) (link: log)" in page
    assert "group_effects_g__sigma.csv" in run_files(fit.model)
