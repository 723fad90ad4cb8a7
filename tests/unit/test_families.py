"""The family registry: one entry per family, and every capability taken from it.

The pointwise log-likelihood of LOO is checked against PyMC's own log density of the
sampled model's observed variable (``model.pymc_model``, the non-collapsed model) at the
same draws, for every built-in family and link. The draws are prior draws of that model,
made and scored with PyTensor's Python linker: no sampler compile, and every free
variable, group effect and family parameter of the model is in them, as in a posterior.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import hierbayes as hb
from hierbayes.model.data import response_name
from hierbayes.specification.families import FAMILIES, LINKS, get_family

PYTHON = {"mode": "FAST_COMPILE"}  # PyTensor's Python linker: the same numbers, no C or numba compile

CASES = [("gaussian", None), ("student_t", None), ("bernoulli", "logit"), ("bernoulli", "probit"),
         ("binomial", "logit"), ("binomial", "probit"), ("poisson", None), ("negative_binomial", None)]


def simulated(family: str, n: int = 48, levels: int = 6, seed: int = 0) -> tuple[str, pd.DataFrame]:
    """A formula and data with one varying intercept for ``family``."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{j}" for j in range(levels)], n // levels)
    x = rng.normal(size=n)
    eta = 0.2 + 0.6 * x + rng.normal(0, 0.5, levels)[np.arange(n) // (n // levels)]
    p = 1 / (1 + np.exp(-eta))
    trials = rng.integers(1, 12, n)
    y = {"gaussian": eta + rng.normal(0, 0.7, n), "student_t": eta + 0.7 * rng.standard_t(5, n),
         "bernoulli": (rng.random(n) < p).astype(int), "binomial": rng.binomial(trials, p),
         "poisson": rng.poisson(np.exp(eta)), "negative_binomial": rng.negative_binomial(3, 3 / (3 + np.exp(eta)))}
    df = pd.DataFrame({"g": g, "x": x, "y": y[family], "f": trials - y[family] if family == "binomial" else 0})
    return ("cbind(y, f)" if family == "binomial" else "y") + " ~ x + (1 | g)", df


def prior_draws_fit(model: hb.Model, draws: int = 40, seed: int = 1) -> tuple[hb.Fit, xr.DataTree]:
    """A Fit whose 'posterior' is prior draws of ``model.pymc_model``, and those draws as a DataTree."""
    pymc_model = model.pymc_model
    names = [v.name for v in pymc_model.free_RVs + pymc_model.deterministics]  # not the response
    tree = pm.sample_prior_predictive(draws=draws, model=pymc_model, var_names=names, random_seed=seed,
                                      compile_kwargs=PYTHON)
    draws_tree = xr.DataTree.from_dict({"posterior": tree["prior"].to_dataset()})
    return hb.Fit(model, draws_tree.copy(), sampler="prior draws"), draws_tree


@pytest.mark.parametrize("family, link", CASES)
def test_log_likelihood_is_the_sampled_models_own_log_density(family, link):
    formula, df = simulated(family)
    model = hb.Model(formula, df, family=family, link=link)
    fit, draws = prior_draws_fit(model)
    fit.add_log_likelihood()
    ours = fit.idata["log_likelihood"][model.spec.response.expr].values
    theirs = pm.compute_log_likelihood(draws, model=model.pymc_model, extend_inferencedata=False,
                                       progressbar=False, compile_kwargs=PYTHON)
    theirs = theirs[response_name(model.design)].transpose("chain", "draw", ...).values
    assert ours.shape == theirs.shape == (1, 40, len(df)) and np.isfinite(ours).mean() > 0.95
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)  # -inf where the model has it too:
    # a probit mean that rounds to 0 or 1 at a prior draw's extreme eta


def test_sleepstudy_loo_is_unchanged(sleepstudy):
    # The elpd before the log-likelihood came from the model's own graph (SciPy's norm.logpdf
    # then), computed on commit 9dd259d with exactly these lines:
    #   fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
    #       draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    #   fit.loo(warn=False).elpd  ->  -858.7737519045218  (se 21.163274377281716, p 31.627270838394466)
    # It assumes the sampler's draws for a seed are those of that commit (bench/same_draws.py checks it).
    fit = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    result = fit.loo(warn=False)
    assert float(result.elpd) == pytest.approx(-858.7737519045218, abs=1e-8)
    assert float(result.p) == pytest.approx(31.627270838394466, abs=1e-8)


# --- links ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LINKS))
def test_link_derivative_is_d_mean_d_eta_and_the_default_is_pytensors_gradient(name):
    link = LINKS[name]
    eta = np.linspace(0.25, 8, 32) if name in ("inverse", "sqrt") else np.linspace(-8, 8, 33)  # their domain
    derived = dataclasses.replace(link, mean_derivative=None)  # a link registered without one
    np.testing.assert_allclose(derived.derivative(eta), link.derivative(eta), rtol=1e-10)
    h, middle = 1e-5, eta[8:25]  # and both are the slope of the inverse link
    np.testing.assert_allclose(link.derivative(middle), (link.inverse(middle + h) - link.inverse(middle - h))
                               / (2 * h), rtol=1e-6, atol=1e-10)
    inside = middle[np.abs(link.derivative(middle)) > 1e-6]  # where the mean is not at its bound in floating point
    np.testing.assert_allclose(link.forward(link.inverse(inside)), inside, rtol=1e-8)  # forward inverts inverse


# --- a family registered with the required fields only ---------------------------------------------------

def _gamma_like(name, eta, mean, params, observed, trials, dims):
    return pm.Gamma(name, alpha=params["shape"], beta=params["shape"] / mean, observed=observed, shape=observed.shape)


def _positive(y, trials, column):
    if (y <= 0).any():
        raise hb.DataError(f"response {column!r} must be positive")


MINIMAL = hb.Family(name="minimal_gamma", link="log", links=("log", "logit"), parameters=(("shape", "positive"),),
                    default_priors=lambda r: {"shape": hb.Gamma(2.0, 0.5)}, likelihood=_gamma_like,
                    check_response=_positive)


@pytest.fixture(scope="module")
def minimal():
    hb.register_family(MINIMAL)
    yield MINIMAL
    FAMILIES.pop(MINIMAL.name, None)


@pytest.fixture(scope="module")
def minimal_fit(minimal):
    rng = np.random.default_rng(2)
    g = np.repeat(list("abcdef"), 8)
    mu = np.exp(0.5 + rng.normal(0, 0.4, 6))[np.arange(48) // 8]
    df = pd.DataFrame({"g": g, "y": rng.gamma(3.0, mu / 3.0)})
    fit, _ = prior_draws_fit(hb.Model("y ~ 1 + (1 | g)", df, family=minimal.name))
    return fit


def test_missing_optional_fields_are_named_at_the_call_that_needs_them(minimal_fit):
    with pytest.raises(hb.HierbayesError, match=r"'minimal_gamma' family has no variance, which the Bayesian R-squared"):
        minimal_fit.r2()
    with pytest.raises(hb.HierbayesError, match=r"'minimal_gamma' family has no quasi_variance, which the no- and "):
        minimal_fit.pooling("g")
    with pytest.raises(hb.HierbayesError, match=r"'minimal_gamma' family has no latent_variance, which the ICC"):
        minimal_fit.icc()
    minimal_fit.add_log_likelihood()  # the likelihood alone gives LOO's log-likelihood ...
    assert np.isfinite(minimal_fit.idata["log_likelihood"]["y"].values).all()
    draws = minimal_fit.predict(kind="response", seed=1).values  # ... and response draws
    assert draws.shape == (1, 40, 48) and (draws > 0).all()


def test_fields_derived_from_the_variance(minimal):
    family = dataclasses.replace(minimal, variance=lambda m, p: m**2 / p["shape"])
    mean, params = np.array([0.5, 2.0]), {"shape": np.array([4.0, 4.0])}
    np.testing.assert_allclose(family.icc_variance(mean, params), np.log1p(1 / 4.0))  # log link: lognormal
    np.testing.assert_allclose(family.response_variance(mean, params, np.array([1.0, 3.0])), [1 / 16, 3.0])
    with pytest.raises(hb.HierbayesError, match="no quasi_variance"):  # it has a parameter: V(mu) is not derived
        family.working_variance(mean)
    with pytest.raises(hb.HierbayesError, match="latent_variance, which the ICC with the logit link"):
        dataclasses.replace(family, link="logit").icc_variance(mean, params)
    poisson = get_family("poisson")
    np.testing.assert_array_equal(poisson.working_variance(mean), mean)  # no parameters: variance(mu, {})


def test_draws_from_the_likelihood_follow_it_and_the_seed(minimal):
    eta, shape = np.full((4000, 2), np.log([0.5, 3.0])), 2.0
    y = minimal.draw(np.random.default_rng(1), eta, {"shape": shape})
    np.testing.assert_allclose(y.mean(axis=0), [0.5, 3.0], rtol=0.05)
    np.testing.assert_allclose(y.var(axis=0), np.array([0.5, 3.0]) ** 2 / shape, rtol=0.1)
    np.testing.assert_array_equal(minimal.draw(np.random.default_rng(1), eta, {"shape": shape}), y)
    assert not np.array_equal(minimal.draw(np.random.default_rng(2), eta, {"shape": shape}), y)


def test_a_family_registered_again_with_other_code_gets_its_own_compiled_model(minimal):
    def other_like(name, eta, mean, params, observed, trials, dims):
        return pm.Gamma(name, alpha=params["shape"], beta=params["shape"] * mean, observed=observed,
                        shape=observed.shape)

    assert dataclasses.replace(minimal, likelihood=other_like).fingerprint != minimal.fingerprint
    assert dataclasses.replace(minimal, likelihood=_gamma_like).fingerprint == minimal.fingerprint


def test_an_entry_with_an_unknown_link_is_refused_and_lists_become_tuples(minimal):
    with pytest.raises(hb.HierbayesError, match="unknown link 'reciprocal'"):
        dataclasses.replace(minimal, links=("log", "reciprocal"))
    with pytest.raises(hb.HierbayesError, match="its link 'identity' is not among its links"):
        dataclasses.replace(minimal, link="identity")
    listed = dataclasses.replace(minimal, links=["log"], parameters=[["shape", "positive"]])
    assert listed.parameters == (("shape", "positive"),) and hash(listed)


@pytest.mark.parametrize(("family", "link", "params", "expected"), [
    ("bernoulli", "logit", {}, np.pi**2 / 3),  # the logistic distribution's variance
    ("bernoulli", "probit", {}, 1.0),  # the standard normal's
    ("binomial", "probit", {}, 1.0),
    ("poisson", "log", {}, np.log1p(1 / 4.0)),  # log(1 + 1/lambda) at lambda = 4
    ("negative_binomial", "log", {"alpha": np.array(2.0)}, np.log1p(1 / 4.0 + 1 / 2.0)),
    ("gaussian", "identity", {"sigma": np.array(3.0)}, 9.0),
])
def test_icc_residual_variance_on_the_link_scale(family, link, params, expected):
    """Nakagawa, Johnson and Schielzeth (2017): the latent residual variance per family and link."""
    value = hb.get_family(family, link).icc_variance(np.array(4.0), params)
    np.testing.assert_allclose(value, expected)
