"""The truncated Poisson's normaliser, ``log P(Y >= lb)``, without PyMC's loss of precision.

PyMC's ``Truncated(Poisson)`` divides by ``1 - F(lb - 1)``: with ``lb = 11`` and ``mu = 0.14`` that is
``1 - (1 - 9e-18)``, 0 in double precision (a log density of +inf), and with ``lb = 1`` and ``mu`` above
about 800, ``F(0) = e^-mu`` underflows and the gradient is NaN. The references here are sums of
scipy's Poisson log probabilities (the upper tail summed where it is small, the lower one where the
upper is near 1), and for ``lb = 1`` the closed form ``log(1 - e^-mu)`` (log1mexp).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special, stats

import hierbayes as hb
from hierbayes.specification.additions import poisson_log_survival
from hierbayes.specification.families import get_family

MU = np.geomspace(0.01, 1e4, 61)
TIGHT = 1e-10
SUBNORMAL = 1e-300  # values below double precision's normal range (e^-800) compare as 0


def reference_log_survival(lb: int, mu: np.ndarray) -> np.ndarray:
    """log P(Y >= lb) from scipy's log pmf: log(1 - the lower tail's sum) where that sum is below 1/2, else
    the upper tail's terms summed (mu is then below about lb, so 400 terms hold all of it)."""
    mu = np.atleast_1d(mu)
    upper = special.logsumexp(stats.poisson.logpmf(np.arange(lb, lb + 400)[:, None], mu), axis=0)
    lower = special.logsumexp(stats.poisson.logpmf(np.arange(lb)[:, None], mu), axis=0)
    with np.errstate(divide="ignore"):  # the branch not taken may be log(0)
        return np.where(lower < np.log(0.5), np.log1p(-np.exp(lower)), upper)


def compiled():
    lb, mu = pt.dvector("lb"), pt.dvector("mu")
    value = poisson_log_survival(lb, mu)
    return pytensor.function([lb, mu], [value, pt.grad(value.sum(), mu)])


@pytest.mark.parametrize("lb", [1, 3, 11])
def test_log_survival_and_its_gradient_match_the_pmf_sums_from_mu_0_01_to_1e4(lb):
    value, gradient = compiled()(np.full(MU.size, float(lb)), MU)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
    expected = reference_log_survival(lb, MU)
    np.testing.assert_allclose(value, expected, rtol=TIGHT, atol=SUBNORMAL)
    # d/dmu log P(Y >= lb) = P(Y = lb - 1) / P(Y >= lb)
    np.testing.assert_allclose(gradient, np.exp(stats.poisson.logpmf(lb - 1, MU) - expected), rtol=TIGHT, atol=SUBNORMAL)


def test_at_lb_1_it_is_log_of_one_minus_e_to_the_minus_mu():
    value, gradient = compiled()(np.ones(MU.size), MU)
    log1mexp = np.where(MU < np.log(2), np.log(-np.expm1(-MU)), np.log1p(-np.exp(-MU)))  # each form where it is exact
    np.testing.assert_allclose(value, log1mexp, rtol=TIGHT, atol=SUBNORMAL)
    np.testing.assert_allclose(gradient, np.exp(-MU) / -np.expm1(-MU), rtol=TIGHT, atol=SUBNORMAL)


def test_lb_at_or_below_zero_truncates_nothing():
    value, gradient = compiled()(np.array([0.0, -3.0]), np.array([2.0, 50.0]))
    np.testing.assert_array_equal(value, [0.0, 0.0])
    np.testing.assert_array_equal(gradient, [0.0, 0.0])


CASES = {  # lb, mu, counts (all >= lb): where PyMC's normaliser is +inf or its gradient NaN, and an ordinary one
    "lb 1, mu 800": (1, 800.0, [790.0, 812.0, 801.0]),
    "lb 1, mu 1e4": (1, 1e4, [9950.0, 10020.0, 10100.0]),
    "lb 11, mu 0.14": (11, 0.14, [11.0, 11.0, 12.0]),
    "lb 3, mu 2.5": (3, 2.5, [3.0, 4.0, 7.0]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_models_log_density_and_gradient_are_finite_and_exact(case):
    lb, mu, counts = CASES[case]
    y = np.array(counts)
    model = hb.Model(f"y | trunc(lb = {lb}) ~ 1", pd.DataFrame({"y": y}), "poisson")
    pymc_model = model.pymc_model
    observed = pymc_model["y"]
    intercept = pymc_model.rvs_to_values[pymc_model["Intercept_centered"]]  # the log rate: no slopes to centre
    logp = pymc_model.logp(vars=[observed], sum=False)[0]
    rows, gradient = pymc_model.compile_fn([logp, pt.grad(logp.sum(), intercept)], inputs=[intercept])(
        {intercept.name: np.float64(np.log(mu))})
    log_survival = reference_log_survival(lb, mu)[0]
    np.testing.assert_allclose(rows, stats.poisson.logpmf(y, mu) - log_survival, rtol=TIGHT)
    # d/d log(mu) of the rows' sum: sum(y) - n mu - n mu P(Y = lb - 1) / P(Y >= lb)
    hazard = np.exp(stats.poisson.logpmf(lb - 1, mu) - log_survival)
    assert np.isfinite(gradient)
    np.testing.assert_allclose(gradient, y.sum() - y.size * mu * (1 + hazard), rtol=1e-9)
    # LOO's pointwise log-likelihood is the same density
    loo = get_family("poisson").log_likelihood(y, np.full((1, y.size), np.log(mu)), {}, None,
                                               {"lb": np.full(y.size, float(lb))})
    np.testing.assert_allclose(loo[0], rows, rtol=TIGHT)
