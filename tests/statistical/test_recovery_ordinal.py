"""Recovery of the ordinal families' thresholds, slope and group SD from simulated ratings.

Each response is simulated by the family's own story, independently of hierbayes's code: a
logistic latent variable cut at the thresholds (``cumulative``), a walk up the categories that
stops at category k with probability ``Phi(tau_k - eta)`` (``sratio``, probit link). The slope
column is not centred, so the thresholds are checked on the data's scale (they are sampled at
the slope's mean). The fitted models then go through LOO, predictions, the ICC, the report and a save/load round trip.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from recovery import assert_recovered, exact_effects, groups
from scipy import stats

import hierbayes as hb
from hierbayes.viz.report import write_report

FIT = dict(draws=400, tune=400, chains=2, seed=5, progressbar=False, warn=False)


def simulated(rng, slope: float, sd: float, n_levels: int = 40, per_level: int = 10) -> pd.DataFrame:
    g = groups(n_levels, per_level)
    x = rng.normal(2.0, 1.0, g.size)
    return pd.DataFrame({"g": g, "x": x, "eta": slope * x + exact_effects(rng, n_levels, sd)[pd.factorize(g)[0]]})


def truth(tau, slope, sd) -> dict[str, float]:
    return {**{f"Intercept[{k}]": t for k, t in enumerate(tau, 1)}, "x": slope, "sd(Intercept|g)": sd}


@pytest.fixture(scope="module")
def cumulative_fit() -> hb.Fit:
    rng = np.random.default_rng(21)
    df = simulated(rng, 1.0, 0.8)
    latent = df["eta"] + rng.logistic(size=len(df))
    levels = ["never", "rarely", "sometimes", "often", "always"]
    df["answer"] = pd.Categorical(np.array(levels)[np.digitize(latent, [0.5, 1.7, 2.8, 4.0])], levels, ordered=True)
    return hb.Model("answer ~ x + (1 | g)", df, family="cumulative").fit(**FIT)


def test_cumulative_logit_recovers_the_thresholds_slope_and_sd(cumulative_fit):
    assert_recovered(cumulative_fit, truth([0.5, 1.7, 2.8, 4.0], 1.0, 0.8))


def test_sratio_probit_recovers_the_thresholds_slope_and_sd():
    rng = np.random.default_rng(22)
    df = simulated(rng, 0.5, 0.6)
    tau = np.array([0.2, 0.6, 1.0, 1.4])
    y = np.full(len(df), len(tau))  # the last category unless the walk stops before
    stopped = np.zeros(len(df), dtype=bool)
    for k, t in enumerate(tau):
        stop = ~stopped & (rng.random(len(df)) < stats.norm.cdf(t - df["eta"]))
        y[stop], stopped = k, stopped | stop
    df["stars"] = y + 1  # numeric codes 1 .. 5
    fit = hb.Model("stars ~ x + (1 | g)", df, family="sratio", link="probit").fit(**FIT)
    assert_recovered(fit, truth(tau, 0.5, 0.6))
    assert fit.model.design.categories == (1, 2, 3, 4, 5)


def test_loo_predictions_icc_report_and_a_saved_fit_of_an_ordinal_model(cumulative_fit, tmp_path):
    fit = cumulative_fit
    loo = fit.loo(warn=False)
    assert np.isfinite(loo.elpd) and loo.elpd < 0
    probabilities = fit.predict(kind="probabilities")
    np.testing.assert_allclose(probabilities.sum("category"), 1.0, atol=1e-12)
    mean = fit.predict(kind="mean")
    scores = xr.DataArray(np.arange(1.0, 6.0), dims="category")  # the categories' positions 1 .. 5
    np.testing.assert_allclose(mean, probabilities @ scores, atol=1e-12)
    observed = fit.model.design.y  # scores 1 .. 5; the fitted means follow them
    assert np.corrcoef(mean.mean(("chain", "draw")), observed)[0, 1] > 0.5
    replicated = fit.posterior_predictive(seed=1)
    assert set(np.unique(replicated.values)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    icc = fit.icc().loc["g", "mean"]  # sd^2 / (sd^2 + pi^2/3) of the latent logistic variable, 0.16 here
    assert 0.03 < icc < 0.4
    write_report(fit, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "Intercept[4]" in html and "family is ordinal" in html  # no shrinkage plot, and why
    path = tmp_path / "ordinal.nc"
    fit.save(path)
    loaded = hb.load(path)
    assert loaded.model.design.categories == fit.model.design.categories
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())

