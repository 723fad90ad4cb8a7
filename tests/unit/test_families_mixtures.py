"""The zero-inflated, hurdle, beta-binomial and 0/1 proportion families, without sampling: one table.

Per family: the pointwise log-likelihood (the compiled log density of the model's own
observed variable, what LOO scores) equals SciPy's or a hand computation at 0s, 1s and other
values; the expected response and the variance equal the mean and variance of many response
draws; a response outside the support is refused naming the column and the value; the
family's parameters get their default priors (Beta(1, 1) for probabilities).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import special, stats

import hierbayes as hb
from hierbayes.lessons.calibration import draw_prior, simulate_truth, tracked_parameters
from hierbayes.specification.families import get_family
from hierbayes.specification.families.proportions import ordered_beta_logp, zero_one_inflated_beta_logp
from hierbayes.specification.parameters import model_parameters, prior_targets

COUNTS = np.array([0, 0, 1, 2, 5, 9])
POSITIVE = np.array([0.0, 0.4, 1.3, 0.0, 2.5, 7.0])
PROPORTIONS = np.array([0.0, 0.2, 0.55, 1.0, 0.9, 0.0])
SUCCESSES, TRIALS = np.array([0, 4, 0, 8, 5, 2]), np.array([3, 10, 6, 8, 12, 9])
ETA = np.array([[0.3, -0.5, 1.2, 0.8, 1.5, 2.0], [1.0, 0.0, -0.2, 0.4, 2.2, -1.1]])  # two draws of six rows


def zero_inflated(zi, zero_probability, logp):
    """``log(zi + (1 - zi) P(0))`` at 0, ``log(1 - zi) + log p(y)`` elsewhere (as a function of y)."""
    return lambda y: np.where(y == 0, np.log(zi + (1 - zi) * zero_probability), np.log1p(-zi) + logp(y))


def hurdle(hu, positive_logp):
    return lambda y: np.where(y == 0, np.log(hu), np.log1p(-hu) + positive_logp(y))


def nb(mu, alpha):
    return stats.nbinom(alpha, alpha / (alpha + mu))


def ordered_beta_reference(y, mu, p):
    eta = special.logit(mu)
    zero, one = 1 - special.expit(eta - p["cutzero"]), special.expit(eta - p["cutzero"] - p["cutgap"])
    between = np.log(1 - zero - one) + stats.beta.logpdf(y, mu * p["phi"], (1 - mu) * p["phi"])
    return np.where(y == 0, np.log(zero), np.where(y == 1, np.log(one), between))


def zoib_reference(y, mu, p):
    between = np.log1p(-p["zoi"]) + stats.beta.logpdf(y, mu * p["phi"], (1 - mu) * p["phi"])
    return np.where(y == 0, np.log(p["zoi"] * (1 - p["coi"])), np.where(y == 1, np.log(p["zoi"] * p["coi"]), between))


# family: (response, trials, parameters (one per draw), the log density from SciPy / by hand: (y, mu, p, n) -> array)
CASES = {
    "zero_inflated_poisson": (COUNTS, None, {"zi": [0.2, 0.45]}, lambda y, mu, p, n: zero_inflated(
        p["zi"], np.exp(-mu), lambda y: stats.poisson.logpmf(y, mu))(y)),
    "zero_inflated_negative_binomial": (COUNTS, None, {"zi": [0.2, 0.45], "alpha": [2.0, 0.7]},
                                        lambda y, mu, p, n: zero_inflated(p["zi"], nb(mu, p["alpha"]).pmf(0),
                                                                          nb(mu, p["alpha"]).logpmf)(y)),
    "zero_inflated_binomial": (SUCCESSES, TRIALS, {"zi": [0.3, 0.1]}, lambda y, mu, p, n: zero_inflated(
        p["zi"], stats.binom.pmf(0, n, mu), lambda y: stats.binom.logpmf(y, n, mu))(y)),
    "beta_binomial": (SUCCESSES, TRIALS, {"phi": [4.0, 15.0]}, lambda y, mu, p, n: stats.betabinom.logpmf(
        y, n, mu * p["phi"], (1 - mu) * p["phi"])),
    "hurdle_poisson": (COUNTS, None, {"hu": [0.3, 0.6]}, lambda y, mu, p, n: hurdle(
        p["hu"], lambda y: stats.poisson.logpmf(y, mu) - np.log1p(-np.exp(-mu)))(y)),
    "hurdle_negative_binomial": (COUNTS, None, {"hu": [0.3, 0.6], "alpha": [2.0, 0.7]}, lambda y, mu, p, n: hurdle(
        p["hu"], lambda y: nb(mu, p["alpha"]).logpmf(y) - np.log1p(-nb(mu, p["alpha"]).pmf(0)))(y)),
    "hurdle_gamma": (POSITIVE, None, {"hu": [0.3, 0.6], "shape": [2.0, 5.0]}, lambda y, mu, p, n: hurdle(
        p["hu"], lambda y: stats.gamma.logpdf(y, p["shape"], scale=mu / p["shape"]))(y)),
    "hurdle_lognormal": (POSITIVE, None, {"hu": [0.3, 0.6], "sigma": [0.5, 1.2]}, lambda y, mu, p, n: hurdle(
        p["hu"], lambda y: stats.lognorm.logpdf(y, p["sigma"], scale=mu))(y)),
    "zero_one_inflated_beta": (PROPORTIONS, None, {"phi": [4.0, 12.0], "zoi": [0.2, 0.35], "coi": [0.7, 0.4]},
                               lambda y, mu, p, n: zoib_reference(y, mu, p)),
    "ordered_beta": (PROPORTIONS, None, {"phi": [4.0, 12.0], "cutzero": [-1.0, -2.5], "cutgap": [3.0, 1.5]},
                     lambda y, mu, p, n: ordered_beta_reference(y, mu, p)),
}


def per_draw(params: dict) -> dict[str, np.ndarray]:
    return {name: np.asarray(values, dtype=float)[:, None] for name, values in params.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_log_likelihood_is_scipys_or_the_hand_computation(name):
    y, trials, params, reference = CASES[name]
    family = get_family(name)
    ours = family.log_likelihood(y.astype(float), ETA, per_draw(params), None if trials is None else trials.astype(float))
    with np.errstate(all="ignore"):  # np.where computes the branches not taken too
        theirs = reference(y, family.link_function.inverse(ETA), per_draw(params), trials)
    assert ours.shape == ETA.shape and np.isfinite(theirs).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-8)


def _hurdle_gradient(name: str, params: dict, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """d log p(y) / d eta of the model's own observed variable, compiled as nutpie compiles it (numba)."""
    import pytensor
    import pytensor.tensor as pt

    e = pt.dvector("eta")
    with pm.Model() as model:
        variable = get_family(name).observed_variable("y", e, params, y)
        logp = model.logp(vars=[variable], sum=False)[0]
    return pytensor.function([e], pt.grad(logp.sum(), e), mode="NUMBA")(eta)


# means from 0.007 to 8100: PyMC's hurdle Poisson divides by exp(log(gammaincc(1, mu))), whose gradient is NaN
# once exp(-mu) underflows (mu above ~745), so NUTS diverged on every step of such a model (the failed SBC)
HURDLE_ETA = np.linspace(-5.0, 9.0, 15)


def test_hurdle_poisson_gradient_is_the_analytic_one_at_every_mean():
    mu = np.exp(HURDLE_ETA)
    for y in (np.ones_like(mu), np.full_like(mu, 3.0), np.round(mu) + 1):
        ours = _hurdle_gradient("hurdle_poisson", {"hu": 0.3}, y, HURDLE_ETA)
        # d/deta [y eta - mu - log(1 - exp(-mu))] = y - mu - mu / expm1(mu)
        with np.errstate(over="ignore"):  # expm1 overflows to inf at the largest means: mu / inf = 0, as it should
            expected = y - mu - mu / np.expm1(mu)
        np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-9)
    assert np.all(_hurdle_gradient("hurdle_poisson", {"hu": 0.3}, np.zeros(3), HURDLE_ETA[:3]) == 0)


def test_hurdle_negative_binomial_gradient_is_the_analytic_one_at_every_mean():
    mu, a = np.exp(HURDLE_ETA), 2.0
    zero = (a / (a + mu)) ** a
    for y in (np.ones_like(mu), np.full_like(mu, 3.0), np.round(mu) + 1):
        ours = _hurdle_gradient("hurdle_negative_binomial", {"hu": 0.3, "alpha": a}, y, HURDLE_ETA)
        # d/deta log NB(y) = y - (y + a) mu / (a + mu); d/deta log(1 - P(0)) = P(0) a mu / ((a + mu) (1 - P(0)))
        exact = y - (y + a) * mu / (a + mu) - zero * a * mu / ((a + mu) * -np.expm1(np.log(zero)))
        np.testing.assert_allclose(ours, exact, rtol=1e-8, atol=1e-7)  # y - (y + a) mu / (a + mu) cancels terms of 8000


def test_the_custom_log_densities_are_minus_infinity_outside_the_unit_interval():
    y = np.array([-0.1, 1.2])
    assert np.isneginf(zero_one_inflated_beta_logp(y, 0.4, 5.0, 0.1, 0.7).eval()).all()
    assert np.isneginf(ordered_beta_logp(y, 0.5, 4.0, -1.0, 3.0).eval()).all()


@pytest.mark.parametrize("name", list(CASES))
def test_expected_response_and_variance_are_those_of_the_draws(name):
    y, trials, params, _ = CASES[name]
    family = get_family(name)
    first = {k: v[0] for k, v in params.items()}
    eta = np.tile(ETA[0, :3], (100_000, 1))
    n = None if trials is None else trials[:3]
    draws = family.draw(np.random.default_rng(7), eta, first, n)
    scale = 1.0 if n is None else n  # the binomial families' expected response is a proportion of the trials
    expected = family.expected_response(ETA[0, :3], first)
    mc_error = draws.std(axis=0) / scale / np.sqrt(len(draws))
    np.testing.assert_array_less(np.abs(draws.mean(axis=0) / scale - expected), 5 * mc_error)
    if family.variance is not None:
        variance = family.response_variance(family.link_function.inverse(ETA[0, :3]), first)
        np.testing.assert_allclose(draws.var(axis=0), variance, rtol=0.06)
    if y.dtype.kind == "i":
        assert np.array_equal(draws, np.round(draws)) and (draws >= 0).all()
    if name in ("zero_one_inflated_beta", "ordered_beta"):
        assert (draws == 0).any() and (draws == 1).any() and ((draws >= 0) & (draws <= 1)).all()


def test_expected_response_by_formula():
    mu, p = np.array([0.5, 3.0]), {"zi": 0.25, "hu": 0.25, "alpha": 2.0, "sigma": 0.5, "shape": 3.0}
    eta = np.log(mu)
    expected = {"zero_inflated_poisson": 0.75 * mu, "zero_inflated_negative_binomial": 0.75 * mu,
                "hurdle_poisson": 0.75 * mu / (1 - np.exp(-mu)),
                "hurdle_negative_binomial": 0.75 * mu / (1 - (2 / (2 + mu)) ** 2),
                "hurdle_gamma": 0.75 * mu, "hurdle_lognormal": 0.75 * mu * np.exp(0.125)}
    for name, value in expected.items():
        np.testing.assert_allclose(get_family(name).expected_response(eta, p), value, rtol=1e-12, err_msg=name)
    logit = np.array([-0.5, 1.0])
    zoib = get_family("zero_one_inflated_beta").expected_response(logit, {"zoi": 0.2, "coi": 0.7, "phi": 5.0})
    np.testing.assert_allclose(zoib, 0.2 * 0.7 + 0.8 * special.expit(logit), rtol=1e-12)
    ordered = get_family("ordered_beta").expected_response(logit, {"phi": 5.0, "cutzero": -1.0, "cutgap": 2.5})
    one, zero = special.expit(logit - 1.5), 1 - special.expit(logit + 1.0)
    np.testing.assert_allclose(ordered, one + (1 - zero - one) * special.expit(logit), rtol=1e-12)


def frame(y, failures=None) -> pd.DataFrame:
    df = pd.DataFrame({"y": y, "x": np.linspace(-1, 1, len(y)), "g": list("aabbccdd")[:len(y)]})
    if failures is not None:
        df["f"] = failures
    return df


REFUSALS = [
    ("zero_inflated_poisson", [0, 1, 2, -1, 3, 0, 1, 2], r"response 'y' must be non-negative whole counts.*found -1"),
    ("hurdle_negative_binomial", [0, 1, 2.5, 1, 3, 0, 1, 2], r"response 'y' must be non-negative whole counts.*found 2.5"),
    ("hurdle_gamma", [0, 1.2, -0.5, 1, 3, 0, 1, 2], r"response 'y' must be 0 or above.*found -0.5 on 1 rows"),
    ("hurdle_lognormal", [0, 1.2, 0.5, 1, -3, 0, 1, 2], r"response 'y' must be 0 or above.*found -3"),
    ("zero_one_inflated_beta", [0, 0.2, 1.2, 1, 0.5, 0, 1, 0.3], r"response 'y' must lie between 0 and 1.*found 1.2"),
    ("ordered_beta", [0, 0.2, 0.9, 1, -0.1, 0, 1, 0.3], r"response 'y' must lie between 0 and 1.*found -0.1"),
    ("zero_inflated_binomial", [0, 1, 2, 1, 3, 0, 1, 2], r"the zero_inflated_binomial family needs the response as cbind"),
    ("beta_binomial", [0, 1, 2, 1, 3, 0, 1, 2], r"the beta_binomial family needs the response as cbind"),
]


@pytest.mark.parametrize("name, y, message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_response_outside_the_support_is_refused_naming_column_and_value(name, y, message):
    with pytest.raises(hb.DataError, match=message):
        hb.Model("y ~ x + (1 | g)", frame(y), family=name)


def test_successes_above_trials_are_refused_for_the_trial_families():
    for name in ("zero_inflated_binomial", "beta_binomial"):
        with pytest.raises(hb.DataError, match="failures column 'f' must hold non-negative whole counts; found -2"):
            hb.Model("cbind(y, f) ~ x + (1 | g)", frame([0, 1, 2, 1, 3, 0, 1, 2], [2, 2, -2, 1, 0, 3, 1, 1]),
                     family=name)


DEFAULTS = {
    "zero_inflated_poisson": {"zi": "Beta(alpha=1, beta=1)"},
    "zero_inflated_negative_binomial": {"zi": "Beta(alpha=1, beta=1)", "alpha": "Exponential(lam=0.1)"},
    "zero_inflated_binomial": {"zi": "Beta(alpha=1, beta=1)"},
    "beta_binomial": {"phi": "Gamma(alpha=0.01, beta=0.01)"},
    "hurdle_poisson": {"hu": "Beta(alpha=1, beta=1)"},
    "hurdle_negative_binomial": {"hu": "Beta(alpha=1, beta=1)", "alpha": "Exponential(lam=0.1)"},
    "hurdle_gamma": {"hu": "Beta(alpha=1, beta=1)", "shape": "Gamma(alpha=0.01, beta=0.01)"},
    "hurdle_lognormal": {"hu": "Beta(alpha=1, beta=1)", "sigma": "HalfStudentT(nu=3, sigma=2.5)"},
    "zero_one_inflated_beta": {"phi": "Gamma(alpha=0.01, beta=0.01)", "zoi": "Beta(alpha=1, beta=1)",
                               "coi": "Beta(alpha=1, beta=1)"},
    "ordered_beta": {"phi": "Exponential(lam=0.1)", "cutzero": "Normal(mu=-3, sigma=2.5)",
                     "cutgap": "Gamma(alpha=3, beta=0.5)"},
}


def valid_model(name: str, priors=None) -> hb.Model:
    if get_family(name).needs_trials:
        return hb.Model("cbind(y, f) ~ x + (1 | g)", frame([0, 1, 2, 1, 3, 0, 1, 2], [2, 2, 2, 1, 0, 3, 1, 1]),
                        family=name, priors=priors)
    y = {"zero_one_inflated_beta": [0, 0.2, 0.8, 1, 0.5, 0, 1, 0.5], "ordered_beta": [0, 0.2, 0.8, 1, 0.5, 0, 1, 0.5],
         "hurdle_gamma": [0, 1.2, 0.5, 1, 3, 0, 1, 2], "hurdle_lognormal": [0, 1.2, 0.5, 1, 3, 0, 1, 2]}
    return hb.Model("y ~ x + (1 | g)", frame(y.get(name, [0, 1, 2, 1, 3, 0, 1, 2])), family=name, priors=priors)


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_prior_summary_lists_the_family_parameters_with_their_defaults(name):
    table = valid_model(name).prior_summary()
    own = table.loc[list(DEFAULTS[name]), "prior"].to_dict()
    assert own == DEFAULTS[name]


def test_probabilities_take_beta_priors_only():
    model = valid_model("zero_inflated_poisson", priors={"zi": hb.Beta(2, 8)})
    assert model.prior_summary().loc["zi", "prior"] == "Beta(alpha=2, beta=8)"
    with pytest.raises(hb.PriorError, match="'hu' is a unit parameter; its prior must be Beta, not Normal"):
        valid_model("hurdle_poisson", priors={"hu": hb.Normal(0, 1)})
    with pytest.raises(hb.PriorError, match="'phi' is a positive parameter"):
        valid_model("beta_binomial", priors={"phi": hb.Beta(1, 1)})


def test_ordered_beta_samples_an_ordered_pair_and_reports_both_cutpoints():
    model = valid_model("ordered_beta")
    labels = {p.label: p.cls for p in model_parameters(model.design, model.family)}
    assert {"cutzero", "cutgap", "cutone"} <= set(labels) and labels["cutone"] == "derived"
    assert "cutone" not in {label for label, _, _ in prior_targets(model.design, model.family)}  # no prior
    pymc_model = model.pymc_model
    assert "cutone" in {v.name for v in pymc_model.deterministics}
    assert {"cutzero", "cutgap"} <= {v.name for v in pymc_model.free_RVs}
    cutone = pymc_model.replace_rvs_by_values([pymc_model["cutone"]])[0]  # on the sampler's values
    values = {pymc_model.rvs_to_values[pymc_model["cutzero"]]: -1.2,
              pymc_model.rvs_to_values[pymc_model["cutgap"]]: np.log(2.0)}  # cutgap's value is its log
    assert float(cutone.eval(values)) == pytest.approx(0.8)


def test_calibration_truth_holds_every_tracked_parameter_of_the_ordered_beta():
    model = valid_model("ordered_beta")
    theta = draw_prior(model.priors, model.design, 1, np.random.default_rng(2))
    theta = {label: value[0] for label, value in theta.items()}
    truth, y = simulate_truth(model.design, model.family, model.priors, theta, np.random.default_rng(3))
    tracked = {p.var for p in tracked_parameters(model.design, model.family)}
    assert tracked <= set(truth) and ((y >= 0) & (y <= 1)).all()
    assert truth["cutone"].item() == pytest.approx(theta["cutzero"] + theta["cutgap"])


@pytest.mark.parametrize("alias, name", [("zero_inflated_negbinomial", "zero_inflated_negative_binomial"),
                                         ("zero_inflated_negativebinomial", "zero_inflated_negative_binomial"),
                                         ("hurdle_negbinomial", "hurdle_negative_binomial"),
                                         ("hurdle_negativebinomial", "hurdle_negative_binomial"),
                                         ("zoib", "zero_one_inflated_beta"), ("betabinomial", "beta_binomial")])
def test_aliases(alias, name):
    assert get_family(alias).name == name


@pytest.mark.parametrize("name", ["zero_one_inflated_beta", "ordered_beta"])
def test_the_custom_distributions_draw_from_the_priors(name):
    """What a prior predictive check draws (PyMC's forward sampling through ``pm.CustomDist``'s ``random``),
    with phi's diffuse default prior, whose draws can underflow to 0."""
    model = valid_model(name)
    y = pm.draw(model.pymc_model["y"], draws=300, random_seed=1, mode="FAST_COMPILE")
    assert y.shape == (300, 8) and ((y >= 0) & (y <= 1)).all() and (y == 0).any() and (y == 1).any()
    assert ((y > 0) & (y < 1)).any()
