"""A family added through ``hb.register_family`` works end to end: fit, summary, predict, LOO, pooling, plots.

The family is a gamma response with a log link and a shape parameter, registered with
the required fields plus ``variance`` and ``quasi_variance``; its response draws and the
ICC's latent variance come from the defaults (the likelihood's own draws; the lognormal
approximation ``log(1 + 1/shape)``). Data are simulated with known values and group
sizes from 2 to 45 rows, so partial pooling shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import statsmodels.api as sm

import hierbayes as hb
from hierbayes.specification.families import FAMILIES
from hierbayes.viz.plots import shrinkage_arrows

TRUE = {"Intercept": 0.5, "x": 0.8, "sd(Intercept|g)": 0.5, "shape": 4.0}
SIZES = [2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 45]
FIT = dict(draws=300, tune=300, chains=2, seed=1, progressbar=False, warn=False)


def gamma_like(name, eta, mean, params, observed, trials, dims):
    """``y ~ Gamma(shape, rate = shape / mean)``: mean ``mean``, variance ``mean^2 / shape``."""
    shape = params["shape"]
    return pm.Gamma(name, alpha=shape, beta=shape / mean, observed=observed, shape=observed.shape)


def positive(y, trials, column):
    if (y <= 0).any():
        raise hb.DataError(f"response {column!r} must be positive for the gamma family")


GAMMA = hb.Family(name="gamma_test", link="log", links=("log",), parameters=(("shape", "positive"),),
                  default_priors=lambda r: {"shape": hb.Gamma(2.0, 0.5)}, likelihood=gamma_like,
                  check_response=positive, variance=lambda mu, p: mu**2 / p["shape"], quasi_variance=np.square)


def simulate(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    level = np.repeat(np.arange(len(SIZES)), SIZES)
    x = rng.normal(size=level.size)
    u = rng.normal(0, TRUE["sd(Intercept|g)"], len(SIZES))
    mu = np.exp(TRUE["Intercept"] + TRUE["x"] * x + u[level])
    return pd.DataFrame({"g": [f"g{j:02d}" for j in level], "x": x,
                         "y": rng.gamma(TRUE["shape"], mu / TRUE["shape"])})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulate()


@pytest.fixture(scope="module")
def fit(data):
    hb.register_family(GAMMA)
    yield hb.Model("y ~ x + (1 | g)", data, family="gamma_test").fit(**FIT)
    FAMILIES.pop(GAMMA.name, None)


def test_fit_recovers_the_true_values(fit):
    table = fit.summary()
    assert list(table.index) == list(TRUE)
    for name, value in TRUE.items():
        assert table.loc[name, "2.5%"] < value < table.loc[name, "97.5%"], name
    assert (table["r_hat"] < 1.05).all()
    assert "Family: gamma_test" in repr(fit)


def test_stored_log_likelihood_is_the_sampled_models_and_loo_works(fit):
    result = fit.loo(warn=False)
    ours = fit.idata["log_likelihood"]["y"].values
    posterior = fit.idata.copy()
    del posterior["log_likelihood"]
    theirs = pm.compute_log_likelihood(posterior, model=fit.model.pymc_model, extend_inferencedata=False,
                                       progressbar=False)["y"].transpose("chain", "draw", ...).values
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)  # the nutpie draws, scored by PyMC
    assert np.isfinite(result.elpd) and result.elpd < ours.mean(axis=(0, 1)).sum()
    assert (result.pareto_k.values < result.good_k).mean() > 0.9


def test_predictions_and_response_draws(fit):
    new = pd.DataFrame({"x": [0.0, 1.0], "g": ["g00", "g11"]})
    mean = fit.predict(new).values
    post = fit.posterior
    b, r = post["b"].values, post["r_g"].sel(g__coef="Intercept").values
    np.testing.assert_allclose(mean, np.exp(b[..., [0]] + b[..., [1]] * new["x"].values + r[..., [0, 11]]))
    y = fit.predict(new, kind="response", seed=1).values  # drawn from the likelihood: no random given
    assert (y > 0).all()
    np.testing.assert_allclose(y.mean(axis=(0, 1)), mean.mean(axis=(0, 1)), rtol=0.15)
    np.testing.assert_array_equal(fit.predict(new, kind="response", seed=1).values, y)
    assert fit.posterior_predictive(seed=1).shape == (2, 300, sum(SIZES))


def test_icc_and_r2_from_the_variance(fit):
    tau2 = fit.posterior["sd_g"].sel(g__coef="Intercept").values ** 2
    icc = tau2 / (tau2 + np.log1p(1 / fit.posterior["shape"].values))  # the log link's latent variance
    assert fit.icc().loc["g", "mean"] == pytest.approx(icc.mean(), rel=1e-12)
    assert 0 < fit.r2().loc["R2", "mean"] < 1


def test_pooling_sits_between_no_pooling_and_complete_pooling(fit, data):
    table = fit.pooling("g")
    assert (table["reason"] == "").all() and table["no_pooling"].notna().all()
    # the classical fits are the gamma GLMs with the log link (statsmodels), with and without the levels
    dummies = pd.get_dummies(data["g"]).to_numpy(dtype=float)
    glm = sm.GLM(data["y"], np.column_stack([dummies, data["x"]]),
                 family=sm.families.Gamma(sm.families.links.Log())).fit(tol=1e-12)
    np.testing.assert_allclose(table["no_pooling"], glm.params[:len(SIZES)], rtol=1e-6)
    pooled = sm.GLM(data["y"], sm.add_constant(data["x"]), family=sm.families.Gamma(sm.families.links.Log())).fit(
        tol=1e-12)
    np.testing.assert_allclose(table["complete_pooling"], pooled.params.iloc[0], rtol=1e-6)
    # each partial-pooling estimate lies between the level's own and the pooled values
    low = table[["no_pooling", "complete_pooling", "population"]].min(axis=1)
    high = table[["no_pooling", "complete_pooling", "population"]].max(axis=1)
    assert table["partial_pooling"].between(low - 0.02, high + 0.02).all()
    assert table["partial_pooling"].std() < table["no_pooling"].std()
    small, large = table["pooling_factor"].iloc[:6], table["pooling_factor"].iloc[6:]
    assert small.mean() > 2 * large.mean()  # small levels are pulled harder


def test_shrinkage_plot_draws_an_arrow_per_level(fit):
    ax = fit.plot_shrinkage("g")
    assert len(shrinkage_arrows(ax)) == len(SIZES)
    assert ax.get_ylabel() == "Intercept (log scale)"
