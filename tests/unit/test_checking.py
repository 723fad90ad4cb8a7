"""Model checking and comparison: posterior and prior predictive draws, LOO, R2, compare.

Uses the fixtures of test_predict: simulated sleepstudy-shaped data with a strong varying slope,
the true model ``fit`` and the misspecified varying-intercept model ``scaled_fit`` (its
``scale(Days)`` is Days rescaled, so it misses only the varying slope).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from test_predict import FIT, TRUE, data, fake_fit, fit, scaled_fit, small  # noqa: F401 (fixtures shared with test_predict)

import hierbayes as hb
from hierbayes.posterior.checking import pareto_k_message

pytestmark = pytest.mark.filterwarnings("ignore::hierbayes.common.errors.DataWarning")  # Pareto k of 10-row subjects


def test_posterior_predictive_is_stored_for_arviz_and_has_the_fitted_noise(fit):
    ppc = fit.posterior_predictive(seed=1)
    assert "posterior_predictive" in fit.idata.children
    stored = fit.idata["posterior_predictive"]["Reaction"]
    assert stored.dims == ("chain", "draw", "obs") and stored.shape == (2, 300, 180)
    np.testing.assert_array_equal(stored.values, ppc.values)
    noise = (ppc.values - fit.expected_mean()) / fit.posterior["sigma"].values[..., None]
    assert abs(noise.std() - 1) < 0.02 and abs(noise.mean()) < 0.02
    from arviz_stats import loo_pit

    fit.add_log_likelihood()  # ArviZ's LOO-PIT reads the groups as stored; the log-likelihood is on request
    pit = loo_pit(fit.idata)["Reaction"].values
    assert pit.shape == (180,) and 0.4 < pit.mean() < 0.6 and ((pit >= 0) & (pit <= 1)).all()


def test_loo_prefers_the_true_varying_slope_model(fit, scaled_fit):
    table = hb.compare({"varying slope": fit, "varying intercept": scaled_fit})
    assert list(table.index) == ["varying slope", "varying intercept"]
    diff, dse = table.loc["varying intercept", ["elpd_diff", "dse"]]
    assert diff < -4 * dse < 0
    assert table.loc["varying slope", "weight"] > 0.9


def test_loo_returns_pointwise_elpd_and_pareto_k(fit):
    result = fit.loo(warn=False)
    assert result.elpd_i.shape == (180,) and result.pareto_k.shape == (180,)
    assert result.elpd == pytest.approx(float(result.elpd_i.sum()))
    # elpd_loo is below the in-sample log predictive density by about p_loo
    lppd = np.log(np.exp(fit.idata["log_likelihood"]["Reaction"].values).mean(axis=(0, 1))).sum()
    assert result.elpd < lppd and result.elpd == pytest.approx(lppd - result.p, abs=1.0)


def test_loo_computes_the_log_likelihood_when_the_fit_has_none(data):
    model = hb.Model("Reaction ~ Days + (Days | Subject)", data)
    fit = model.fit(**FIT)
    assert "log_likelihood" not in fit.idata.children
    assert np.isfinite(fit.loo(warn=False).elpd)
    assert "log_likelihood" in fit.idata.children
    stored = model.fit(**FIT, log_likelihood=True)  # same seed: the same draws, the same values
    np.testing.assert_allclose(stored.idata["log_likelihood"]["Reaction"].values,
                               fit.idata["log_likelihood"]["Reaction"].values)


def test_pareto_k_warning_names_the_rows_in_plain_words():
    message = pareto_k_message(np.array([0.2, 0.95, 0.1, 0.8]), 0.7, pd.Index([10, 11, 12, 13]))
    assert message.startswith("LOO is unreliable for 2 of 4 observations (Pareto k above 0.7, largest 0.95 at row 11)")
    assert "Rows: 11, 13" in message and "student_t" in message
    assert pareto_k_message(np.array([0.2, 0.3]), 0.7, pd.Index([0, 1])) is None


def test_loo_warns_in_plain_words_with_the_row_labels_of_the_data(fit):
    result = fit.loo(warn=False)
    assert (result.pareto_k.values > result.good_k).any()  # 10 rows per subject leave a few influential rows
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit.loo()
    messages = [str(w.message) for w in caught if issubclass(w.category, hb.DataWarning)]
    assert len(messages) == 1 and "LOO is unreliable for" in messages[0]
    assert not [w for w in caught if "Estimated shape parameter" in str(w.message)]  # ArviZ's own text replaced


def test_compare_refuses_fits_of_different_data(fit, data):
    other = hb.Model("Reaction ~ Days + (Days | Subject)", data.assign(Reaction=data["Reaction"] + 1)).fit(**FIT)
    with pytest.raises(hb.HierbayesError, match="different response values"):
        hb.compare({"a": fit, "b": other})
    with pytest.raises(hb.HierbayesError, match="at least two fits"):
        hb.compare({"a": fit})
    with pytest.raises(hb.HierbayesError, match="'b' is a str, not a hierbayes Fit"):
        hb.compare({"a": fit, "b": "fit"})


def test_bayes_r2_is_explained_over_total_variance_draw_by_draw(fit, data):
    r2 = fit.r2(summary=False)
    mu = fit.expected_mean()
    sigma = fit.posterior["sigma"].transpose("chain", "draw").values
    by_hand = mu.var(axis=-1, ddof=1) / (mu.var(axis=-1, ddof=1) + sigma**2)
    np.testing.assert_allclose(r2, by_hand, rtol=1e-12)
    table = fit.r2()
    true_r2 = data["mu"].var() / (data["mu"].var() + TRUE["sigma"] ** 2)
    assert table.loc["R2", "2.5%"] < true_r2 < table.loc["R2", "97.5%"]


@pytest.mark.parametrize("family, formula, residual", [
    ("poisson", "y ~ x + (1 | g)", lambda mu, n: mu),
    ("negative_binomial", "y ~ x + (1 | g)", lambda mu, n: mu + mu**2 / 2.0),
    ("binomial", "cbind(y, f) ~ x + (1 | g)", lambda mu, n: n * mu * (1 - mu)),
])
def test_bayes_r2_uses_the_family_variance(small, family, formula, residual):
    model = hb.Model(formula, small, family=family)
    values = dict(b=[0.1, 0.2], r_g=[[0.3], [-0.2], [0.0]], sd_g=[0.5])
    if family == "negative_binomial":
        values["alpha"] = 2.0
    fit = fake_fit(model, 4, **values)
    n = model.design.trials if model.design.trials is not None else 1.0
    mu = fit.expected_mean()[0, 0]
    expected = np.var(mu * n, ddof=1) / (np.var(mu * n, ddof=1) + residual(mu, n).mean())
    np.testing.assert_allclose(fit.r2(summary=False), expected)


def test_prior_predictive_draws_follow_the_priors(data):
    priors = {"Intercept": hb.Normal(1000, 1), "Days": hb.Normal(0, 0.01), "sd": hb.HalfNormal(0.01),
              "sigma": hb.Exponential(1.0)}
    model = hb.Model("Reaction ~ Days + (Days | Subject)", data, priors=priors)
    tree = model.sample_prior_predictive(draws=400, seed=1)
    y = tree["prior_predictive"]["Reaction"]
    assert y.dims == ("chain", "draw", "obs") and y.shape == (1, 400, 180)
    # y = 1000 + N(0, 1) + ~0 + N(0, sigma), sigma ~ Exponential(1): mean 1000, variance 1 + E[sigma^2] = 3
    assert abs(float(y.mean()) - 1000) < 0.3 and float(y.std()) == pytest.approx(np.sqrt(3), rel=0.15)
    assert float(tree["prior"]["sigma"].mean()) == pytest.approx(1.0, rel=0.15)
    assert tree["prior"]["r_Subject"].dims[2:] == ("Subject", "Subject__coef")


def test_fit_prior_predictive_is_stored_beside_the_posterior(fit):
    y = fit.prior_predictive(draws=100, seed=2)
    assert {"prior", "prior_predictive"} <= set(fit.idata.children)
    assert y.shape == (1, 100, 180)
    # default priors are wide, scaled to the data: centred near the response mean, far wider than the data
    reaction = fit.model.design.y
    assert abs(float(y.mean()) - reaction.mean()) < 3 * reaction.std()
    assert float(y.std()) > reaction.std()
