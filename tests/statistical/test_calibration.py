"""Simulation-based calibration: a reduced run over every kind of group term, and a broken model.

One structure holds the five kinds of group terms, so CI pays for one compile:
``(x | g)`` (varying intercept and a correlated slope, with the correlation ranked),
``(z || g:c)`` (an uncorrelated block on a factor nested in ``g``) and ``(1 | h)`` (a
factor crossed with ``g``). Twenty simulations with short chains are enough to catch a
model that is wrong in a way that matters: the broken model below is the same compiled
model fed slope columns twice their size, so its varying slopes enter the linear predictor
wrongly scaled, and calibration flags them. It reuses the compiled model, so it costs
sampling only. The full run over structures and families is ``validation/run_sbc.py``
(results in ``validation/results.md`` and ``validation/results_families.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.common.errors import HierbayesError
from hierbayes.lessons.calibration import (
    Calibration,
    calibrate,
    calibration_data,
    draw_prior,
    plot_ranks,
    simulate_truth,
    tracked_parameters,
)
from hierbayes.model import data as contract

QUICK = dict(n_sims=20, draws=100, tune=100, chains=2, thin=2)
FORMULA = "y ~ x + (x | g) + (z || g:c) + (1 | h)"


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return calibration_data(groups=8, per_group=6, crossed=4, nested=3, seed=1)


@pytest.fixture(scope="module")
def correct(data) -> Calibration:
    return calibrate(FORMULA, data, seed=3, **QUICK)


@pytest.fixture(scope="module")
def broken(data, correct) -> Calibration:
    """The same model with its varying-slope column for ``g`` doubled: ``2 x`` times the slope effect."""
    original = contract.model_data

    def doubled_slopes(*args, **kwargs):
        values = original(*args, **kwargs)
        return {**values, "Z_g": 2.0 * values["Z_g"]}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(contract, "model_data", doubled_slopes)
        return calibrate(FORMULA, data, seed=3, **QUICK)


# --- reduced SBC ----------------------------------------------------------------------------------

def test_every_kind_of_group_term_is_calibrated(correct):
    assert list(correct.ranks.columns) == [
        "Intercept", "x", "sd(Intercept|g)", "sd(x|g)", "cor(Intercept,x|g)", "sd(Intercept|g:c)", "sd(z|g:c)",
        "sd(Intercept|h)", "sigma", "r_g[g0,Intercept]", "r_g[g0,x]", "r_g:c[g0:c0,Intercept]", "r_g:c[g0:c0,z]",
        "r_h[h0,Intercept]"]
    assert not any(label.startswith("cor(") and "g:c" in label for label in correct.ranks.columns)  # || block
    assert correct.n_draws == 100  # 2 chains x 100 draws, every 2nd kept
    ranks = correct.ranks.to_numpy()
    assert ranks.min() >= 0 and ranks.max() <= correct.n_draws
    table = correct.table()
    assert table["ok"].all(), table
    assert correct.passed()
    assert (table["mean_rank"] - 0.5).abs().max() < 0.2
    assert correct.divergences.shape == (20,)


def test_wrongly_scaled_slope_effects_are_caught(broken, correct):
    table = broken.table()
    # the model needs only half the slope SD the data were made with: the truth sits above the posterior
    assert "sd(x|g)" in broken.failed(), table
    assert table.loc["sd(x|g)", "mean_rank"] > 0.75
    assert not broken.passed() and correct.passed()
    assert table.loc["sd(Intercept|h)", "ok"]  # parts of the model that are right stay calibrated
    assert "NOT calibrated" in repr(broken)


# --- the pieces, without sampling -----------------------------------------------------------------

def test_simulated_group_effects_have_the_drawn_sds_and_correlation():
    df = calibration_data(groups=3000, per_group=2, seed=2)
    m = hb.Model("y ~ x + (x | g)", df)
    theta = {"Intercept": 1.0, "x": 2.0, "sd(Intercept|g)": 1.5, "sd(x|g)": 0.5, "sigma": 0.01,
             "cor(Intercept,x|g)": np.linalg.cholesky(np.array([[1.0, -0.6], [-0.6, 1.0]]))}
    truth, y = simulate_truth(m.design, m.family, m.priors, theta, np.random.default_rng(5))
    r = truth["r_g"].values[0, 0]
    assert np.std(r[:, 0]) == pytest.approx(1.5, rel=0.05)
    assert np.std(r[:, 1]) == pytest.approx(0.5, rel=0.05)
    assert np.corrcoef(r.T)[0, 1] == pytest.approx(-0.6, abs=0.04)
    assert float(truth["cor_g"].values.squeeze()) == pytest.approx(-0.6)
    # the Intercept prior is on centred predictors: the original-scale intercept moves by -slope * mean(x)
    b = truth["b"].sel(term="Intercept").item()
    assert b == pytest.approx(1.0 - 2.0 * df["x"].mean())
    # the response follows the linear predictor (sigma is tiny)
    g = m.design.factors["g"].index
    expected = b + 2.0 * df["x"] + r[g, 0] + r[g, 1] * df["x"]
    np.testing.assert_allclose(y, expected, atol=0.05)


def test_prior_draws_follow_the_priors_in_force():
    df = calibration_data(groups=5, per_group=4, seed=3)
    m = hb.Model("y ~ x + (x | g)", df, priors={"x": hb.Normal(3, 0.1), "sd": hb.HalfNormal(2), "cor": hb.LKJ(1)})
    draws = draw_prior(m.priors, m.design, 2000, np.random.default_rng(0))
    assert set(draws) == set(m.priors)
    assert draws["x"].mean() == pytest.approx(3, abs=0.01)
    assert draws["sd(x|g)"].min() > 0 and draws["sd(x|g)"].mean() == pytest.approx(2 * np.sqrt(2 / np.pi), rel=0.05)
    chol = draws["cor(Intercept,x|g)"]
    assert chol.shape == (2000, 2, 2)
    corr = chol @ np.swapaxes(chol, 1, 2)
    np.testing.assert_allclose(corr[:, 0, 0], 1.0)
    assert corr[:, 0, 1].std() == pytest.approx(np.sqrt(1 / 3), rel=0.05)  # LKJ(1) in 2-D: uniform on (-1, 1)
    labels = [p.label for p in tracked_parameters(m.design, m.family)]
    assert labels[-2:] == ["r_g[g0,Intercept]", "r_g[g0,x]"]


def _calibration(ranks: np.ndarray, n_draws: int = 100) -> Calibration:
    return Calibration("y ~ x + (1 | g)", "gaussian", pd.DataFrame(ranks, columns=["a", "b"]), n_draws,
                       np.zeros(len(ranks), int), seed=1)


def test_uniformity_tests_pass_uniform_ranks_and_fail_skewed_ones():
    rng = np.random.default_rng(8)
    uniform = _calibration(rng.integers(0, 101, size=(200, 2)))
    assert uniform.passed()
    assert uniform.table()["p_chi2"].min() > 0.01
    too_high = rng.integers(0, 101, size=(200, 2))
    too_high[:, 1] = rng.integers(80, 101, size=200)  # truth above the posterior: underestimated
    assert _calibration(too_high).failed() == ["b"]
    too_central = rng.integers(0, 101, size=(200, 2))
    too_central[:, 0] = rng.integers(30, 71, size=200)  # posterior too wide
    assert _calibration(too_central).failed() == ["a"]
    assert 0.0 <= uniform.fractional_ranks().to_numpy().min() and uniform.fractional_ranks().to_numpy().max() < 1.0


def test_refits_whose_chains_disagree_are_told_apart_by_rhat(correct):
    rng = np.random.default_rng(5)
    # ten refits stuck with their ranks all at 0: the full calibration fails, the converged ones pass
    ranks = rng.integers(0, 101, size=(200, 2))
    ranks[:10, 1] = 0
    rhat = np.r_[np.full(10, 1.6), np.full(190, 1.003)]
    cal = Calibration("y ~ x + (1 | g)", "gaussian", pd.DataFrame(ranks, columns=["a", "b"]), 100,
                      np.zeros(200, int), seed=1, rhat=rhat)
    assert cal.failed() == ["b"]
    assert cal.unconverged().sum() == 10 and cal.unconverged(threshold=2.0).sum() == 0
    kept = cal.converged()
    assert kept.n_sims == 190 and kept.passed() and len(kept.divergences) == 190
    assert "chains disagreed (R-hat > 1.01) in 10" in repr(cal)
    with pytest.raises(HierbayesError, match="no R-hat record"):
        _calibration(ranks).converged()
    # calibrate keeps one R-hat per refit (tests/integration/test_parameterization_refits.py: stuck chains' is high)
    assert correct.rhat.shape == (correct.n_sims,) and np.all(np.isfinite(correct.rhat))
    assert np.all(correct.rhat > 0.99)


def test_plot_ranks_draws_one_panel_per_parameter():
    import matplotlib.pyplot as plt
    from arviz_plots import PlotCollection

    cal = _calibration(np.random.default_rng(1).integers(0, 101, size=(40, 2)))
    fig = plot_ranks(cal, kind="hist")
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["a", "b"]
    plt.close(fig)
    pc = plot_ranks(cal, parameters=["b"])
    assert isinstance(pc, PlotCollection)
    assert list(pc.data.data_vars) == ["b"]
    plt.close("all")
    with pytest.raises(HierbayesError, match="no ranks for 'c'"):
        plot_ranks(cal, parameters=["c"])
    with pytest.raises(HierbayesError, match="kind must be"):
        plot_ranks(cal, kind="violin")


def test_calibrate_refuses_bad_requests(data):
    with pytest.raises(HierbayesError, match="'np.log\\(count \\+ 1\\)' is an expression"):
        calibrate("np.log(count + 1) ~ x + (1 | g)", data, n_sims=2)
    with pytest.raises(HierbayesError, match="n_sims must be a positive whole number"):
        calibrate("y ~ x + (1 | g)", data, n_sims=0)
    with pytest.raises(HierbayesError, match="thin must be"):
        calibrate("y ~ x + (1 | g)", data, n_sims=2, thin=0)


def test_calibrate_gives_up_when_priors_make_every_data_set_degenerate(data):
    # an intercept near 20 on the logit scale makes every simulated response all ones
    priors = {"Intercept": hb.Normal(20, 0.1), "sd": hb.HalfNormal(0.01)}
    with pytest.raises(HierbayesError, match="simulated data sets were refused"):
        calibrate("binary ~ 1 + (1 | g)", data, "bernoulli", priors=priors, n_sims=2, seed=1)


TINY = dict(n_sims=2, draws=40, tune=60, chains=2, thin=2, seed=4)


@pytest.mark.parametrize("formula, family", [(hb.Formula("y ~ x + (1 | g)", sigma="~ x + (1 | g)"), "gaussian"), ("rating ~ x + (1 | g)", "sratio")],
                         ids=["sigma formula", "sratio"])
def test_a_tiny_calibration_ranks_every_printed_parameter(formula, family):
    data = calibration_data(groups=8, per_group=5, seed=2)
    cal = calibrate(formula, data, family, **TINY)
    model = hb.Model(formula, data, family)
    assert list(cal.ranks.columns) == [p.label for p in tracked_parameters(model.design, model.family)]
    assert cal.n_sims == 2 and cal.n_draws == 40
    assert ((cal.ranks >= 0) & (cal.ranks <= cal.n_draws)).all().all()
    assert cal.settings["parameterization"] == "auto"  # the path users get
