"""The continuous families against SciPy, without sampling: one table (``tests/continuous_families.py``).

Per family: the pointwise log-likelihood (the compiled log density of the family's PyMC
variable) equals SciPy's log density in brms's parameterisation; the expected response and
the variance are the mean and variance of the family's own draws; responses outside the
support are refused naming the column and rows; the default priors are the documented ones.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from continuous_families import CASES, SCIPY, Case
from scipy import special, stats

import hierbayes as hb
from hierbayes.model.data import response_name
from hierbayes.posterior.pooling import complete_pooling, no_pooling
from hierbayes.specification.families import LINKS, get_family
from hierbayes.viz.plots import shrinkage_arrows

IDS = [case.id for case in CASES]
PYTHON = {"mode": "FAST_COMPILE"}  # PyTensor's Python linker: the same numbers, no C or numba compile
MEANS = {"beta": [0.15, 0.5, 0.8], "von_mises": [-1.0, 0.3, 2.0]}  # else positive means for any link


def _point(case: Case) -> tuple[np.ndarray, np.ndarray, dict]:
    """Two draws of three rows: eta on the family's link, parameters per draw (the second 1.5 times the first)."""
    family = case.entry()
    mean = np.array(MEANS.get(case.family, [0.4, 1.0, 3.0]))
    eta = family.link_function.forward(np.stack([mean, mean[::-1]]))
    params = {k: np.array([v, 1.5 * v]) for k, v in case.params.items()}
    return eta, mean, params


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_log_likelihood_is_scipys_log_density_in_brms_parameterisation(case):
    family = case.entry()
    eta, _, params = _point(case)
    rng = np.random.default_rng(0)
    mu = family.link_function.inverse(eta)
    y = np.concatenate([case.response(mu[0], rng) for _ in range(2)])  # six responses, from SciPy
    eta6, mu6 = np.tile(eta, 2), np.tile(mu, 2)
    ours = family.log_likelihood(y, eta6, params)
    for d in range(2):
        p = {**{k: v[d] for k, v in params.items()}, **case.entry_constants}
        # to 1e-8: PyTensor's erfcx, in the exgaussian's normal log CDF, is good to about 1e-8 absolute
        np.testing.assert_allclose(ours[d], SCIPY[case.family](mu6[d], p).logpdf(y), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_expected_response_and_variance_are_those_of_the_familys_draws(case):
    family = case.entry()
    eta, mean, _ = _point(case)
    eta = np.broadcast_to(eta[0], (20000, eta.shape[1]))
    params = dict(case.params)
    y = family.draw(np.random.default_rng(1), eta, params)
    expected = family.expected_response(eta[0], params)
    if case.family == "von_mises":  # the mean direction
        np.testing.assert_allclose(np.arctan2(np.sin(y).mean(0), np.cos(y).mean(0)), expected, atol=0.02)
        return
    se = y.std(axis=0) / np.sqrt(len(y))
    assert (np.abs(y.mean(axis=0) - expected) < 4.5 * se).all(), (y.mean(axis=0), expected)
    # and SciPy's mean of the same distribution (the expected value is not only the inverse link)
    scipy_mean = SCIPY[case.family](family.link_function.inverse(eta[0]), {**params, **case.entry_constants}).mean()
    np.testing.assert_allclose(expected, scipy_mean, rtol=1e-10)
    np.testing.assert_allclose(family.response_variance(expected, params), y.var(axis=0), rtol=0.12)


@pytest.mark.parametrize("case", [c for c in CASES if c.family in ("beta", "lognormal")], ids=["beta", "lognormal"])
def test_latent_variance_is_the_variance_of_the_response_on_the_link_scale(case):
    """beta: Var(logit y) = trigamma(mu phi) + trigamma((1 - mu) phi) exactly; lognormal: Var(log y) = sigma^2."""
    family = case.entry()
    mean = np.array([0.3, 0.6])
    y = family.draw(np.random.default_rng(2), np.broadcast_to(family.link_function.forward(mean), (40000, 2)),
                    case.params)
    np.testing.assert_allclose(family.icc_variance(mean, case.params),
                               np.var(family.link_function.forward(y) if case.family == "beta" else np.log(y), axis=0),
                               rtol=0.05)


def test_families_without_a_defined_quantity_say_so():
    with pytest.raises(hb.HierbayesError, match=r"'von_mises' family has no latent_variance, which the ICC with the "
                                                r"tan_half link"):
        get_family("von_mises").icc_variance(np.array(0.3), {"kappa": np.array(5.0)})
    with pytest.raises(hb.HierbayesError, match=r"'von_mises' family has no variance, which the Bayesian R-squared"):
        get_family("von_mises").response_variance(np.array(0.3), {"kappa": np.array(5.0)})
    with pytest.raises(hb.HierbayesError, match=r"'asymmetric_laplace' family has no quasi_variance, which the no- "
                                                r"and complete-pooling estimates"):
        get_family("asymmetric_laplace").working_variance(np.array([0.3]))


# --- the response's support -------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "bad", "message"), [
    ("beta", 1.0, r"response 'y' must lie strictly between 0 and 1 for this family; found 1 on 2 rows \(first at "
                  r"rows \[3, 7\]\)\. For proportions with exact 0s or 1s use family='ordered_beta'"),
    *[(f, 0.0, r"response 'y' must be above 0 for this family; found 0 on 2 rows \(first at rows \[3, 7\]\)")
      for f in ("gamma", "lognormal", "weibull", "exponential", "wald")],
    ("von_mises", 4.0, r"response 'y' must be an angle in radians in \[-pi, pi\] for the von_mises family; found 4 "
                       r"on 2 rows \(first at rows \[3, 7\]\)"),
])
def test_responses_outside_the_support_are_refused_naming_the_column_and_rows(family, bad, message):
    y = np.full(10, 0.5)
    y[[3, 7]] = bad
    with pytest.raises(hb.DataError, match=message):
        hb.Model("y ~ 1", pd.DataFrame({"y": y}), family=family)


def test_real_families_take_any_real_response():
    for family in ("exgaussian", "skew_normal", "laplace", "asymmetric_laplace"):
        hb.Model("y ~ 1", pd.DataFrame({"y": [-40.0, 0.0, 3.5, 1e6]}), family=family)


# --- links, names, constants ----------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_link_of_a_family_round_trips(case):
    family = case.entry()
    assert family.link == family.links[0]
    for link in family.links:
        entry = get_family(case.family, link)
        mean = np.array(MEANS.get(case.family, [0.4, 1.0, 3.0]))
        np.testing.assert_allclose(LINKS[link].inverse(entry.link_function.forward(mean)), mean, rtol=1e-12)


@pytest.mark.parametrize(("alias", "name"), [("inverse.gaussian", "wald"), ("inverse_gaussian", "wald"),
                                             ("exgauss", "exgaussian"), ("skewnormal", "skew_normal"),
                                             ("asym_laplace", "asymmetric_laplace"), ("vonmises", "von_mises")])
def test_brms_and_bambi_names(alias, name):
    assert get_family(alias).name == name


def test_the_quantile_is_a_constant_that_separates_compiled_models():
    df = CASES[0].simulate(n_levels=4, per_level=5).assign(y=lambda d: d["y"] * 3 - 1)
    median, q90 = hb.asymmetric_laplace(), hb.asymmetric_laplace(quantile=0.9)
    assert median == get_family("asymmetric_laplace") and median.fingerprint == hb.get_family("asym_laplace").fingerprint
    assert q90.fingerprint != median.fingerprint and q90.fingerprint == hb.asymmetric_laplace(0.9).fingerprint
    keys = {hb.Model("y ~ x + (1 | g)", df, family=f).structure for f in (median, q90, hb.asymmetric_laplace(0.9))}
    assert len(keys) == 2
    # and the quantile is in the density: brms's q (1 - q) / sigma exp(-rho_q((y - mu) / sigma)), rho_q(u) = u (q - [u < 0])
    y, eta, sigma = np.array([-0.3, 0.2]), np.zeros((1, 2)), 0.5
    for family, q in ((median, 0.5), (q90, 0.9)):
        rho = y / sigma * (q - (y < 0))
        np.testing.assert_allclose(family.log_likelihood(y, eta, {"sigma": np.array([sigma])})[0],
                                   np.log(q * (1 - q) / sigma) - rho, rtol=1e-12)
    with pytest.raises(hb.HierbayesError, match=r"quantile must lie strictly between 0 and 1, got 1\.5"):
        hb.asymmetric_laplace(quantile=1.5)
    # the model's quantile= is the same family
    assert hb.Model("y ~ x + (1 | g)", df, family="asym_laplace", quantile=0.9).family == q90
    with pytest.raises(hb.HierbayesError, match=r"quantile must lie strictly between 0 and 1, got 0"):
        hb.Model("y ~ x", df, family="asymmetric_laplace", quantile=0)
    with pytest.raises(hb.HierbayesError, match=r"'gaussian' family has no constant 'quantile'"):
        hb.Model("y ~ x", df, quantile=0.9)
    with pytest.raises(hb.HierbayesError, match=r"'gamma' family has no constant 'quantile'; its constants are none"):
        get_family("gamma").with_constants(quantile=0.2)


def prior_draws_fit(model: hb.Model, draws: int = 8) -> tuple[hb.Fit, xr.DataTree]:
    """A Fit whose 'posterior' is prior draws of ``model.pymc_model``, and those draws."""
    names = [v.name for v in model.pymc_model.free_RVs + model.pymc_model.deterministics]  # not the response
    prior = pm.sample_prior_predictive(draws=draws, model=model.pymc_model, var_names=names, random_seed=1,
                                       compile_kwargs=PYTHON)
    tree = xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()})
    return hb.Fit(model, tree.copy(), sampler="prior draws"), tree


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_loos_log_likelihood_is_the_sampled_models_own_log_density(case):
    model = hb.Model("y ~ x + (1 | g)", case.simulate(n_levels=5, per_level=6), family=case.entry())
    fit, draws = prior_draws_fit(model, draws=20)
    fit.add_log_likelihood()
    ours = fit.idata["log_likelihood"]["y"].values
    theirs = pm.compute_log_likelihood(draws, model=model.pymc_model, extend_inferencedata=False,
                                       progressbar=False, compile_kwargs=PYTHON)
    theirs = theirs[response_name(model.design)].transpose("chain", "draw", ...).values
    assert ours.shape == theirs.shape == (1, 20, 30) and np.isfinite(ours).mean() > 0.95
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


LACKS = {"von_mises": ("r2", "icc"), "asymmetric_laplace": ("pooling",)}  # what the family cannot define


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_every_capability_runs_or_names_what_the_family_lacks(case):
    model = hb.Model("y ~ x + (1 | g)", case.simulate(n_levels=5, per_level=6), family=case.entry())
    fit, _ = prior_draws_fit(model, draws=20)
    for draws in (fit.predict(), fit.predict(kind="response", seed=1), fit.posterior_predictive(seed=1)):
        assert draws.shape == (1, 20, 30) and np.isfinite(draws.values).all()
    calls = {"r2": fit.r2, "icc": fit.icc, "pooling": lambda: fit.pooling("g")}
    for name, call in calls.items():
        if name in LACKS.get(case.family, ()):
            with pytest.raises(hb.HierbayesError, match=f"the '{case.family}' family has no "):
                call()
        else:
            numbers = call().select_dtypes("number").to_numpy()
            assert numbers.size and np.isfinite(numbers).all(), name
    if "pooling" not in LACKS.get(case.family, ()):  # the shrinkage plot, on the link scale
        ax = fit.plot_shrinkage("g")
        link = case.entry().link
        assert len(shrinkage_arrows(ax)) == 5
        assert ax.get_ylabel() == ("Intercept" if link == "identity" else f"Intercept ({link} scale)")
        plt.close(ax.figure)


def test_a_saved_fit_keeps_its_quantile(tmp_path):
    df = CASES[0].simulate(n_levels=4, per_level=5)
    model = hb.Model("y ~ x + (1 | g)", df, family=hb.asymmetric_laplace(quantile=0.25))
    fit, _ = prior_draws_fit(model)
    fit.save(tmp_path / "fit.nc")
    loaded = hb.load(tmp_path / "fit.nc")
    assert loaded.model.family.constants == (("quantile", 0.25),)
    assert loaded.model.family.fingerprint == model.family.fingerprint


# --- default priors -------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_prior_summary_lists_the_family_parameters_with_the_documented_defaults(case):
    df = case.simulate(n_levels=6, per_level=10)
    table = hb.Model("y ~ x + (1 | g)", df, family=case.entry()).prior_summary()
    own = [name for name, _ in case.entry().parameters]
    assert list(table.index[-len(own):] if own else []) == own == list(case.params)
    for name in own:
        assert table.loc[name, "prior"] == repr(case.prior[name](df["y"].to_numpy())), name
        assert table.loc[name, "source"] == "default"


def test_lognormal_priors_and_pooling_fits_are_on_the_log_scale():
    case = next(c for c in CASES if c.family == "lognormal")
    df = case.simulate(n_levels=6, per_level=10)
    model = hb.Model("y ~ x + (1 | g)", df, family="lognormal")
    log_y = np.log(df["y"].to_numpy())
    assert model.prior_summary().loc["Intercept", "prior"] == repr(hb.Normal(log_y.mean(), 2.5 * log_y.std(ddof=1)))
    # the no- and complete-pooling fits are least squares of log y
    dummies = pd.get_dummies(df["g"]).to_numpy(dtype=float)
    own, *_ = np.linalg.lstsq(np.column_stack([dummies, df["x"]]), log_y, rcond=None)
    np.testing.assert_allclose(no_pooling(model.design, model.family, "g").estimates[:, 0], own[:6], rtol=1e-8)
    pooled, *_ = np.linalg.lstsq(np.column_stack([np.ones(len(df)), df["x"]]), log_y, rcond=None)
    np.testing.assert_allclose(complete_pooling(model.design, model.family), pooled, rtol=1e-8)


def test_weibull_variance_is_scipys():
    family, mean, shape = get_family("weibull"), np.array([0.5, 2.0]), np.array(1.7)
    scale = mean / special.gamma(1 + 1 / shape)
    np.testing.assert_allclose(family.response_variance(mean, {"shape": shape}),
                               stats.weibull_min(shape, scale=scale).var(), rtol=1e-12)


def test_skew_normal_log_density_stays_finite_far_on_the_short_tail():
    """PyMC's own skew normal density is -inf there (log(1 + erf) underflows): one outlier would stop the sampler."""
    family, p = get_family("skew_normal"), {"sigma": np.array([1.0]), "alpha": np.array([4.0])}
    y = np.array([-12.0, -20.0, 30.0])
    ours = family.log_likelihood(y, np.zeros((1, 3)), p)[0]
    reference = SCIPY["skew_normal"](0.0, {"sigma": 1.0, "alpha": 4.0}).logpdf(y)
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, reference, rtol=1e-8)
