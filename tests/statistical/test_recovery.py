"""Parameter recovery from simulated data: one test per block structure and per family.

Each design is simulated with known values; the fit must put every true population-level
value inside its 99% interval with the posterior mean within three posterior SDs. (With about
fifty such checks in this file, 95% intervals would miss one truth by chance for most seeds;
a real bug moves estimates much further.) Seeds are fixed, so the check is deterministic. The simulated group effects are drawn with exactly the
target mean (0) and covariance (:func:`exact_effects`), so that the data identify the true
values themselves rather than one random draw of them; a failure means the model is not the
one simulated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from recovery import TRUE_VI, assert_recovered, exact_effects, groups, varying_intercept
from scipy import special

import hierbayes as hb

FIT = dict(draws=1000, tune=1000, chains=2, seed=11, progressbar=False, warn=False)


def test_varying_intercept():
    rng = np.random.default_rng(1)
    df = varying_intercept(rng)
    df["y"] = df["eta"] + rng.normal(0, 0.5, len(df))
    fit = hb.Model("y ~ x + (1 | g)", df).fit(**FIT)
    assert_recovered(fit, {**TRUE_VI, "sigma": 0.5})


def correlated_slopes(rng, corr, n_levels=40, per_level=15):
    g = groups(n_levels, per_level)
    x = rng.normal(size=g.size)
    u = exact_effects(rng, n_levels, [1.0, 0.5], corr)[pd.factorize(g)[0]]
    y = 2.0 + u[:, 0] + (1.0 + u[:, 1]) * x + rng.normal(0, 0.5, g.size)
    return pd.DataFrame({"g": g, "x": x, "y": y})


def test_correlated_intercept_and_slope():
    df = correlated_slopes(np.random.default_rng(2), corr=0.6)
    fit = hb.Model("y ~ x + (x | g)", df).fit(**FIT)
    assert_recovered(fit, {"Intercept": 2.0, "x": 1.0, "sd(Intercept|g)": 1.0, "sd(x|g)": 0.5,
                           "cor(Intercept,x|g)": 0.6, "sigma": 0.5})
    assert fit.variance_components().loc["cor(Intercept,x|g)", "2.5%"] > 0  # the sign is found


def test_uncorrelated_intercept_and_slope():
    df = correlated_slopes(np.random.default_rng(3), corr=0.0)
    fit = hb.Model("y ~ x + (x || g)", df).fit(**FIT)
    assert "cor(Intercept,x|g)" not in fit.summary().index
    assert_recovered(fit, {"Intercept": 2.0, "x": 1.0, "sd(Intercept|g)": 1.0, "sd(x|g)": 0.5, "sigma": 0.5})


def test_nested():
    rng = np.random.default_rng(4)
    school = np.repeat([f"s{j}" for j in range(12)], 32)
    klass = np.tile(np.repeat(["c1", "c2", "c3", "c4"], 8), 12)
    u_s = exact_effects(rng, 12, 1.0)[pd.factorize(school)[0]]
    u_c = exact_effects(rng, 48, 0.5)[pd.factorize(pd.Series(school) + klass)[0]]
    y = 3.0 + u_s + u_c + rng.normal(0, 0.5, school.size)
    df = pd.DataFrame({"school": school, "class": klass, "y": y})
    fit = hb.Model("y ~ 1 + (1 | school/class)", df).fit(**FIT)
    assert list(fit.model.design.factors) == ["school", "school:class"]
    assert len(fit.model.design.factors["school:class"].levels) == 48
    assert_recovered(fit, {"Intercept": 3.0, "sd(Intercept|school)": 1.0,
                           "sd(Intercept|school:class)": 0.5, "sigma": 0.5})


def test_crossed():
    rng = np.random.default_rng(5)
    a = np.repeat([f"p{j:02d}" for j in range(30)], 20)
    b = np.tile([f"i{j:02d}" for j in range(20)], 30)
    y = (-1.0 + exact_effects(rng, 30, 1.0)[pd.factorize(a)[0]] + exact_effects(rng, 20, 0.7)[pd.factorize(b)[0]]
         + rng.normal(0, 0.5, a.size))
    df = pd.DataFrame({"subject": a, "item": b, "y": y})
    fit = hb.Model("y ~ 1 + (1 | subject) + (1 | item)", df).fit(**FIT)
    assert_recovered(fit, {"Intercept": -1.0, "sd(Intercept|subject)": 1.0, "sd(Intercept|item)": 0.7,
                           "sigma": 0.5})


@pytest.mark.parametrize(
    ("family", "respond", "extra"),
    [
        ("student_t", lambda rng, eta: eta + 0.5 * rng.standard_t(4, eta.size), {"sigma": 0.5, "nu": 4.0}),
        ("bernoulli", lambda rng, eta: rng.binomial(1, special.expit(eta)), {}),
        ("poisson", lambda rng, eta: rng.poisson(np.exp(eta)), {}),
        ("negative_binomial", lambda rng, eta: rng.negative_binomial(5.0, 5.0 / (5.0 + np.exp(eta))), {"alpha": 5.0}),
    ],
)
def test_family(family, respond, extra):
    rng = np.random.default_rng(6)
    n_levels, per_level = (40, 25) if family == "bernoulli" else (30, 15)
    df = varying_intercept(rng, n_levels, per_level)
    df["y"] = respond(rng, df["eta"].to_numpy())
    fit = hb.Model("y ~ x + (1 | g)", df, family).fit(**FIT)
    assert_recovered(fit, {**TRUE_VI, **extra})


def test_binomial_with_cbind():
    rng = np.random.default_rng(7)
    df = varying_intercept(rng, 30, 6)
    df["n"] = rng.integers(5, 15, len(df))
    df["s"] = rng.binomial(df["n"], special.expit(df["eta"] - 1.0))
    df["f"] = df["n"] - df["s"]
    fit = hb.Model("cbind(s, f) ~ x + (1 | g)", df, "binomial").fit(**FIT)
    assert_recovered(fit, {"Intercept": 0.0, "x": 0.5, "sd(Intercept|g)": 0.8})


def test_probit_link():
    rng = np.random.default_rng(8)
    df = varying_intercept(rng, 40, 25)
    df["eta"] = (df["eta"] - 1.0) * 0.6  # probit scale: intercept 0, slope 0.3, sd 0.48
    from scipy.stats import norm

    df["y"] = rng.binomial(1, norm.cdf(df["eta"]))
    fit = hb.Model("y ~ x + (1 | g)", df, "bernoulli", link="probit").fit(**FIT)
    assert_recovered(fit, {"Intercept": 0.0, "x": 0.3, "sd(Intercept|g)": 0.48})


def test_offset_enters_with_coefficient_one():
    rng = np.random.default_rng(9)
    df = varying_intercept(rng, 30, 10)
    df["exposure"] = rng.uniform(1, 20, len(df))
    df["y"] = rng.poisson(df["exposure"] * np.exp(df["eta"] - 1.0))
    # counts of up to 20 exposures make each level informative: the default "auto" centers the factor,
    # where non-centered leaves the SD's bulk ESS near 100 of 2,000 draws (R-hat up to 1.11 across seeds)
    fit = hb.Model("y ~ x + offset(np.log(exposure)) + (1 | g)", df, "poisson").fit(**FIT)
    assert fit.model.parameterization == {"g": "centered"}
    assert_recovered(fit, {"Intercept": 0.0, "x": 0.5, "sd(Intercept|g)": 0.8})


def test_slope_only_and_categorical_slope():
    rng = np.random.default_rng(10)
    g = groups(30, 12)
    k = np.tile(["a", "b", "c"], g.size // 3)
    idx = pd.factorize(g)[0]
    u = exact_effects(rng, 30, [0.8, 0.4])
    y = 1.0 + (k == "b") * (1.0 + u[idx, 0]) + (k == "c") * (-1.0 + u[idx, 1]) + rng.normal(0, 0.3, g.size)
    df = pd.DataFrame({"g": g, "k": k, "y": y})
    fit = hb.Model("y ~ k + (0 + k | g)", df).fit(**FIT)
    coefs = fit.model.design.factor_coefs("g")
    assert coefs == ("k[a]", "k[b]", "k[c]")
    assert_recovered(fit, {"Intercept": 1.0, "k[T.b]": 1.0, "k[T.c]": -1.0, "sd(k[b]|g)": 0.8,
                           "sd(k[c]|g)": 0.4, "sigma": 0.3})
