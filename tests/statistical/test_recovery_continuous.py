"""The continuous families recover what they simulate, and are full citizens end to end.

One table (``tests/continuous_families.py``): each family's ``y ~ x + (1 | g)`` simulated
from SciPy (brms's parameterisation, written independently of hierbayes) with exactly the
true between-level SD, fitted with short chains; every true value, the family's own
parameters included, must be recovered. The gamma and beta fits then go through LOO,
predictions, pooling, R-squared and the ICC.
"""

from __future__ import annotations

import numpy as np
import pytest
from continuous_families import CASES, Case
from recovery import assert_recovered

import hierbayes as hb

FIT = dict(draws=400, tune=400, chains=2, seed=2, progressbar=False, warn=False)
_FITS: dict[str, tuple[hb.Fit, object]] = {}


def fitted(case: Case):
    """The case's fit and data, once per session."""
    if case.id not in _FITS:
        df = case.simulate(seed=1)
        _FITS[case.id] = hb.Model("y ~ x + (1 | g)", df, family=case.entry()).fit(**FIT), df
    return _FITS[case.id]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_recovers_the_true_values(case):
    fit, _ = fitted(case)
    assert list(fit.summary().index) == list(case.truth())
    assert_recovered(fit, case.truth())


@pytest.mark.parametrize("name", ["gamma", "beta"])
def test_loo_predictions_and_pooling_work_end_to_end(name):
    case = next(c for c in CASES if c.family == name)
    fit, df = fitted(case)
    n = len(df)
    loo = fit.loo(warn=False)
    assert np.isfinite(loo.elpd) and loo.pareto_k.shape == (n,) and (loo.pareto_k.values < loo.good_k).mean() > 0.9
    mean = fit.predict()
    assert mean.shape == (2, 400, n) and np.isfinite(mean.values).all()
    assert float(mean.mean()) == pytest.approx(df["y"].mean(), rel=0.05)  # the fitted mean is the data's
    y = fit.predict(kind="response", seed=1).values
    assert y.shape == (2, 400, n) and (y > 0).all() and (name == "gamma" or (y < 1).all())
    np.testing.assert_allclose(y.mean(axis=(0, 1)).mean(), df["y"].mean(), rtol=0.05)
    checks = fit.posterior_predictive(seed=1)  # the posterior predictive checks' draws
    assert checks.shape == (2, 400, n) and np.isfinite(checks.values).all()
    table = fit.pooling("g")
    assert table.shape[0] == 30 and np.isfinite(table[["no_pooling", "complete_pooling", "partial_pooling"]]).all().all()
    assert table.attrs["scale"] == case.entry().link
    assert table["partial_pooling"].std() < table["no_pooling"].std()  # shrunk towards the population
    assert 0 < fit.r2().loc["R2", "mean"] < 1
    assert 0 < fit.icc().loc["g", "mean"] < 1


def test_the_quantile_regression_puts_the_share_asked_for_below_its_line():
    case = next(c for c in CASES if c.family == "asymmetric_laplace")
    fit, df = fitted(case)
    line = fit.predict(kind="mean").values  # the expected response: above the 90% line of the skewed residuals
    quantile = fit.linear_predictor().mean(axis=(0, 1))  # identity link: mu, the 90% quantile
    assert (df["y"].to_numpy() < quantile).mean() == pytest.approx(0.9, abs=0.05)
    assert (line.mean(axis=(0, 1)) < quantile).all()  # q = 0.9: the mean lies below the 90% quantile
