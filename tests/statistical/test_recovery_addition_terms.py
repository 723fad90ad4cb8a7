"""brms's addition terms on the response, fitted: what each does to the posterior.

Short chains on small data, each check within Monte Carlo error or the posterior's own
spread: a censored gaussian recovers the uncensored truth where ignoring the censoring does
not; a zero-truncated poisson recovers its rate; weights of 2 are duplicated rows; the eight
schools meta-analysis with known standard errors matches the published posterior; and
``trials(n)`` is ``cbind(successes, n - successes)``, draw for draw.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from recovery import assert_recovered
from scipy import stats

import hierbayes as hb

FIT = {"chains": 2, "progressbar": False, "warn": False}


def _mean_sd(fit, label: str) -> tuple[float, float]:
    row = fit.summary().loc[label]
    return float(row["mean"]), float(row["sd"])


def test_right_censoring_recovers_the_uncensored_truth_where_ignoring_it_does_not():
    rng = np.random.default_rng(11)
    latent = rng.normal(10.0, 2.0, 400)
    limit = 10.5  # about 40% of the rows are above it and recorded as the limit
    data = pd.DataFrame({"y": np.minimum(latent, limit), "c": np.where(latent > limit, "right", "none")})
    censored = hb.Model("y | cens(c) ~ 1", data).fit(draws=500, tune=500, seed=1, **FIT)
    assert_recovered(censored, {"Intercept": 10.0, "sigma": 2.0})
    ignored = hb.Model("y ~ 1", data).fit(draws=500, tune=500, seed=1, **FIT)
    for label, truth in (("Intercept", 10.0), ("sigma", 2.0)):
        mean, sd = _mean_sd(ignored, label)
        assert mean < truth - 4 * sd, f"{label}: ignoring the censoring should bias it down, got {mean:.3f}"
    loo = censored.loo()  # the censored rows are scored by log(1 - F(limit))
    b, sigma = censored.posterior["b"].values[..., 0], censored.posterior["sigma"].values
    pointwise = censored.idata["log_likelihood"]["y"].values
    right = np.flatnonzero(data["c"] == "right")
    np.testing.assert_allclose(pointwise[..., right[0]], stats.norm.logsf(limit, b, sigma), rtol=1e-6)
    assert np.isfinite(loo.elpd)


def test_zero_truncated_poisson_recovers_its_rate_and_predicts_inside_the_bounds():
    rng = np.random.default_rng(12)
    counts = rng.poisson(np.exp(0.4), 2000)
    data = pd.DataFrame({"y": counts[counts >= 1][:300].astype(float)})
    fit = hb.Model("y | trunc(lb = 1) ~ 1", data, "poisson").fit(draws=500, tune=500, seed=2, **FIT)
    assert_recovered(fit, {"Intercept": 0.4})
    naive = np.log(data["y"].mean())  # ignoring the truncation: the mean of the truncated counts
    mean, sd = _mean_sd(fit, "Intercept")
    assert naive > mean + 4 * sd
    draws = fit.predict(kind="response", seed=3)
    assert draws.min() >= 1
    rate = np.exp(fit.posterior["b"].values[..., 0]).mean()
    assert draws.mean() == pytest.approx(rate / (1 - np.exp(-rate)), rel=0.05)  # the truncated mean


def test_weights_of_two_give_the_posterior_of_duplicated_rows():
    rng = np.random.default_rng(13)
    data = pd.DataFrame({"y": rng.normal(3.0, 1.5, 60), "w": 2.0})
    priors = {"Intercept": hb.Normal(0, 10), "sigma": hb.Exponential(0.5)}  # the same for both data
    weighted = hb.Model("y | weights(w) ~ 1", data, priors=priors).fit(draws=1000, tune=500, seed=4, **FIT)
    doubled = hb.Model("y ~ 1", pd.concat([data, data]), priors=priors).fit(draws=1000, tune=500, seed=5, **FIT)
    for label in ("Intercept", "sigma"):
        a, b = weighted.summary().loc[label], doubled.summary().loc[label]
        mc_error = np.hypot(a["sd"] / np.sqrt(a["ess_bulk"]), b["sd"] / np.sqrt(b["ess_bulk"]))
        assert abs(a["mean"] - b["mean"]) < 4 * mc_error, label
        assert a["sd"] == pytest.approx(b["sd"], rel=0.15), label
    weighted.add_log_likelihood()  # LOO's pointwise log-likelihood is weighted as the model's
    b, sigma = weighted.posterior["b"].values[..., 0], weighted.posterior["sigma"].values
    np.testing.assert_allclose(weighted.idata["log_likelihood"]["y"].values[..., 0],
                               2 * stats.norm.logpdf(data["y"].iloc[0], b, sigma), rtol=1e-10)


EIGHT_SCHOOLS = pd.DataFrame({"y": [28.0, 8, -3, 7, -1, 1, 18, 12], "se": [15.0, 10, 16, 11, 9, 11, 10, 18],
                              "school": list("ABCDEFGH")})


def test_eight_schools_with_known_standard_errors_matches_the_published_posterior(tmp_path):
    """The non-centered eight schools model (mu ~ N(0, 5), tau ~ HalfCauchy(5)): posterior means of
    mu about 4.4 and tau about 3.6, as published with Stan and PyMC for it."""
    model = hb.Model("y | se(se) ~ 1 + (1 | school)", EIGHT_SCHOOLS, parameterization="non-centered",
                     priors={"Intercept": hb.Normal(0, 5), "sd(Intercept|school)": hb.HalfCauchy(5)})
    assert model.family.parameters == ()  # se(se): no residual sigma
    fit = model.fit(draws=2000, tune=1000, seed=6, target_accept=0.95, **FIT)
    table = fit.summary()
    for label, published in (("Intercept", 4.4), ("sd(Intercept|school)", 3.6)):
        row = table.loc[label]
        mc_error = row["sd"] / np.sqrt(row["ess_bulk"])
        assert abs(row["mean"] - published) < 4 * mc_error + 0.1, f"{label}: {row['mean']:.2f} vs {published}"
    fit.save(tmp_path / "schools.nc")  # the formula carries se(se): the model comes back without sigma
    loaded = hb.load(tmp_path / "schools.nc")
    assert loaded.model.family.parameters == () and loaded.model.structure == model.structure
    pd.testing.assert_frame_equal(loaded.summary(), table)


def test_trials_is_cbind_draw_for_draw_and_a_saved_fit_keeps_its_terms(tmp_path):
    rng = np.random.default_rng(14)
    g = np.repeat([f"g{j}" for j in range(6)], 20)
    n = rng.integers(5, 15, g.size)
    hits = rng.binomial(n, 1 / (1 + np.exp(-(0.3 + rng.normal(0, 0.5, 6)[pd.factorize(g)[0]]))))
    data = pd.DataFrame({"hits": hits, "n": n, "misses": n - hits, "g": g})
    by_trials = hb.Model("hits | trials(n) ~ 1 + (1 | g)", data, "binomial").fit(draws=200, tune=200, seed=7, **FIT)
    by_cbind = hb.Model("cbind(hits, misses) ~ 1 + (1 | g)", data, "binomial").fit(draws=200, tune=200, seed=7, **FIT)
    for var in ("b", "sd_g", "r_g"):
        np.testing.assert_array_equal(by_trials.posterior[var].values, by_cbind.posterior[var].values)
    np.testing.assert_array_equal(by_trials.predict(kind="response", seed=8).values,
                                  by_cbind.predict(kind="response", seed=8).values)
    by_trials.save(tmp_path / "fit.nc")
    loaded = hb.load(tmp_path / "fit.nc")
    assert loaded.model.spec.response.addition("trials").get("trials") == "n"
    np.testing.assert_array_equal(loaded.model.design.trials, by_trials.model.design.trials)
