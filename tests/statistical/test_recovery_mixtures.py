"""Recovery for the zero-inflated, hurdle, beta-binomial and 0/1 proportion families, one table.

Each case simulates ``y ~ x + (1 | g)`` (30 levels of 10 rows; Intercept 1, x 0.5, sd 0.8,
the group effects exact: :func:`recovery.exact_effects`) from the family written out in NumPy
here, not from the family's own draws, and the fit must put every true value, the family's
parameters included, inside its 99% interval (:func:`recovery.assert_recovered`). The
zero-inflated Poisson and ordered beta fits also go end to end: LOO, response draws, the
pooling table.
"""

from __future__ import annotations

import numpy as np
import pytest
from recovery import TRUE_VI, assert_recovered, varying_intercept
from scipy import special, stats

import hierbayes as hb

FIT = dict(draws=400, tune=400, chains=2, seed=3, progressbar=False, warn=False)


def zero_truncated(rng, count):
    """Draws of a frozen scipy count distribution given that they are above 0 (by its inverse CDF)."""
    return np.maximum(count.ppf(rng.uniform(count.cdf(0), 1.0)), 1)


def trials(rng, n):
    return rng.integers(5, 15, n)


def simulate_zero_one_inflated_beta(rng, eta, p):
    mu, u = special.expit(eta), rng.random(eta.size)
    ends = (rng.random(eta.size) < p["coi"]).astype(float)
    return np.where(u < p["zoi"], ends, rng.beta(mu * p["phi"], (1 - mu) * p["phi"]))


def simulate_ordered_beta(rng, eta, p):
    mu, u = special.expit(eta), rng.random(eta.size)
    zero, one = 1 - special.expit(eta - p["cutzero"]), special.expit(eta - p["cutone"])
    return np.where(u < zero, 0.0, np.where(u > 1 - one, 1.0, rng.beta(mu * p["phi"], (1 - mu) * p["phi"])))


# family: (the family's true parameters, eta -> (y, trials or None))
CASES = {
    "zero_inflated_poisson": ({"zi": 0.3}, lambda rng, eta, p: (
        np.where(rng.random(eta.size) < p["zi"], 0, rng.poisson(np.exp(eta))), None)),
    "zero_inflated_negative_binomial": ({"zi": 0.3, "alpha": 4.0}, lambda rng, eta, p: (
        np.where(rng.random(eta.size) < p["zi"], 0,
                 rng.negative_binomial(p["alpha"], p["alpha"] / (p["alpha"] + np.exp(eta)))), None)),
    "zero_inflated_binomial": ({"zi": 0.25}, lambda rng, eta, p: (lambda n: (
        np.where(rng.random(eta.size) < p["zi"], 0, rng.binomial(n, special.expit(eta))), n))(trials(rng, eta.size))),
    "beta_binomial": ({"phi": 8.0}, lambda rng, eta, p: (lambda n: (
        rng.binomial(n, rng.beta(special.expit(eta) * p["phi"], special.expit(-eta) * p["phi"])), n))(
        trials(rng, eta.size))),
    "hurdle_poisson": ({"hu": 0.35}, lambda rng, eta, p: (
        np.where(rng.random(eta.size) < p["hu"], 0, zero_truncated(rng, stats.poisson(np.exp(eta)))), None)),
    "hurdle_negative_binomial": ({"hu": 0.35, "alpha": 4.0}, lambda rng, eta, p: (
        np.where(rng.random(eta.size) < p["hu"], 0, zero_truncated(
            rng, stats.nbinom(p["alpha"], p["alpha"] / (p["alpha"] + np.exp(eta))))), None)),
    "hurdle_gamma": ({"hu": 0.3, "shape": 3.0}, lambda rng, eta, p: (
        np.where(rng.random(eta.size) < p["hu"], 0.0, rng.gamma(p["shape"], np.exp(eta) / p["shape"])), None)),
    "hurdle_lognormal": ({"hu": 0.3, "sigma": 0.6}, lambda rng, eta, p: (
        np.where(rng.random(eta.size) < p["hu"], 0.0, rng.lognormal(eta, p["sigma"])), None)),
    "zero_one_inflated_beta": ({"phi": 8.0, "zoi": 0.2, "coi": 0.6}, lambda rng, eta, p: (
        simulate_zero_one_inflated_beta(rng, eta, p), None)),
    "ordered_beta": ({"phi": 8.0, "cutzero": -1.5, "cutone": 2.5}, lambda rng, eta, p: (
        simulate_ordered_beta(rng, eta, p), None)),
}


def simulated(family: str, seed: int = 5):
    """The data of ``family``'s case and its formula (``cbind`` for the families with trials)."""
    truth, simulate = CASES[family]
    rng = np.random.default_rng(seed)
    df = varying_intercept(rng)
    y, n = simulate(rng, df["eta"].to_numpy(), truth)
    df["y"] = y
    if n is None:
        return "y ~ x + (1 | g)", df
    df["failures"] = n - y
    return "cbind(y, failures) ~ x + (1 | g)", df


@pytest.fixture(scope="module")
def fits():
    """Fits by family, made once (the end-to-end tests reuse the recovery fits)."""
    cache = {}

    def fit(family):
        if family not in cache:
            formula, df = simulated(family)
            cache[family] = hb.Model(formula, df, family=family).fit(**FIT)
        return cache[family]
    return fit


@pytest.mark.parametrize("family", list(CASES))
def test_recovers_the_effects_and_the_family_parameters(fits, family):
    fit = fits(family)
    truth = CASES[family][0]
    assert_recovered(fit, {**TRUE_VI, **truth})


@pytest.mark.parametrize("family", ["zero_inflated_poisson", "ordered_beta"])
def test_end_to_end_loo_predictions_and_pooling(fits, family):
    fit = fits(family)
    n = fit.model.design.n_obs
    result = fit.loo(warn=False)
    assert np.isfinite(float(result.elpd)) and fit.idata["log_likelihood"]["y"].shape == (2, 400, n)
    draws = fit.predict(kind="response", seed=1).values
    assert draws.shape == (2, 400, n) and np.isfinite(draws).all()
    y = fit.model.design.y
    if family == "ordered_beta":  # exact 0s and 1s, and proportions between, in the draws as in the data
        assert ((draws == 0).mean() > 0.02) and ((draws == 1).mean() > 0.05) and ((draws >= 0) & (draws <= 1)).all()
    else:
        assert np.array_equal(draws, np.round(draws)) and abs((draws == 0).mean() - (y == 0).mean()) < 0.05
    mean = fit.predict(kind="mean").values
    assert mean.shape == (2, 400, n)
    assert abs(mean.mean() - y.mean()) < 0.05 * y.mean() + 0.01  # the expected response, not the inverse link
    pooling = fit.pooling("g")
    assert len(pooling) == 30 and np.isfinite(pooling.select_dtypes("number").to_numpy()).all()
    own = "cutone" if family == "ordered_beta" else "zi"  # cutone: derived from cutzero + cutgap, reported by name
    assert own in fit.summary().index and own in repr(fit)
    r2 = fit.r2()  # the family's variance at its location, the explained part from the expected response
    assert 0 < r2.loc["R2", "mean"] < 1
