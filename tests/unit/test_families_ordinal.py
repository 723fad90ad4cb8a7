"""The ordinal families cumulative and sratio: density, response coding, thresholds, predictions, refusals.

No sampling: the densities are checked against a hand computation with scipy's CDFs, the
predictions on a posterior written by hand, the labels and priors on the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import stats

import hierbayes as hb
from hierbayes.posterior.pooling import no_pooling
from hierbayes.posterior.predict import new_rows, predict_rows
from hierbayes.specification import names as N
from hierbayes.specification.families import get_family

CDF = {"logit": stats.logistic.cdf, "probit": stats.norm.cdf}
FAMILIES = [("cumulative", "logit"), ("cumulative", "probit"), ("sratio", "logit"), ("sratio", "probit")]


def hand_probabilities(family: str, link: str, eta: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """P(y = k), (..., N, K), written out category by category."""
    F = CDF[link](tau[..., None, :] - eta[..., None])  # (..., N, K-1)
    K = tau.shape[-1] + 1
    out = np.empty((*F.shape[:-1], K))
    for k in range(K):
        if family == "cumulative":
            upper = F[..., k] if k < K - 1 else 1.0
            lower = F[..., k - 1] if k > 0 else 0.0
            out[..., k] = upper - lower
        else:
            stop = F[..., k] if k < K - 1 else 1.0
            out[..., k] = stop * np.prod(1.0 - F[..., :k], axis=-1)
    return out


def ratings(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = np.digitize(x + rng.logistic(size=n), [-1.0, 0.0, 1.0])  # 0 .. 3
    labels = np.array(["poor", "fair", "good", "great"])[y]
    return pd.DataFrame({"rating": pd.Categorical(labels, ["poor", "fair", "good", "great"], ordered=True),
                         "score": y + 1, "x": x, "temp": np.where(rng.random(n) < 0.5, "cold", "warm"),
                         "g": [f"j{i % 6}" for i in range(n)]})


# --- the density ---------------------------------------------------------------------------------

@pytest.mark.parametrize("family, link", FAMILIES)
def test_pointwise_log_likelihood_equals_the_hand_computation(family, link):
    rng = np.random.default_rng(3)
    eta = rng.normal(0, 1.5, (3, 8))  # three draws of eight rows
    tau = np.sort(rng.normal(0, 1.5, (3, 3)), axis=-1) if family == "cumulative" else rng.normal(0, 1.5, (3, 3))
    y = np.array([0, 1, 2, 3, 3, 2, 1, 0], dtype=float)
    fam = get_family(family, link=link)
    ours = fam.log_likelihood(y, eta, {N.THRESHOLDS: tau})
    hand = np.log(np.take_along_axis(hand_probabilities(family, link, eta, tau), y.astype(int)[None, :, None], -1)[..., 0])
    assert ours.shape == eta.shape
    np.testing.assert_allclose(ours, hand, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fam.category_probabilities(eta, tau), hand_probabilities(family, link, eta, tau),
                               rtol=0, atol=1e-12)


# PyMC's OrderedProbit works through log_diff_normal_cdf, about 1e-8 from scipy's CDFs (which ours matches to 1e-10)
@pytest.mark.parametrize("link, distribution, rtol", [("logit", pm.OrderedLogistic, 1e-10),
                                                      ("probit", pm.OrderedProbit, 1e-7)])
def test_the_cumulative_density_is_pymcs_ordered_distribution(link, distribution, rtol):
    eta, tau = np.array([-2.0, 0.3, 1.1, 4.0]), np.array([-1.0, 0.5, 2.0])
    y = np.array([0.0, 1.0, 2.0, 3.0])
    pymc = pm.logp(distribution.dist(eta=eta, cutpoints=tau), y).eval()
    ours = get_family("cumulative", link=link).log_likelihood(y, eta, {N.THRESHOLDS: tau})
    np.testing.assert_allclose(ours, pymc, rtol=rtol)


@pytest.mark.parametrize("family, link", FAMILIES)
def test_draws_follow_the_category_probabilities(family, link):
    eta, tau = np.full(20_000, 0.4), np.array([-0.8, 0.1, 1.0])
    draws = get_family(family, link=link).draw(np.random.default_rng(1), eta, {N.THRESHOLDS: tau})
    shares = np.bincount(draws.astype(int), minlength=4) / draws.size
    np.testing.assert_allclose(shares, hand_probabilities(family, link, eta[:1], tau)[0], atol=0.015)


# --- the response -----------------------------------------------------------------------------------

def test_an_ordered_categorical_is_scored_by_its_position_and_numbers_by_themselves():
    df = ratings()
    model = hb.Model("rating ~ x", df, family="cumulative")
    assert model.design.categories == ("poor", "fair", "good", "great")
    np.testing.assert_array_equal(model.design.y, df["rating"].cat.codes + 1.0)
    np.testing.assert_array_equal(model.design.observed, df["rating"].cat.codes)
    codes = hb.Model("k ~ x", df.assign(k=df["score"].map({1: 1, 2: 2, 3: 5, 4: 10})), family="sratio").design
    assert codes.categories == (1, 2, 5, 10)
    np.testing.assert_array_equal(codes.category_scores, [1.0, 2.0, 5.0, 10.0])
    np.testing.assert_array_equal(codes.observed, df["score"] - 1)


@pytest.mark.parametrize("column, message", [
    (lambda df: df["rating"].astype(str), r"response 'rating' holds .*pd.Categorical\(df\['rating'\], .*ordered=True"),
    (lambda df: pd.Categorical(df["rating"].astype(str)), r"'rating' is an unordered categorical.*ordered=True"),
    (lambda df: pd.Categorical(df["rating"].astype(str), ["poor", "fair", "meh", "good", "great"], ordered=True),
     r"'rating' has categories without rows: \['meh'\].*remove_unused_categories"),
    (lambda df: (df["score"] > 2).astype(int), r"'rating' has 2 categories \[0, 1\].*family='bernoulli'"),
])
def test_a_response_without_a_known_order_of_three_categories_is_refused(column, message):
    df = ratings()
    df["rating"] = column(df)
    with pytest.raises(hb.DataError, match=message):
        hb.Model("rating ~ x", df, family="cumulative")


def test_cbind_is_refused_for_an_ordinal_family():
    with pytest.raises(hb.DataError, match=r"cumulative family takes one response column of ordered .*, not cbind\(\)"):
        hb.Model("cbind(score, score) ~ x", ratings(), family="cumulative")


# --- the thresholds take the intercept's place --------------------------------------------------------

def test_the_thresholds_replace_the_intercept_with_or_without_0_plus():
    df = ratings()
    designs = [hb.Model(f, df, family="cumulative").design
               for f in ("rating ~ x + temp", "rating ~ 0 + x + temp", "rating ~ x + temp - 1")]
    for d in designs:
        assert d.fixed_names == ("x", "temp[T.warm]")  # the factor keeps its reference level
        np.testing.assert_array_equal(d.X, designs[0].X)


def test_prior_summary_lists_the_thresholds_with_priors_at_the_categories_shares():
    df = ratings()
    model = hb.Model("rating ~ x + (1 | g)", df, family="cumulative")
    table = model.prior_summary()
    assert list(table.index[:4]) == ["Intercept[1]", "Intercept[2]", "Intercept[3]", "x"]
    assert set(table.loc[["Intercept[1]", "Intercept[2]", "Intercept[3]"], "class"]) == {"Intercept"}
    shares = np.cumsum(np.bincount(df["rating"].cat.codes)) / len(df)
    for k in (1, 2, 3):
        prior = model.priors[f"Intercept[{k}]"]
        assert prior.kind == "Normal" and prior.values["sigma"] == 2.5
        assert prior.values["mu"] == pytest.approx(np.log(shares[k - 1] / (1 - shares[k - 1])))
    sratio = hb.Model("rating ~ x", df, family="sratio", link="probit").priors  # P(y = k | y >= k)
    counts = np.bincount(df["rating"].cat.codes)
    assert sratio["Intercept[2]"].values["mu"] == pytest.approx(stats.norm.ppf(counts[1] / counts[1:].sum()))


def test_a_prior_for_the_class_intercept_sets_every_threshold_and_mixed_kinds_are_refused():
    df = ratings()
    model = hb.Model("rating ~ x", df, family="cumulative", priors={"Intercept": hb.StudentT(3, 0, 2.5)})
    assert {repr(model.priors[f"Intercept[{k}]"]) for k in (1, 2, 3)} == {"StudentT(nu=3, mu=0, sigma=2.5)"}
    assert model.pymc_model.initial_point()[N.ordered_value(N.THRESHOLDS_CENTERED)].tolist()  # ordered start
    with pytest.raises(hb.PriorError, match=r"Intercept\[1\] .. Intercept\[3\] are sampled as one ordered vector"):
        hb.Model("rating ~ x", df, family="cumulative", priors={"Intercept[2]": hb.StudentT(3, 0, 1)})


@pytest.mark.parametrize("family", ["cumulative", "sratio"])
def test_a_thresholds_only_model_starts_where_the_categories_have_their_shares(family):
    """``rating ~ 1``: the thresholds alone, starting at the default priors' centres, give each category its
    share of the data, so the response's log density there is ``sum_k n_k log(n_k / n)``."""
    df = ratings()
    model = hb.Model("rating ~ 1", df, family=family)
    assert model.design.fixed_names == ()
    counts = np.bincount(df["rating"].cat.codes)
    logp = model.pymc_model.point_logps(round_vals=12)["rating"]
    assert logp == pytest.approx(np.sum(counts * np.log(counts / counts.sum())), abs=1e-9)


def test_the_start_is_ordered_even_when_the_priors_locations_are_equal():
    from hierbayes.model.data import initial_values, model_data

    df = ratings()
    model = hb.Model("rating ~ x", df, family="cumulative", priors={"Intercept": hb.Normal(0, 3)})
    start = initial_values(model.design, model.family, model.priors,
                           model_data(model.design, model.family, model.priors))
    value = start[N.ordered_value(N.THRESHOLDS_CENTERED)]
    assert np.isfinite(value).all() and value.shape == (3,)


def test_the_model_samples_the_thresholds_at_the_slopes_means_and_records_them_on_the_datas_scale():
    df = ratings()
    df["x"] = df["x"] + 10.0
    m = hb.Model("rating ~ x + (1 | g)", df, family="cumulative", parameterization="non-centered").pymc_model
    point = {**m.initial_point(), N.ordered_value(N.THRESHOLDS_CENTERED): np.array([-1.0, 0.0, np.log(0.5)]),
             N.SLOPES: np.array([0.7])}
    recorded = m.compile_fn(m.replace_rvs_by_values([m[N.THRESHOLDS]])[0], inputs=m.value_vars,
                            on_unused_input="ignore")(point)
    np.testing.assert_allclose(recorded, np.array([-1.0, 0.0, 0.5]) + 0.7 * df["x"].mean())


# --- predictions on a posterior written by hand -----------------------------------------------------

def _posterior(model, b: float, tau: np.ndarray) -> xr.Dataset:
    levels = list(model.design.factors["g"].levels)
    return xr.Dataset({
        N.FIXED_EFFECTS: (("chain", "draw", N.FIXED_DIM), np.full((1, 2, 1), b)),
        N.THRESHOLDS: (("chain", "draw", N.THRESHOLD_DIM), np.broadcast_to(tau, (1, 2, tau.size))),
        "r_g": (("chain", "draw", "g", "g__coef"), np.zeros((1, 2, len(levels), 1))),
    }, coords={"chain": [0], "draw": [0, 1], N.FIXED_DIM: ["x"], N.THRESHOLD_DIM: ["1", "2", "3"],
               "g": levels, "g__coef": ["Intercept"]})


def test_summary_prints_the_thresholds_first_as_brms_labels_them():
    model = hb.Model("rating ~ x + (1 | g)", ratings(), family="cumulative")
    rng = np.random.default_rng(0)
    post = _posterior(model, 0.8, np.array([-1.0, 0.2, 1.5]))
    post = post.assign(sd_g=(("chain", "draw", "g__coef"), np.full((1, 2, 1), 0.5)))
    post = xr.concat([post, post], "chain").assign_coords(chain=[0, 1])
    post = post + 0.01 * xr.DataArray(rng.normal(size=(2, 2)), dims=("chain", "draw"))
    fit = hb.Fit(model, xr.DataTree.from_dict({"posterior": post}), sampler="nutpie")
    table = fit.summary()
    assert list(table.index) == ["Intercept[1]", "Intercept[2]", "Intercept[3]", "x", "sd(Intercept|g)"]
    np.testing.assert_allclose(table["mean"].iloc[:3], post[N.THRESHOLDS].mean(("chain", "draw")), atol=1e-12)
    assert list(fit.fixed_effects().index) == ["Intercept[1]", "Intercept[2]", "Intercept[3]", "x"]


@pytest.mark.parametrize("family", ["cumulative", "sratio"])
def test_predictions_are_the_scores_expected_value_probabilities_and_draws(family):
    df = ratings().assign(k=lambda d: d["score"].map({1: 1, 2: 2, 3: 5, 4: 10}))
    model = hb.Model("k ~ x + (1 | g)", df, family=family)
    tau = np.array([-1.0, 0.2, 1.5])
    post, rows = _posterior(model, 0.8, tau), new_rows(model, None)
    hand = hand_probabilities(family, "logit", 0.8 * df["x"].to_numpy(), tau)
    probabilities = predict_rows(model, post, rows, "probabilities", rng=np.random.default_rng(0))
    assert probabilities.dims == ("chain", "draw", "obs", "category")
    assert probabilities["category"].values.tolist() == ["1", "2", "5", "10"]
    np.testing.assert_allclose(probabilities.values[0, 0], hand, atol=1e-12)
    mean = predict_rows(model, post, rows, "mean", rng=np.random.default_rng(0))
    np.testing.assert_allclose(mean.values[0, 0], hand @ np.array([1.0, 2.0, 5.0, 10.0]), atol=1e-12)
    draws = predict_rows(model, post, rows, "response", rng=np.random.default_rng(0))
    assert set(np.unique(draws.values)) <= {1.0, 2.0, 5.0, 10.0}


def test_probabilities_of_a_family_without_categories_are_refused():
    df = ratings()
    model = hb.Model("score ~ x", df, family="poisson")
    post = xr.Dataset({N.FIXED_EFFECTS: (("chain", "draw", N.FIXED_DIM), np.zeros((1, 1, 2)))},
                      coords={"chain": [0], "draw": [0], N.FIXED_DIM: ["Intercept", "x"]})
    with pytest.raises(hb.HierbayesError, match="'poisson' family is not ordinal"):
        predict_rows(model, post, new_rows(model, None), "probabilities", rng=np.random.default_rng(0))


def test_new_rows_of_an_ordinal_model_leave_the_intercept_out():
    df = ratings()
    model = hb.Model("rating ~ x + temp", df, family="cumulative")
    rows = new_rows(model, pd.DataFrame({"x": [0.5], "temp": ["warm"]}), groups="population")
    assert rows.X.tolist() == [[0.5, 1.0]]


def test_pooling_of_an_ordinal_family_is_refused_naming_the_family():
    model = hb.Model("rating ~ x + (1 | g)", ratings(), family="sratio")
    with pytest.raises(hb.HierbayesError, match="'sratio' family is ordinal: the no- and complete-pooling"):
        no_pooling(model.design, model.family, "g")


def test_the_automatic_parameterization_and_collapse_choose_for_an_ordinal_model():
    model = hb.Model("rating ~ x + (1 | g)", ratings(), family="cumulative", parameterization="auto")
    assert model.parameterization["g"] in ("centered", "non-centered", "centered-intercept")
    assert not model.collapsed  # the collapsed model is gaussian only
    with pytest.raises(hb.HierbayesError, match="collapse=True is not possible"):
        hb.Model("rating ~ x + (1 | g)", ratings(), family="cumulative", collapse=True)


def test_the_cumulative_familys_icc_takes_the_latent_variables_variance():
    assert get_family("cumulative").icc_variance(np.zeros(2), {}).tolist() == [np.pi**2 / 3] * 2
    assert get_family("cumulative", link="probit").icc_variance(np.zeros(1), {}).tolist() == [1.0]
