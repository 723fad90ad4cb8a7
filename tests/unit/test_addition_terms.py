"""brms's addition terms on the response (``y | weights(w) + cens(c, y2) + trunc(lb = 0) + se(s)``),
without sampling: parsing, refusals, and each row's log-likelihood against scipy.stats.

The pointwise log-likelihood is checked twice: through ``Family.log_likelihood`` (what LOO
stores) and through the PyMC model's own observed variable (what the sampler runs), so the
two cannot drift apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.common.errors import DataError, FormulaError
from hierbayes.model.collapsed import collapse_reason
from hierbayes.posterior.predict import new_rows
from hierbayes.specification.families import get_family
from hierbayes.specification.formula import Addition, parse

# --- parsing ---------------------------------------------------------------------------------------

PARSED = {
    "y | trials(n) ~ x": ("y", [Addition("trials", (("trials", "n"),))]),
    "y | weights(w) ~ x": ("y", [Addition("weights", (("weights", "w"),))]),
    "y | cens(c) ~ x": ("y", [Addition("cens", (("cens", "c"),))]),
    "y | cens(c, y2) ~ x": ("y", [Addition("cens", (("cens", "c"), ("y2", "y2")))]),
    "y | cens(c, y2 = upper) ~ x": ("y", [Addition("cens", (("cens", "c"), ("y2", "upper")))]),
    "y | trunc(lb = 0) ~ x": ("y", [Addition("trunc", (("lb", "0"),))]),
    "y | trunc(ub = top, lb = -2.5) ~ x": ("y", [Addition("trunc", (("lb", "-2.5"), ("ub", "top")))]),
    "y | trunc(0, 10) ~ x": ("y", [Addition("trunc", (("lb", "0"), ("ub", "10")))]),
    "y | se(s) ~ x": ("y", [Addition("se", (("se", "s"),))]),
    "y | se(s, sigma = TRUE) ~ x": ("y", [Addition("se", (("se", "s"), ("sigma", "TRUE")))]),
    "y|se(s,sigma=T)~x": ("y", [Addition("se", (("se", "s"), ("sigma", "TRUE")))]),
    "log(y) | weights(w) + trunc(lb = 0) ~ x + (1 | g)": (
        "log(y)", [Addition("weights", (("weights", "w"),)), Addition("trunc", (("lb", "0"),))]),
    "y | weights(w / 2) + cens(c, y2) + se(s, sigma = FALSE) ~ 1": (
        "y", [Addition("weights", (("weights", "w / 2"),)), Addition("cens", (("cens", "c"), ("y2", "y2"))),
              Addition("se", (("se", "s"), ("sigma", "FALSE")))]),
}


@pytest.mark.parametrize("formula", list(PARSED))
def test_addition_terms_are_parsed(formula):
    response = parse(formula).response
    expr, additions = PARSED[formula]
    assert response.expr == expr
    assert list(response.additions) == additions


def test_the_right_hand_side_is_untouched_by_the_additions():
    spec = parse("y | weights(w) ~ x + (1 | g)")
    assert (spec.fixed, [b.factor for b in spec.blocks], spec.response.failures) == ("x", ["g"], None)
    assert parse("cbind(s, f) ~ x").response.additions == ()


REFUSED = {
    "y | foo(x) ~ 1": r"unknown addition term 'foo\(x\)' on the response; the addition terms are trials\(\), "
                      r"weights\(\), cens\(\), trunc\(\), se\(\)",
    "y | weights ~ 1": r"unknown addition term 'weights'",
    "y | weights(w) + weights(v) ~ 1": r"the addition term weights\(\) is given twice",
    "y | weights(w, scale = TRUE) ~ 1": r"weights\(\) takes the arguments weights; not 'scale = TRUE'",
    "y | trunc() ~ 1": r"trunc\(\) needs a bound",
    "y | trunc(lb = log(x)) ~ 1": r"trunc\(\): lb must be a number or a column name",
    "y | se(s, sigma = maybe) ~ 1": r"se\(\): sigma must be TRUE or FALSE, not 'maybe'",
    "y | cens(y2 = u) ~ 1": r"cens\(\) needs its first argument, cens",
    "cbind(s, f) | trials(n) ~ 1": r"cbind\(successes, failures\) already gives the trials",
    "y | weights(w) | se(s) ~ 1": r"the response takes one '\|'",
    " | weights(w) ~ 1": r"no response before '\|'",
}


@pytest.mark.parametrize("formula", list(REFUSED))
def test_malformed_addition_terms_are_refused_with_the_term(formula):
    with pytest.raises(FormulaError, match=REFUSED[formula]):
        parse(formula)


# --- refusals by family and by data ------------------------------------------------------------------

def frame(n: int = 12, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.normal(5.0, 1.0, n)
    return pd.DataFrame({"y": y, "count": rng.poisson(3.0, n).astype(float), "hits": rng.binomial(8, 0.4, n),
                         "n": 8, "w": rng.uniform(0.5, 2.0, n), "s": rng.uniform(0.5, 1.5, n),
                         "c": ["none", "left", "right", "interval"] * (n // 4), "y2": y + 1.0, "low": 0.0,
                         "top": 20.0, "slept": rng.integers(0, 2, n), "g": np.repeat(list("abcd"), n // 4)})


FAMILY_REFUSALS = [
    ("y | trials(n) ~ 1", "gaussian", r"trials\(n\) gives the number of trials of a binomial response; the gaussian "
                                      r"family has no trials"),
    ("slept | trials(n) ~ 1", "bernoulli", r"trials\(n\) .* the bernoulli family has no trials"),
    ("count | se(s) ~ 1", "poisson", r"se\(s\) is a known standard error of a gaussian response; the poisson family"),
    ("y | se(s) ~ 1", "student_t", r"se\(s\) .* the student_t family does not take it"),
    ("slept | cens(c) ~ 1", "bernoulli", r"cens\(c\): the bernoulli family's response cannot be censored"),
    ("hits | trials(n) + trunc(ub = 5) ~ 1", "binomial", r"trunc\(ub = 5\): the binomial family's response cannot be"),
]


@pytest.mark.parametrize("formula, family, message", FAMILY_REFUSALS)
def test_a_term_the_family_does_not_take_is_refused_naming_both(formula, family, message):
    with pytest.raises(FormulaError, match=message):
        hb.Model(formula, frame(), family)


def test_a_family_without_a_distribution_cannot_be_weighted_censored_or_truncated():
    bare = hb.Family(**{**get_family("gaussian").__dict__, "name": "bare", "distribution": None})
    with pytest.raises(FormulaError, match=r"weights\(w\) needs the bare family's distribution"):
        hb.Model("y | weights(w) ~ 1", frame(), bare)


def _with(column, rows, value):
    def change(d):
        d = d.copy()
        d[column] = d[column].astype(object if isinstance(value, str) else float)
        d.loc[rows, column] = value
        return d
    return change


DATA_REFUSALS = {
    "censoring code": ("y | cens(c, y2) ~ 1", "gaussian", _with("c", [2, 7], "up"),
                       r"cens\(c\): 'up' is not a censoring code on 2 rows \(first at rows \[2, 7\]\); a row is "
                       r"'none', 'left', 'right' or 'interval'"),
    "interval without y2": ("y | cens(c) ~ 1", "gaussian", None,
                            r"cens\(c\) has 'interval' on 3 rows \(first at rows \[3, 7, 11\]\); their upper bound "
                            r"comes from cens\(c, y2\)"),
    "interval upper bound below y": ("y | cens(c, y2) ~ 1", "gaussian", _with("y2", [7], 0.0),
                                     r"an interval's upper bound must be above the response; it is not on 1 rows "
                                     r"\(first at rows \[7\]\)"),
    "negative weights": ("y | weights(w) ~ 1", "gaussian", _with("w", [4], -1.0),
                         r"weights\(w\) must be 0 or more; found -1 on 1 rows \(first at rows \[4\]\)"),
    "infinite weights": ("y | weights(w) ~ 1", "gaussian", _with("w", [4], np.inf),
                         r"column 'w' has 1 infinite values"),
    "outside the truncation": ("y | trunc(lb = 5) ~ 1", "gaussian", None,
                               r"trunc\(lb = 5\): the response lies outside the truncation bounds on \d+ rows "
                               r"\(first at rows \[\d"),
    "outside a column bound": ("count | trunc(ub = top) ~ 1", "poisson", _with("top", [1, 5], 0.5),
                               r"outside the truncation bounds on 2 rows \(first at rows \[1, 5\]\)"),
    "empty truncation": ("y | trunc(lb = y, ub = y) ~ 1", "gaussian", None,
                         r"trunc\(lb = y, ub = y\): the lower bound is not below the upper bound on 12 rows"),
    "se not positive": ("y | se(s) ~ 1", "gaussian", _with("s", [3], 0.0),
                        r"se\(s\) must be above 0; found 0 on 1 rows \(first at rows \[3\]\)"),
    "se negative with sigma": ("y | se(s, sigma = TRUE) ~ 1", "gaussian", _with("s", [3], -0.1),
                               r"se\(s\) must be 0 or more; found -0.1"),
    "trials not whole": ("hits | trials(n) ~ 1", "binomial", _with("n", [0], 8.5),
                         r"trials 'n' must hold non-negative whole counts; found 8.5"),
    "successes above trials() ": ("hits | trials(n) ~ 1", "binomial", _with("n", [0, 1], 0),
                                  r"successes exceed trials in 'hits'"),
}


@pytest.mark.parametrize("case", list(DATA_REFUSALS))
def test_addition_data_are_checked_naming_the_term_and_rows(case):
    formula, family, change, message = DATA_REFUSALS[case]
    data = frame() if change is None else change(frame())
    with pytest.raises(DataError, match=message):
        hb.Model(formula, data, family)


def test_missing_values_in_an_addition_column_drop_their_rows():
    data = frame()
    data.loc[[1, 2], "w"] = np.nan
    with pytest.warns(hb.DataWarning, match=r"dropped 2 of 12 rows with missing values in 'w' \(2\)"):
        model = hb.Model("y | weights(w) ~ 1", data)
    assert model.design.additions["weights"].shape == (10,)


def test_censoring_takes_brms_words_codes_and_logicals():
    data = frame().assign(c=["none", "Left", "RIGHT", "interval"] * 3)
    words = hb.Model("y | cens(c, y2) ~ 1", data).design.additions["cens"]
    codes = hb.Model("y | cens(c, y2) ~ 1", data.assign(c=[0, -1, 1, 2] * 3)).design.additions["cens"]
    logical = hb.Model("y | cens(c) ~ 1", data.assign(c=[False, True] * 6)).design.additions["cens"]
    assert words.tolist() == codes.tolist() == [0, -1, 1, 2] * 3
    assert logical.tolist() == [0, 1] * 6


# --- the log-likelihood against scipy.stats ---------------------------------------------------------

MU, SIGMA = 4.6, 1.3
Y = np.array([3.1, 4.0, 5.2, 6.9, 4.4, 2.5])
CODE = np.array([0.0, -1, 1, 2, 2, 0])
Y2 = np.array([3.1, 4.0, 5.2, 7.5, 6.0, 2.5])
W = np.array([1.0, 2.0, 0.0, 0.5, 3.0, 1.0])
SE = np.array([0.4, 1.0, 2.0, 0.3, 0.7, 1.1])
LB, UB = np.full(6, 2.0), np.array([8.0, 9.0, 7.0, 10.0, 8.0, 8.0])
N = stats.norm(MU, SIGMA)


def _censored(dist, y=Y, y2=Y2, code=CODE):
    with np.errstate(divide="ignore"):  # the interval's formula on the other rows, where y2 = y
        return np.select([code == 0, code == -1, code == 1, code == 2],
                         [dist.logpdf(y) if hasattr(dist, "logpdf") else dist.logpmf(y), dist.logcdf(y),
                          dist.logsf(y), np.log(dist.cdf(y2) - dist.cdf(y))])


# PyMC's normal log CDF scales z by 1/sqrt(2) rounded to single precision (pt.sqrt(2.0) is a float32
# constant), which moves it by about 1.4e-8 relative; every other density here agrees to 1e-8
NORMAL_CDF = 1e-7

COUNTS = np.array([0.0, 2, 3, 5, 1, 7])
POISSON = stats.poisson(2.7)
NB_ALPHA = 3.0
NB = stats.nbinom(NB_ALPHA, NB_ALPHA / (NB_ALPHA + 2.7))
T = stats.t(5.0, MU, SIGMA)

# family, y, mean, family parameters, addition data -> scipy's pointwise log-likelihood
SCIPY = {
    "weighted": ("gaussian", Y, MU, {"sigma": SIGMA}, {"weights": W}, W * N.logpdf(Y)),
    "censored": ("gaussian", Y, MU, {"sigma": SIGMA}, {"cens": CODE, "y2": Y2}, _censored(N)),
    "right-censored only": ("gaussian", Y, MU, {"sigma": SIGMA}, {"cens": np.ones(6)}, N.logsf(Y)),
    "truncated": ("gaussian", Y, MU, {"sigma": SIGMA}, {"lb": LB, "ub": UB},
                  N.logpdf(Y) - np.log(N.cdf(UB) - N.cdf(LB))),
    "truncated below": ("gaussian", Y, MU, {"sigma": SIGMA}, {"lb": LB}, N.logpdf(Y) - N.logsf(LB)),
    "se": ("gaussian", Y, MU, {}, {"se": SE}, stats.norm.logpdf(Y, MU, SE)),
    "se with sigma": ("gaussian", Y, MU, {"sigma": SIGMA}, {"se": SE},
                      stats.norm.logpdf(Y, MU, np.sqrt(SIGMA**2 + SE**2))),
    "weighted, truncated": ("gaussian", Y, MU, {"sigma": SIGMA}, {"weights": W, "lb": LB},
                            W * (N.logpdf(Y) - N.logsf(LB))),
    "censored, weighted": ("gaussian", Y, MU, {"sigma": SIGMA}, {"weights": W, "cens": CODE, "y2": Y2},
                           W * _censored(N)),
    "student_t censored": ("student_t", Y, MU, {"sigma": SIGMA, "nu": 5.0}, {"cens": CODE, "y2": Y2}, _censored(T)),
    "poisson censored": ("poisson", COUNTS, np.log(2.7), {}, {"cens": CODE, "y2": COUNTS + 2},
                         _censored(POISSON, COUNTS, COUNTS + 2)),
    "poisson truncated": ("poisson", COUNTS, np.log(2.7), {}, {"lb": np.zeros(6), "ub": np.full(6, 9.0)},
                          POISSON.logpmf(COUNTS) - np.log(POISSON.cdf(9) - POISSON.cdf(-1))),
    "poisson truncated above zero": ("poisson", COUNTS[1:], np.log(2.7), {}, {"lb": np.ones(5)},
                                     POISSON.logpmf(COUNTS[1:]) - POISSON.logsf(0)),
    "negative binomial censored, weighted": ("negative_binomial", COUNTS, np.log(2.7), {"alpha": NB_ALPHA},
                                             {"cens": CODE, "y2": COUNTS + 2, "weights": W},
                                             W * _censored(NB, COUNTS, COUNTS + 2)),
}


def _rtol(case: str) -> float:
    return NORMAL_CDF if "censored" in case and not case.startswith(("poisson", "negative", "student")) else 1e-8


@pytest.mark.parametrize("case", list(SCIPY))
def test_pointwise_log_likelihood_equals_scipy(case):
    name, y, eta, params, additions, expected = SCIPY[case]
    family = get_family(name)
    if "se" in additions and "sigma" not in params:  # se(s) without sigma: the family has none
        family = hb.Model("y | se(s) ~ 1", frame()).family
    link_eta = np.full((2, y.size), eta)  # two draws of the same values
    got = family.log_likelihood(y, link_eta, {k: np.full(2, v) for k, v in params.items()}, None, additions)
    np.testing.assert_allclose(got, np.broadcast_to(expected, got.shape), rtol=_rtol(case), atol=1e-10)


MODEL_CASES = {  # formula, family, data columns -> the same scipy rows through the PyMC model
    "censored": ("y | cens(c, y2) ~ 1", "gaussian", {"y": Y, "c": CODE, "y2": Y2}, "censored"),
    "weighted, truncated": ("y | weights(w) + trunc(lb = 2) ~ 1", "gaussian", {"y": Y, "w": W},
                            "weighted, truncated"),
    "se": ("y | se(s) ~ 1", "gaussian", {"y": Y, "s": SE}, "se"),
    "se with sigma": ("y | se(s, sigma = TRUE) ~ 1", "gaussian", {"y": Y, "s": SE}, "se with sigma"),
    "poisson censored": ("y | cens(c, y2) ~ 1", "poisson", {"y": COUNTS, "c": CODE, "y2": COUNTS + 2},
                         "poisson censored"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_the_model_samples_the_density_loo_scores(case):
    formula, family, columns, expected_case = MODEL_CASES[case]
    model = hb.Model(formula, pd.DataFrame(columns), family)
    name, _, eta, params, _, expected = SCIPY[expected_case]
    pymc_model = model.pymc_model
    observed = pymc_model[model.design.spec.response.expr]
    point = {"Intercept_centered": np.float64(eta), **{f"{k}_log__": np.log(v) for k, v in params.items()}}
    got = pymc_model.compile_logp(vars=[observed], sum=False)(point)[0]
    np.testing.assert_allclose(got, expected, rtol=_rtol(case), atol=1e-10)


def test_se_without_sigma_leaves_the_model_without_a_residual_sd():
    model = hb.Model("y | se(s) ~ 1 + (1 | g)", frame())
    assert model.family.parameters == () and "sigma" not in model.priors
    assert "sigma" in hb.Model("y | se(s, sigma = TRUE) ~ 1 + (1 | g)", frame()).priors
    with pytest.raises(hb.HierbayesError, match="no variance"):
        model.family.response_variance(np.zeros(3), {})


# --- draws -------------------------------------------------------------------------------------------

def test_draws_respect_truncation_and_known_sds_but_not_censoring_or_weights():
    rng = np.random.default_rng
    family, eta, sigma = get_family("gaussian"), np.zeros((4000, 3)), {"sigma": np.full((4000, 1), 2.0)}
    bounds = {"lb": np.array([-1.0, 0.0, 1.0]), "ub": np.array([1.0, 3.0, 1.5])}
    draws = family.draw(rng(1), eta, sigma, None, bounds)
    assert (draws >= bounds["lb"]).all() and (draws <= bounds["ub"]).all()
    assert np.isclose(draws[:, 0].mean(), 0.0, atol=0.05)
    plain = family.draw(rng(2), eta, sigma)
    np.testing.assert_array_equal(family.draw(rng(2), eta, sigma, None, {"weights": np.ones(3), "cens": np.ones(3)}),
                                  plain)
    se_family = hb.Model("y | se(s) ~ 1", frame()).family
    known = se_family.draw(rng(3), eta, {}, None, {"se": np.array([0.1, 1.0, 5.0])})
    np.testing.assert_allclose(known.std(axis=0), [0.1, 1.0, 5.0], rtol=0.06)
    counts = get_family("poisson").draw(rng(4), np.full((2000, 2), np.log(0.5)), {}, None, {"lb": np.ones(2)})
    assert counts.min() >= 1


def test_new_rows_read_truncation_columns_for_response_draws():
    model = hb.Model("y | trunc(lb = 0, ub = top) ~ 1", frame())
    with pytest.raises(DataError, match="the new data lack the column 'top'"):
        new_rows(model, pd.DataFrame({"x": [1.0]}), "population", "response")
    rows = new_rows(model, pd.DataFrame({"top": [5.0, 6.0]}), "population", "response")
    assert rows.additions["lb"].tolist() == [0.0, 0.0] and rows.additions["ub"].tolist() == [5.0, 6.0]
    assert new_rows(model, pd.DataFrame({"x": [1.0]}), "population", "mean").additions == {}
    binomial = hb.Model("hits | trials(n) ~ 1", frame(), "binomial")
    assert new_rows(binomial, pd.DataFrame({"n": [3, 4]}), "population", "response").trials.tolist() == [3, 4]


# --- the model's structure -----------------------------------------------------------------------------

def test_trials_and_cbind_give_the_same_design_and_structure():
    data = frame().assign(misses=lambda d: d["n"] - d["hits"])
    a = hb.Model("hits | trials(n) ~ 1 + (1 | g)", data, "binomial")
    b = hb.Model("cbind(hits, misses) ~ 1 + (1 | g)", data, "binomial")
    np.testing.assert_array_equal(a.design.trials, b.design.trials)
    assert a.design.additions == {} and a.structure == b.structure


def test_the_structure_changes_with_which_terms_exist_not_with_their_values():
    data = frame()
    weighted = hb.Model("y | weights(w) ~ 1", data).structure
    assert weighted == hb.Model("y | weights(w) ~ 1", data.assign(w=data["w"] * 3)).structure
    assert weighted != hb.Model("y ~ 1", data).structure
    assert weighted != hb.Model("y | weights(w) + trunc(lb = 0) ~ 1", data).structure
    assert hb.Model("y | trunc(lb = 0) ~ 1", data).structure != hb.Model("y | trunc(ub = 99) ~ 1", data).structure


def test_the_collapsed_likelihood_is_switched_off_with_the_reason():
    model = hb.Model("y | weights(w) + trunc(lb = 0) ~ 1 + (1 | g)", frame())
    assert not model.collapsed
    assert collapse_reason(model.design, model.family) == ("the response has the addition terms weights(w) "
                                                           "+ trunc(lb = 0), which the integrated likelihood does not "
                                                           "take")
    with pytest.raises(hb.HierbayesError, match="collapse=True is not possible: the response has the addition terms"):
        hb.Model("y | weights(w) ~ 1 + (1 | g)", frame(), collapse=True)
    assert hb.Model("hits | trials(n) ~ 1 + (1 | g)", frame(), "binomial").design.additions == {}


# --- a fit's predictions, LOO and pooling, on draws set by hand -------------------------------------------

def test_a_fit_predicts_inside_the_truncation_and_scores_loo_with_the_truncated_density():
    from test_predict import fake_fit

    data = pd.DataFrame({"y": Y, "top": UB, "g": list("aabbcc")})
    model = hb.Model("y | trunc(lb = 2, ub = top) ~ 1 + (1 | g)", data)
    fit = fake_fit(model, 400, b=[MU], sigma=SIGMA, r_g=np.zeros((3, 1)), sd_g=[1.0])
    draws = fit.predict(pd.DataFrame({"top": [3.0, 50.0]}), kind="response", groups="population", seed=1)
    assert float(draws.min()) >= 2.0 and float(draws[..., 0].max()) <= 3.0 and float(draws[..., 1].max()) > 8.0
    mean = fit.predict(pd.DataFrame({"top": [3.0]}), kind="mean", groups="population")
    assert np.allclose(mean, MU)  # the mean of the linear predictor, as before
    fit.add_log_likelihood()
    np.testing.assert_allclose(fit.idata["log_likelihood"]["y"].values[0, 0],
                               N.logpdf(Y) - np.log(N.cdf(UB) - N.cdf(LB)), rtol=1e-8)
    with pytest.raises(hb.HierbayesError, match=r"fit.pooling\(\) .* addition terms trunc\(lb = 2, ub = top\)"):
        fit.pooling("g")


def test_weights_on_binary_and_binomial_responses():
    eta = np.full((2, 6), 0.3)
    p = 1 / (1 + np.exp(-0.3))
    binary, hits, n = np.array([0.0, 1, 1, 0, 1, 1]), np.array([0.0, 3, 5, 2, 7, 1]), np.array([4.0, 5, 6, 7, 8, 9])
    got = get_family("bernoulli").log_likelihood(binary, eta, {}, None, {"weights": W})
    np.testing.assert_allclose(got[0], W * stats.bernoulli.logpmf(binary, p), rtol=1e-8)
    got = get_family("binomial").log_likelihood(hits, eta, {}, n, {"weights": W})
    np.testing.assert_allclose(got[0], W * stats.binom.logpmf(hits, n, p), rtol=1e-8)
