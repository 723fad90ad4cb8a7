"""No, complete and partial pooling (hierbayes.posterior.pooling).

The classical fits are checked against statsmodels (OLS and GLM) on simulated data, with
no sampling; the partial-pooling side against the posterior draws of one gaussian fit on a
design built to show shrinkage (group sizes from 2 to 150 rows, a level-2 predictor).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import special, stats

import hierbayes as hb
from hierbayes.posterior.pooling import complete_pooling, level_columns, no_pooling
from hierbayes.specification.design import make_design
from hierbayes.specification.families import get_family
from hierbayes.specification.formula import parse

FIT = dict(draws=300, tune=300, chains=2, seed=5, progressbar=False, warn=False)
SIZES = [2, 2, 3, 4, 6, 10, 15, 25, 40, 60, 100, 150]


def design(formula, df, family="gaussian"):
    return make_design(parse(formula), df, get_family(family))


def dummies(g: np.ndarray) -> np.ndarray:
    codes, _ = pd.factorize(np.asarray(g), sort=True)
    return np.eye(codes.max() + 1)[codes]


def shrinkage_data(seed: int = 0) -> pd.DataFrame:
    """Levels of very different sizes, a level-2 predictor ``u``, noisy rows (sigma 2, tau 1)."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{j:02d}" for j in range(len(SIZES))], SIZES)
    u_level = rng.normal(0, 1, len(SIZES))
    level = pd.factorize(g, sort=True)[0]
    intercept = 1.0 + 0.8 * u_level + rng.normal(0, 1.0, len(SIZES))
    return pd.DataFrame({"g": g, "u": u_level[level], "y": intercept[level] + rng.normal(0, 2.0, g.size)})


# --- the classical fits, against statsmodels --------------------------------------------------------

def test_gaussian_no_pooling_is_least_squares_with_shared_columns():
    rng = np.random.default_rng(0)
    g = np.repeat(list("abcde"), [3, 5, 8, 2, 6])
    x = rng.normal(size=g.size)
    df = pd.DataFrame({"g": g, "x": x, "y": 1 + 0.5 * x + rng.normal(size=g.size)})
    est = no_pooling(design("y ~ x + (1 | g)", df), get_family("gaussian"), "g")
    ols = sm.OLS(df["y"].to_numpy(), np.column_stack([dummies(g), x])).fit()
    np.testing.assert_allclose(est.estimates[:, 0], ols.params[:5], rtol=1e-10)
    assert est.shared == pytest.approx({"x": ols.params[5]})
    assert est.reasons == ("",) * 5


def test_varying_slopes_without_shared_columns_are_separate_fits_per_level():
    rng = np.random.default_rng(1)
    g = np.repeat(list("abcd"), 7)
    x = rng.normal(size=g.size)
    df = pd.DataFrame({"g": g, "x": x, "y": 2 - x + rng.normal(size=g.size)})
    est = no_pooling(design("y ~ x + (x | g)", df), get_family("gaussian"), "g")
    for j, level in enumerate("abcd"):
        rows = df[df.g == level]
        slope, intercept = np.polyfit(rows.x, rows.y, 1)
        np.testing.assert_allclose(est.estimates[j], [intercept, slope], rtol=1e-9)
    assert est.coefficients == ("Intercept", "x")


def test_poisson_no_pooling_is_the_glm_with_offset_and_shared_slope():
    rng = np.random.default_rng(2)
    g = np.repeat(list("abcdef"), 20)
    x, w = rng.normal(size=g.size), rng.normal(size=g.size)
    exposure = rng.uniform(1, 3, g.size)
    level = pd.factorize(g, sort=True)[0]
    mu = exposure * np.exp(0.3 + rng.normal(0, 0.5, 6)[level] + (0.4 + rng.normal(0, 0.3, 6)[level]) * x - 0.2 * w)
    df = pd.DataFrame({"g": g, "x": x, "w": w, "t": exposure, "y": rng.poisson(mu)})
    d = design("y ~ x + w + (1 + x | g) + offset(np.log(t))", df, "poisson")
    est = no_pooling(d, get_family("poisson"), "g")
    D = dummies(g)
    X = np.column_stack([D, D * x[:, None], w])
    glm = sm.GLM(df["y"].to_numpy(), X, family=sm.families.Poisson(), offset=np.log(exposure)).fit(tol=1e-12)
    np.testing.assert_allclose(est.estimates, np.column_stack([glm.params[:6], glm.params[6:12]]), rtol=1e-6)
    assert est.shared["w"] == pytest.approx(glm.params[12], rel=1e-6)
    cp = complete_pooling(d, get_family("poisson"))
    glm_cp = sm.GLM(df["y"].to_numpy(), sm.add_constant(np.column_stack([x, w])), family=sm.families.Poisson(),
                    offset=np.log(exposure)).fit(tol=1e-12)
    np.testing.assert_allclose(cp, glm_cp.params, rtol=1e-6)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_binomial_no_pooling_is_each_levels_proportion_on_the_link_scale(link):
    df = pd.DataFrame({"g": list("aabbcc"), "s": [3, 1, 2, 2, 9, 5], "f": [2, 4, 6, 2, 1, 5]})
    d = design("cbind(s, f) ~ 1 + (1 | g)", df, "binomial")
    est = no_pooling(d, get_family("binomial", link), "g")
    p = np.array([4 / 10, 4 / 12, 14 / 20])
    forward = special.logit if link == "logit" else stats.norm.ppf
    np.testing.assert_allclose(est.estimates[:, 0], forward(p), rtol=1e-8)
    np.testing.assert_allclose(complete_pooling(d, get_family("binomial", link)), [forward(22 / 42)], rtol=1e-8)


def test_complete_pooling_is_ols_ignoring_the_factor():
    df = shrinkage_data()
    d = design("y ~ u + (1 | g)", df)
    ols = sm.OLS(df["y"], sm.add_constant(df["u"])).fit()
    np.testing.assert_allclose(complete_pooling(d, get_family("gaussian")), ols.params.to_numpy(), rtol=1e-10)


# --- levels that cannot identify their coefficients -------------------------------------------------

def test_unidentified_levels_are_nan_with_the_reason():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": list("aaaabbbbbc"), "x": [0, 1, 2, 3, 5, 5, 5, 5, 5, 1.0]})
    df["y"] = 1 + df["x"] + rng.normal(size=len(df))
    est = no_pooling(design("y ~ x + (x | g)", df), get_family("gaussian"), "g")
    assert np.isfinite(est.estimates[0]).all() and est.reasons[0] == ""
    assert np.isnan(est.estimates[1]).all()
    assert est.reasons[1] == "'x' takes the single value 5 in this level"
    assert np.isnan(est.estimates[2]).all() and est.reasons[2] == "1 observation for 2 coefficients"
    # level a alone identifies its line: the estimate is its own least-squares fit
    rows = df[df.g == "a"]
    np.testing.assert_allclose(est.estimates[0][::-1], np.polyfit(rows.x, rows.y, 1), rtol=1e-9)


def test_glm_levels_at_the_boundary_or_separated_have_no_finite_estimate():
    counts = pd.DataFrame({"g": list("aaabbbccc"), "y": [0, 0, 0, 1, 3, 2, 4, 0, 5]})
    est = no_pooling(design("y ~ 1 + (1 | g)", counts, "poisson"), get_family("poisson"), "g")
    assert np.isnan(est.estimates[0, 0])
    assert est.reasons[0] == "every response is 0, so the estimate is minus infinity on the log scale"
    np.testing.assert_allclose(est.estimates[1:, 0], np.log([2.0, 3.0]), rtol=1e-8)

    x = [-2.0, -1.0, 1.0, 2.0] * 3
    y = [0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0]  # level a: x separates the outcomes
    binary = pd.DataFrame({"g": np.repeat(list("abc"), 4), "x": x, "y": y})
    est = no_pooling(design("y ~ x + (x | g)", binary, "bernoulli"), get_family("bernoulli"), "g")
    assert est.reasons[0] == "no finite estimate: the level's responses are separated by its predictors"
    assert np.isnan(est.estimates[0]).all() and np.isfinite(est.estimates[1:]).all()
    for j, level in enumerate("bc"):
        rows = binary[binary.g == level]
        glm = sm.GLM(rows.y, sm.add_constant(rows.x), family=sm.families.Binomial()).fit(tol=1e-12)
        np.testing.assert_allclose(est.estimates[j + 1], glm.params, rtol=1e-6, atol=1e-10)


def test_level_two_predictors_and_cross_level_interactions_belong_to_the_level_coefficients():
    rng = np.random.default_rng(4)
    g = np.repeat(list("abc"), 4)
    u = np.repeat([0.5, -1.0, 2.0], 4)
    df = pd.DataFrame({"g": g, "u": u, "x": rng.normal(size=12), "w": rng.normal(size=12), "y": rng.normal(size=12)})
    d = design("y ~ x * u + w + (x | g)", df)
    cols = {coef: [(d.fixed_names[c], w.tolist()) for c, w in pairs]
            for coef, pairs in level_columns(d, "g").items()}
    assert cols == {"Intercept": [("Intercept", [1.0] * 3), ("u", [0.5, -1.0, 2.0])],
                    "x": [("x", [1.0] * 3), ("x:u", [0.5, -1.0, 2.0])]}
    assert list(no_pooling(d, get_family("gaussian"), "g").shared) == ["w"]


# --- partial pooling from a fit ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def shrinkage_fit():
    return hb.Model("y ~ u + (1 | g)", shrinkage_data()).fit(**FIT)


def test_pooling_table_puts_the_three_estimates_side_by_side(shrinkage_fit):
    fit, df = shrinkage_fit, shrinkage_data()
    table = fit.pooling("g")
    assert list(table.columns) == ["n", "no_pooling", "complete_pooling", "population", "partial_pooling",
                                   "partial_sd", "2.5%", "97.5%", "pooling_factor", "reason"]
    assert table["n"].tolist() == SIZES
    # no pooling: each county's own mean (u is constant within a level, so it is absorbed)
    np.testing.assert_allclose(table["no_pooling"], df.groupby("g")["y"].mean(), rtol=1e-10)
    ols = sm.OLS(df["y"], sm.add_constant(df["u"])).fit()
    np.testing.assert_allclose(table["complete_pooling"], ols.params["const"] + ols.params["u"] * df.groupby("g")["u"].first())
    # partial pooling: b_Intercept + b_u * u_j + r_j, draw by draw
    post = fit.posterior
    u_level = df.groupby("g")["u"].first().to_numpy()
    b = post["b"].transpose("chain", "draw", "term").values
    draws = b[..., 0, None] + b[..., 1, None] * u_level + post["r_g"].sel(g__coef="Intercept").transpose(
        "chain", "draw", "g").values
    np.testing.assert_allclose(table["partial_pooling"], draws.mean(axis=(0, 1)))
    np.testing.assert_allclose(table["97.5%"], np.quantile(draws.reshape(-1, 12), 0.975, axis=0))
    np.testing.assert_allclose(table["population"], (b[..., 0, None] + b[..., 1, None] * u_level).mean(axis=(0, 1)))
    assert table.attrs == {"factor": "g", "term": "Intercept", "scale": "identity", "prob": 0.95, "part": None}


def test_pooling_factors_lie_in_0_1_and_fall_with_group_size(shrinkage_fit):
    table = shrinkage_fit.pooling("g")
    factor = table["pooling_factor"]
    assert factor.notna().all() and factor.between(0, 1).all()
    assert stats.spearmanr(table["n"], factor).statistic < -0.8
    # in the one-way normal model the factor is (s^2/n) / (s^2/n + tau^2): about 0.67 at n = 2 and
    # 0.03 at n = 150 here
    assert factor.iloc[:3].mean() > 0.45 and factor.iloc[-3:].mean() < 0.15


def test_pooling_factor_matches_its_definition(shrinkage_fit):
    t = shrinkage_fit.pooling("g", prob=0.9)
    ratio = (t["no_pooling"] - t["partial_pooling"]) / (t["no_pooling"] - t["population"])
    np.testing.assert_allclose(t["pooling_factor"], ratio.clip(0, 1))
    assert {"5%", "95%"} <= set(t.columns)


def test_pooling_names_a_wrong_factor_or_term(shrinkage_fit):
    with pytest.raises(hb.HierbayesError, match=r"'county' is not a grouping factor of this model; the factors are \['g'\]"):
        shrinkage_fit.pooling("county")
    with pytest.raises(hb.HierbayesError, match=r"'u' does not vary by 'g'; its varying coefficients are \['Intercept'\]"):
        shrinkage_fit.pooling("g", "u")
