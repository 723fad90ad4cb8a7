"""Power-scaling sensitivity (priorsense): the log prior is the priors in force, evaluated by hand here,
and the diagnosis finds a prior that fights the data and one that the data cannot overrule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.posterior.sensitivity import log_prior_draws

FIT = dict(draws=500, tune=500, chains=2, seed=4, progressbar=False, warn=False)


@pytest.fixture(scope="module")
def sleep_fit():
    return hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(**FIT)


def test_the_log_prior_is_each_prior_in_force_at_the_draws(sleep_fit):
    model, post = sleep_fit.model, sleep_fit.posterior
    lp = log_prior_draws(sleep_fit)
    assert set(lp.data_vars) == set(model.prior_summary().index)
    c, d = 1, 123
    b = post["b"].isel(chain=c, draw=d).sel(term=["Intercept", "Days"]).values
    intercept_centred = b[0] + model.data["Days"].mean() * b[1]  # its prior is at the centred predictor
    by_hand = {
        "Intercept": stats.norm.logpdf(intercept_centred, *model.priors["Intercept"].values.values()),
        "Days": stats.norm.logpdf(b[1], *model.priors["Days"].values.values()),
        "sd(Days|Subject)": stats.halfnorm.logpdf(post["sd_Subject"].isel(chain=c, draw=d).sel(Subject__coef="Days"),
                                                  scale=model.priors["sd(Days|Subject)"].values["sigma"]),
        "sigma": stats.expon.logpdf(post["sigma"].isel(chain=c, draw=d),
                                    scale=1 / model.priors["sigma"].values["lam"]),
        # LKJ(2) on a 2 x 2 correlation matrix: (eta - 1) log(1 - rho^2), up to a constant
        "cor(Intercept,Days|Subject)": np.log1p(-float(post["cor_Subject"].isel(chain=c, draw=d).item()) ** 2),
    }
    for label, value in by_hand.items():
        assert float(lp[label].isel(chain=c, draw=d)) == pytest.approx(float(value), rel=1e-10), label


def test_default_priors_are_not_flagged_on_informative_data(sleep_fit):
    table = sleep_fit.prior_sensitivity()
    assert list(table.columns) == ["prior", "likelihood", "diagnosis"]
    assert list(table.index) == [p.label for p in sleep_fit.parameters]
    for label in ("Intercept", "Days", "sigma"):
        assert table.loc[label, "prior"] < 0.05 and table.loc[label, "likelihood"] >= 0.05, label
        assert table.loc[label, "diagnosis"] == ""


def _regression(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(8), n // 8)
    x = rng.normal(size=g.size)
    return pd.DataFrame({"y": 1.0 + rng.normal(0, 0.5, 8)[g] + rng.normal(size=g.size), "x": x, "g": g})


def test_a_prior_that_fights_the_data_is_a_conflict_and_one_the_data_cannot_move_is_strong():
    data = _regression(400, 1)  # the slope of x is 0, well measured
    conflict = hb.Model("y ~ x + (1 | g)", data, priors={"x": hb.Normal(0.5, 0.05)}).fit(**FIT)
    assert conflict.prior_sensitivity().loc["x", "diagnosis"] == "prior-data conflict"
    few = _regression(16, 2)  # two rows per level: the data say little about sd(Intercept|g)
    strong = hb.Model("y ~ x + (1 | g)", few, priors={"sd(Intercept|g)": hb.HalfNormal(0.05)}).fit(**FIT)
    row = strong.prior_sensitivity().loc["sd(Intercept|g)"]
    assert row["prior"] >= 0.05 and row["diagnosis"] in ("strong prior / weak likelihood", "prior-data conflict")
