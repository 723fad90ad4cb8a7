"""Average comparisons and slopes against marginaleffects on a maximum-likelihood GLM of the same data.

With many rows and weakly informative priors, the posterior mean of an average comparison is
the maximum-likelihood estimate up to Monte Carlo error and a shrinkage of the order of a
tenth of its posterior SD; the posterior SD is the delta-method standard error up to the same
kind of difference. The reference is Python ``marginaleffects`` (a test dependency) on a
statsmodels GLM: ``avg_comparisons``, whose ratios are ratios of the averaged predictions, and
``avg_slopes``. marginaleffects centres a numeric step on the observed value (``x - 1/2`` to
``x + 1/2``); hierbayes steps forward from it (``x`` to ``x + 1``, R marginaleffects's
default), so the reference is asked for that step explicitly.
"""

from __future__ import annotations

import marginaleffects as me  # the test extra's reference package: a missing one is a failure
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from arviz_stats.base import array_stats
from scipy.special import expit

import hierbayes as hb

SAMPLING = dict(draws=500, tune=400, chains=2, seed=11, progressbar=False, warn=False)
SHRINKAGE = 0.15  # allowance for the prior and the posterior's skew, in posterior SDs


def simulated(n: int = 2000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"x": rng.normal(0.5, 1.0, n), "trt": rng.choice(["ctl", "drug"], n)})
    drug = (df["trt"] == "drug").to_numpy()
    df["count"] = rng.poisson(np.exp(0.2 + 0.3 * df["x"] + 0.4 * drug))
    df["event"] = rng.binomial(1, expit(-0.3 + 0.7 * df["x"] + 0.6 * drug))
    return df


def forward_step(x):
    """Each row's value and the value plus one: R marginaleffects's step, asked of the Python package."""
    x = np.asarray(x, dtype=float)
    return np.column_stack([x, x + 1.0])


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulated()


def agree(draws, expected: pd.DataFrame) -> None:
    """Posterior means within two Monte Carlo SEs plus the shrinkage allowance of the ML estimates, posterior
    SDs within 20% of the delta-method SEs."""
    values = np.asarray(draws.values)
    moved = np.moveaxis(values, (0, 1), (-2, -1))
    ess = np.atleast_1d(array_stats.ess(moved, method="mean"))
    mean, sd = values.mean(axis=(0, 1)), values.std(axis=(0, 1), ddof=1)
    mcse = sd / np.sqrt(ess)
    estimate, se = expected["estimate"].to_numpy(dtype=float), expected["std_error"].to_numpy(dtype=float)
    assert np.all(np.abs(mean - estimate) < 2 * mcse + SHRINKAGE * sd), (mean, estimate, mcse, sd)
    np.testing.assert_allclose(sd, se, rtol=0.2)


@pytest.mark.parametrize("family, formula, glm_family", [
    ("poisson", "count ~ x + trt", sm.families.Poisson()),
    ("bernoulli", "event ~ x + trt", sm.families.Binomial()),
])
def test_average_comparisons_and_slopes_agree_with_marginaleffects(data, family, formula, glm_family):
    fit = hb.Model(formula, data, family).fit(**SAMPLING)
    frame = data.assign(trt=pd.Categorical(data["trt"]))  # marginaleffects refuses text columns
    glm = smf.glm(formula, frame, family=glm_family).fit()

    agree(fit.comparisons("trt", draws=True), me.avg_comparisons(glm, variables="trt").to_pandas())
    agree(fit.comparisons("trt", comparison="ratio", draws=True),
          me.avg_comparisons(glm, variables="trt", comparison="ratio").to_pandas())
    agree(fit.comparisons({"x": 1}, draws=True),
          me.avg_comparisons(glm, variables={"x": forward_step}).to_pandas())
    agree(fit.slopes("x", draws=True), me.avg_slopes(glm, variables="x").to_pandas())
    by_trt = me.avg_slopes(glm, variables="x", by="trt").to_pandas().sort_values("trt")
    agree(fit.slopes("x", by="trt", draws=True), by_trt)
    if family == "bernoulli":
        agree(fit.comparisons("trt", comparison="lnor", draws=True),
              me.avg_comparisons(glm, variables="trt", comparison="lnor").to_pandas())
