"""Shrinkage of a family parameter's group effects (sigma="~ 1 + (1 | g)"), on its link scale (log sigma).

Every plotted number is recomputed here from the posterior draws with NumPy: the partial-pooling
estimate is the posterior mean of ``b_sigma + r_g__sigma``; a level's own estimate is the log of the
root mean square of its residuals from the fitted mean (the maximum of its gaussian likelihood over
sigma with the mean held at its posterior mean); complete pooling is the same over every row.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.viz.plots import _scale_label, shrinkage_arrows

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(2)
    n = rng.integers(6, 40, 12)
    g = np.repeat(np.arange(12), n)
    df = pd.DataFrame({"g": [f"lab{j:02d}" for j in g], "x": rng.normal(size=len(g))})
    df["y"] = 1 + 0.5 * df["x"] + rng.normal(0, 0.5, 12)[g] + rng.normal(0, np.exp(rng.normal(0, 0.5, 12))[g])
    return df


@pytest.fixture(scope="module")
def fit(data):
    formula = hb.Formula("y ~ x + (1 | g)", sigma="~ 1 + (1 | g)")
    return hb.Model(formula, data).fit(draws=300, tune=300, chains=2, seed=1, progressbar=False, warn=False)


def by_level(post, var: str, coef_dim: str, levels) -> np.ndarray:
    """Draws (chain, draw, level) of a factor's intercepts, in the order of ``levels``."""
    r = post[var].sel({coef_dim: "Intercept"}).transpose("chain", "draw", "g")
    return r.sel(g=list(levels)).values


def test_the_plotted_log_sigmas_are_the_draws_by_hand(fit, data):
    ax = fit.plot_shrinkage("g", part="sigma")
    table = fit.pooling("g", part="sigma")
    levels = table.index
    post = fit.posterior
    # partial pooling: b_sigma + r_g__sigma, draw by draw
    b_sigma = post["b_sigma"].sel(sigma_term="Intercept").values
    partial = (b_sigma[..., None] + by_level(post, "r_g__sigma", "g__sigma__coef", levels)).mean(axis=(0, 1))
    # no pooling: log RMS of each level's residuals from the posterior-mean fitted mean
    b = post["b"].transpose("chain", "draw", "term").values
    r = by_level(post, "r_g", "g__coef", levels)
    level = pd.Index(levels).get_indexer(data["g"])
    mu = (b[..., :1] + b[..., 1:] * data["x"].to_numpy() + r[..., level]).mean(axis=(0, 1))
    squares = pd.Series((data["y"].to_numpy() - mu) ** 2)
    own = np.log(np.sqrt(squares.groupby(level).mean().to_numpy()))
    complete = np.log(np.sqrt(squares.mean()))

    arrows = shrinkage_arrows(ax)
    assert len(arrows) == len(levels) == 12
    np.testing.assert_allclose([a.xyann[1] for a in arrows], own, atol=1e-6)
    np.testing.assert_allclose([a.xy[1] for a in arrows], partial, rtol=1e-12)
    horizontal = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    assert horizontal["population mean"] == pytest.approx(float(b_sigma.mean()), rel=1e-12)
    assert horizontal["complete pooling"] == pytest.approx(complete, abs=1e-6)
    np.testing.assert_allclose(table["n"], np.bincount(level))
    assert ax.get_ylabel() == "log sigma" and ax.get_title() == "Partial pooling of sigma_Intercept by g"
    assert table.attrs["scale"] == "log" and table.attrs["part"] == "sigma"
    assert table["pooling_factor"].between(0, 1).all() and (table["reason"] == "").all()
    # the interval behind each arrow is the equal-tailed 95% of the same draws
    draws = b_sigma[..., None] + by_level(post, "r_g__sigma", "g__sigma__coef", levels)
    np.testing.assert_allclose(table["2.5%"], np.quantile(draws.reshape(-1, 12), 0.025, axis=0), rtol=1e-10)


def test_the_mean_part_of_the_same_model_is_unchanged(fit):
    ax = fit.plot_shrinkage("g")
    table = fit.pooling("g")
    assert ax.get_ylabel() == "Intercept" and table.attrs["part"] is None and table.attrs["scale"] == "identity"
    np.testing.assert_allclose([a.xy[1] for a in shrinkage_arrows(ax)], table["partial_pooling"], rtol=1e-12)


def test_a_wrong_part_or_term_is_named(fit):
    with pytest.raises(hb.HierbayesError, match=r"'sgima' has no formula of its own in this model; the parameters "
                                                r"that do: \['sigma'\] \(part=None is the mean's formula\)"):
        fit.plot_shrinkage("g", part="sgima")
    with pytest.raises(hb.HierbayesError, match=r"'x' does not vary by 'g'; its varying coefficients are "
                                                r"\['Intercept'\]"):
        fit.pooling("g", "x", part="sigma")


def test_axis_labels_in_users_words():
    assert _scale_label("Intercept", "log", "sigma") == "log sigma"
    assert _scale_label("x", "log", "sigma") == "log sigma: x"
    assert _scale_label("Intercept", "logit", "zi") == "logit zi"
    assert _scale_label("Days", "identity") == "Days" and _scale_label("Intercept", "log") == "Intercept (log scale)"


def test_a_negative_binomial_shapes_own_estimates_are_scipys_maximum_likelihood():
    """alpha="~ 1 + (1 | g)": each level's log alpha maximises scipy's negative binomial likelihood of its
    counts, the mean held at its posterior mean."""
    from scipy import optimize, stats

    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(8), 40)
    df = pd.DataFrame({"g": [f"s{j}" for j in g], "x": rng.normal(size=len(g))})
    alpha, mu = np.exp(rng.normal(1, 0.5, 8))[g], np.exp(1 + 0.3 * df["x"])
    df["y"] = rng.negative_binomial(alpha, alpha / (alpha + mu))
    fit = hb.Model(hb.Formula("y ~ x + (1 | g)", alpha="~ 1 + (1 | g)"), df, "negative_binomial").fit(
        draws=200, tune=300, chains=2, seed=1, progressbar=False, warn=False)
    table = fit.pooling("g", part="alpha")
    post = fit.posterior
    b = post["b"].transpose("chain", "draw", "term").values
    level = pd.Index(table.index).get_indexer(df["g"])
    eta = b[..., :1] + b[..., 1:] * df["x"].to_numpy() + by_level(post, "r_g", "g__coef", table.index)[..., level]
    mean = np.exp(eta.mean(axis=(0, 1)))
    y = df["y"].to_numpy()
    for j, name in enumerate(table.index):
        rows = level == j

        def minus_log_likelihood(log_alpha, rows=rows):
            a = np.exp(log_alpha)
            return -stats.nbinom.logpmf(y[rows], a, a / (a + mean[rows])).sum()

        own = optimize.minimize_scalar(minus_log_likelihood, bounds=(-5, 8), method="bounded",
                                       options={"xatol": 1e-9}).x
        assert table.loc[name, "no_pooling"] == pytest.approx(own, abs=1e-5), name
    assert table.attrs["scale"] == "log" and fit.plot_shrinkage("g", part="alpha").get_ylabel() == "log alpha"
