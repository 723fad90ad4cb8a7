"""The MAP-versus-mean lesson (its statistics against lme4 are in tests/statistical/test_modes.py) and centered versus non-centered (hierbayes.lessons.teaching).

One small-data design serves both: 8 levels of 2 rows, a group SD (0.3) far below the
residual SD (2), so each level's data say little next to the population spread. Its two
fits (centered and non-centered, group effects not collapsed) come from
``compare_parameterizations``; ``compare_map`` then reuses the non-centered fit.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import optimize  # noqa: E402

import hierbayes as hb  # noqa: E402
from hierbayes.lessons.teaching import with_parameterization  # noqa: E402


def small_data(seed: int = 2, levels: int = 8, per_level: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat([f"s{j}" for j in range(levels)], per_level)
    level = np.repeat(np.arange(levels), per_level)
    return pd.DataFrame({"g": g, "y": 1 + rng.normal(0, 0.3, levels)[level] + rng.normal(0, 2.0, g.size)})


@pytest.fixture(scope="module")
def comparison():
    model = hb.Model("y ~ 1 + (1 | g)", small_data())
    return hb.compare_parameterizations(model, draws=500, tune=300, chains=2, seed=2, target_accept=0.8)


def test_both_parameterizations_are_fitted_with_the_group_effects_in_the_model(comparison):
    assert list(comparison.fits) == ["centered", "non-centered"]
    for name, fit in comparison.fits.items():
        assert fit.model.parameterization == name
        assert fit.model.priors == hb.Model("y ~ 1 + (1 | g)", small_data()).priors
        assert "z_mean_g" in fit.posterior if name == "non-centered" else "u_g_0" in fit.posterior


def test_non_centered_samples_the_funnel_better(comparison):
    table = comparison.table
    assert list(table.columns) == ["divergences", "sampling_seconds", "min_ess_bulk", "worst_parameter",
                                   "ess_bulk_per_second", "max_r_hat"]
    for name, fit in comparison.fits.items():
        assert table.loc[name, "divergences"] == int(fit.idata["sample_stats"]["diverging"].sum())
        assert table.loc[name, "min_ess_bulk"] == pytest.approx(fit.summary()["ess_bulk"].min())
        assert table.loc[name, "ess_bulk_per_second"] == pytest.approx(
            table.loc[name, "min_ess_bulk"] / fit.timings["sample"])
    assert table.loc["centered", "worst_parameter"] == "sd(Intercept|g)"
    assert table.loc["non-centered", "min_ess_bulk"] > 2 * table.loc["centered", "min_ess_bulk"]
    # the non-centered chains reach far down the neck of the funnel, where the centered ones cannot go
    lowest = {name: np.log(fit.posterior["sd_g"].values).min() for name, fit in comparison.fits.items()}
    assert lowest["non-centered"] < lowest["centered"] - 1


def test_funnel_plots_side_by_side(comparison):
    fig = comparison.plot_funnel()
    assert len(fig.axes) == 2
    for ax, name in zip(fig.axes, ["centered", "non-centered"]):
        assert ax.get_title() == f"{name}: {int(comparison.table.loc[name, 'divergences'])} divergences"
        assert ax.get_ylabel() == "log sd(Intercept|g)"
        assert sum(len(c.get_offsets()) for c in ax.collections) == 2 * 500
    plt.close(fig)


def test_map_of_the_group_sd_collapses_far_below_the_posterior_mean(comparison):
    fit = comparison.fits["non-centered"]
    table = fit.compare_map()
    assert list(table.index) == list(fit.summary().index)
    assert list(table.columns) == ["joint_map", "marginal_mode", "mean", "sd", "2.5%", "97.5%"]
    sd = table.loc["sd(Intercept|g)"]
    assert sd["joint_map"] < 0.01 * sd["mean"] and sd["joint_map"] < sd["2.5%"]
    assert table.attrs["converged"] == {"joint_map": True, "marginal_mode": True}
    assert table.attrs["collapsed"] == ["sd(Intercept|g)"]
    # with the levels' effects at zero the mode of the rest is the model without the factor:
    # the intercept at the mean of y (its prior is centred there) and sigma maximizing
    # -n log s - S / (2 s^2) - s / sd(y), its Exponential(1 / sd(y)) prior included
    y = small_data()["y"].to_numpy()
    assert table.loc["Intercept", "joint_map"] == pytest.approx(y.mean(), abs=1e-3)
    S, n, rate = ((y - y.mean()) ** 2).sum(), y.size, 1 / y.std(ddof=1)
    sigma = optimize.brentq(lambda s: -n / s + S / s**3 - rate, 0.1, 10)
    assert table.loc["sigma", "joint_map"] == pytest.approx(sigma, rel=1e-3)


def test_the_mode_depends_on_the_parameterization_the_mean_does_not(comparison):
    fit = comparison.fits["non-centered"]
    own = fit.compare_map(parameterization=None)  # the non-centered coordinates the fit sampled in
    assert own.attrs["collapsed"] == []
    assert own.loc["sd(Intercept|g)", "joint_map"] > 0.3 * own.loc["sd(Intercept|g)", "mean"]
    means = {name: f.summary().loc["sd(Intercept|g)", "mean"] for name, f in comparison.fits.items()}
    sds = {name: f.summary().loc["sd(Intercept|g)", "sd"] for name, f in comparison.fits.items()}
    assert abs(means["centered"] - means["non-centered"]) < 2 * max(sds.values())


def test_with_parameterization_keeps_formula_data_family_and_priors():
    model = hb.Model("y ~ 1 + (1 | g)", small_data(), family="student_t", priors={"sd": hb.HalfNormal(0.5)})
    variant = with_parameterization(model, "centered")
    assert (variant.formula, variant.family, variant.priors) == (model.formula, model.family, model.priors)
    assert variant.parameterization == "centered" and variant.collapsed is False


def test_compare_parameterizations_needs_a_grouping_factor():
    with pytest.raises(hb.HierbayesError, match="no grouping factor"):
        hb.compare_parameterizations(hb.Model("y ~ 1", small_data()), draws=10, tune=10)
