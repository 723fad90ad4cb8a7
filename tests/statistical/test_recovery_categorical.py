"""The nominal families against known values and against maximum likelihood.

A categorical response simulated from softmax(0, eta_car, eta_walk) with a slope and a varying
intercept per category (20 groups, 300 rows) is recovered, and the fit goes through LOO,
predictions, posterior predictive checks, the interpretation functions, the report and a
save/load round trip. Without group effects, with many rows and weak priors, the posterior means
of a categorical and of a multinomial (counts) model sit within half a posterior SD of
statsmodels' MNLogit estimates (the multinomial's on its counts expanded to one row per trial).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from recovery import assert_recovered, exact_effects, groups

import hierbayes as hb
from hierbayes.viz.report import write_report

FIT = dict(draws=400, tune=400, chains=2, seed=7, progressbar=False, warn=False)
MODES = np.array(["bus", "car", "walk"])
TRUTH = {"mucar_Intercept": 0.5, "mucar_x": 1.0, "sd(mucar_Intercept|g)": 0.8,
         "muwalk_Intercept": -0.3, "muwalk_x": -0.8, "sd(muwalk_Intercept|g)": 0.6}
WEAK = {f"{cls}_{part}": hb.Normal(0, 10) for cls in ("Intercept", "b") for part in ("mucar", "muwalk")}


def draw_categories(rng, logits: np.ndarray) -> np.ndarray:
    """One category per row from softmax(logits), by the inverse of its CDF."""
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    return (rng.random((len(p), 1)) > cdf).sum(axis=1)


def fixed_logits(x: np.ndarray) -> np.ndarray:
    return np.stack([np.zeros_like(x), 0.5 + 1.0 * x, -0.3 - 0.8 * x], axis=1)


@pytest.fixture(scope="module")
def categorical_fit() -> hb.Fit:
    rng = np.random.default_rng(31)
    g = groups(20, 15)
    level = pd.factorize(g)[0]
    x = rng.normal(size=g.size)
    u_car, u_walk = exact_effects(rng, 20, 0.8), exact_effects(rng, 20, 0.6)
    logits = fixed_logits(x) + np.stack([np.zeros(20), u_car, u_walk], axis=1)[level]
    df = pd.DataFrame({"mode": MODES[draw_categories(rng, logits)], "x": x, "g": g})
    return hb.Model("mode ~ x + (1 | g)", df, family="categorical").fit(**FIT)


def test_categorical_recovers_each_categorys_intercept_slope_and_group_sd(categorical_fit):
    assert_recovered(categorical_fit, TRUTH)
    table = categorical_fit.summary(prob=0.95)
    for label, value in TRUTH.items():
        assert table.loc[label, "2.5%"] <= value <= table.loc[label, "97.5%"], label


def test_loo_predictions_checks_interpretation_report_and_a_saved_categorical_fit(categorical_fit, tmp_path):
    fit = categorical_fit
    text = fit.describe()
    assert "Links: mucar = logit; muwalk = logit" in text and "         mucar ~ x + (1 | g)" in text
    group = text.index("Group-level effects:")  # after any warnings, which may name the SDs too
    assert text.index("sd(muwalk_Intercept|g)", group) < text.index("Population-level effects:", group)
    assert np.isfinite(fit.loo(warn=False).elpd)
    probabilities = fit.predict(kind="probabilities")
    assert probabilities.dims == ("chain", "draw", "obs", "category")
    np.testing.assert_allclose(probabilities.sum("category"), 1.0, atol=1e-12)
    np.testing.assert_allclose(fit.predict(kind="mean"), probabilities)
    observed = np.bincount(fit.model.design.y.astype(int), minlength=3) / fit.model.design.n_obs
    replicated = fit.posterior_predictive(seed=1).values
    assert set(np.unique(replicated)) <= {0.0, 1.0, 2.0}
    np.testing.assert_allclose([(replicated == k).mean() for k in range(3)], observed, atol=0.03)
    shares = fit.predictions(by=True, groups="known")
    assert shares["category"].tolist() == ["bus", "car", "walk"]
    np.testing.assert_allclose(shares["estimate"], observed, atol=0.03)  # the fitted shares are the observed ones
    change = fit.comparisons("x").set_index("category")["estimate"]
    assert change["car"] > 0 > change["walk"] and abs(change.sum()) < 1e-9  # the probabilities' changes cancel
    for refused in (fit.icc, lambda: fit.pooling("g"), fit.r2):
        with pytest.raises(hb.HierbayesError, match="categorical"):
            refused()
    write_report(fit, tmp_path / "report.html")
    assert "sd(muwalk_Intercept|g)" in (tmp_path / "report.html").read_text()
    fit.save(tmp_path / "categorical.nc")
    loaded = hb.load(tmp_path / "categorical.nc")
    assert loaded.model.family.categories == ("bus", "car", "walk")
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    np.testing.assert_allclose(loaded.predict(kind="probabilities"), probabilities)


def assert_near_ml(fit: hb.Fit, ml: np.ndarray) -> None:
    """Posterior means within half a posterior SD of the ML estimates ``ml`` (terms x categories after the first)."""
    table = fit.summary()
    for k, part in enumerate(("mucar", "muwalk")):
        for j, term in enumerate(("Intercept", "x")):
            row = table.loc[f"{part}_{term}"]
            assert abs(row["mean"] - ml[j, k]) < 0.5 * row["sd"], (part, term, row["mean"], ml[j, k])


def test_categorical_fixed_effects_agree_with_statsmodels_mnlogit():
    rng = np.random.default_rng(32)
    x = rng.normal(size=1500)
    y = draw_categories(rng, fixed_logits(x))
    ml = sm.MNLogit(y, sm.add_constant(x)).fit(disp=0).params  # (Intercept, x) x (car, walk) against bus
    df = pd.DataFrame({"mode": MODES[y], "x": x})
    assert_near_ml(hb.Model("mode ~ x", df, family="categorical", priors=WEAK).fit(**FIT), np.asarray(ml))


def test_multinomial_counts_agree_with_mnlogit_on_one_row_per_trial():
    rng = np.random.default_rng(33)
    x = rng.normal(size=300)
    trials = rng.integers(5, 15, x.size)
    logits = fixed_logits(x)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    counts = np.array([rng.multinomial(n, pi) for n, pi in zip(trials, p)])
    df = pd.DataFrame({**dict(zip(MODES, counts.T)), "x": x})
    fit = hb.Model("cbind(bus, car, walk) ~ x", df, family="multinomial", priors=WEAK).fit(**FIT)
    rows = np.repeat(np.arange(x.size), trials)  # each trial its own row, with the category it fell in
    outcome = np.concatenate([np.repeat(np.arange(3), c) for c in counts])
    ml = sm.MNLogit(outcome, sm.add_constant(x[rows])).fit(disp=0).params
    assert_near_ml(fit, np.asarray(ml))
    draws = fit.predict(kind="response", seed=1)
    assert draws.dims == ("chain", "draw", "obs", "category")
    np.testing.assert_array_equal(draws.sum("category").values[0, 0], trials)
    assert np.isfinite(fit.loo(warn=False).elpd)
