"""The Fit object: tables by posterior mean, group effects, ICC, diagnostics and display."""

import html
import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.common.errors import ConvergenceWarning, HierbayesError

KW = dict(draws=300, tune=300, chains=2, seed=5, progressbar=False, warn=False)


@pytest.fixture(scope="module")
def fit(sleepstudy):
    return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(**KW)


def test_summary_columns_are_numbers(fit):
    s = fit.summary()
    assert list(s.columns) == ["mean", "sd", "2.5%", "97.5%", "ess_bulk", "ess_tail", "r_hat"]
    assert all(pd.api.types.is_float_dtype(s[c]) for c in s.columns)
    assert list(s.index) == ["Intercept", "Days", "sd(Intercept|Subject)", "sd(Days|Subject)",
                             "cor(Intercept,Days|Subject)", "sigma"]


def test_means_are_posterior_means(fit):
    b = fit.posterior["b"].sel(term="Days").values
    s = fit.fixed_effects()
    np.testing.assert_allclose(s.loc["Days", "mean"], b.mean())
    np.testing.assert_allclose(s.loc["Days", "2.5%"], np.quantile(b, 0.025))
    np.testing.assert_allclose(fit.fixed_effects(prob=0.9).loc["Days", "95%"], np.quantile(b, 0.95))


def test_variance_component_labels(fit):
    vc = fit.variance_components()
    sd = fit.posterior["sd_Subject"].sel(Subject__coef="Days").values
    np.testing.assert_allclose(vc.loc["sd(Days|Subject)", "mean"], sd.mean())
    cor = fit.posterior["cor_Subject"].sel(Subject__cor="Intercept,Days").values
    np.testing.assert_allclose(vc.loc["cor(Intercept,Days|Subject)", "mean"], cor.mean())
    assert (np.abs(cor) <= 1).all()


def test_group_effects_total_is_population_plus_deviation(fit, sleepstudy):
    ge = fit.group_effects("Subject")
    assert ge.index.names == ["Subject", "coefficient"]
    assert len(ge) == 18 * 2
    r = fit.posterior["r_Subject"].sel(Subject="308", Subject__coef="Days").values
    b = fit.posterior["b"].sel(term="Days").values
    np.testing.assert_allclose(ge.loc[("308", "Days"), "mean"], r.mean())
    np.testing.assert_allclose(ge.loc[("308", "Days"), "total_mean"], (b + r).mean())
    assert ge.loc[("308", "Days"), "n"] == (sleepstudy["Subject"] == "308").sum()
    with pytest.raises(HierbayesError, match="'Subjects' is not a grouping factor"):
        fit.group_effects("Subjects")


def test_effects_reproduce_the_model_linear_predictor(fit, sleepstudy):
    """r = z @ L.T in the posterior matches the fitted means the model used."""
    post = fit.posterior
    eta = fit.linear_predictor()
    row = 13
    subject, days = sleepstudy.loc[row, "Subject"], sleepstudy.loc[row, "Days"]
    b = post["b"].values
    r = post["r_Subject"].sel(Subject=subject).values
    manual = b[..., 0] + r[..., 0] + (b[..., 1] + r[..., 1]) * days
    np.testing.assert_allclose(eta[..., row], manual)
    # and the non-centered construction: sd of the effects tracks sd_Subject draw by draw
    spread = post["r_Subject"].std("Subject").mean(("chain", "draw")).values
    sds = post["sd_Subject"].mean(("chain", "draw")).values
    assert np.all(spread < 1.5 * sds) and np.all(spread > 0.4 * sds)


def test_icc_matches_its_formula(fit):
    post = fit.posterior
    tau2 = post["sd_Subject"].sel(Subject__coef="Intercept").values ** 2
    icc = tau2 / (tau2 + post["sigma"].values ** 2)
    table = fit.icc()
    np.testing.assert_allclose(table.loc["Subject", "mean"], icc.mean())
    assert 0 < table.loc["Subject", "2.5%"] < table.loc["Subject", "97.5%"] < 1


def test_log_likelihood_is_computed_on_request_for_loo(fit, sleepstudy):
    assert "log_likelihood" not in fit.idata.children  # not by default, as in PyMC and bambi
    fit.add_log_likelihood()
    ll = fit.idata["log_likelihood"]["Reaction"]
    assert ll.shape == (2, 300, 180)
    post = fit.posterior
    from scipy import stats

    eta = fit.linear_predictor()  # every chain, draw and row (it is computed a chain at a time)
    np.testing.assert_allclose(ll.values, stats.norm.logpdf(sleepstudy["Reaction"].values, eta,
                                                            post["sigma"].values[..., None]), rtol=1e-12)


def test_repr_is_brms_like(fit):
    text = repr(fit)
    for piece in ["Family: gaussian", "Formula: Reaction ~ Days + (Days | Subject)", "Data: 180 rows",
                  "Group-level effects:", "~Subject (levels: 18)", "Population-level effects:",
                  "Family-specific parameters:", "95% equal-tailed", "sd(Days|Subject)", "Diagnostics:"]:
        assert piece in text, piece
    assert text.index("Group-level") < text.index("Population-level") < text.index("Family-specific")
    html = fit._repr_html_()
    assert html.count("<table") == 3 and "sd(Days|Subject)" in html


def test_diagnostics_report_problems_in_words(sleepstudy):
    short = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        draws=20, tune=15, chains=2, seed=3, progressbar=False, warn=False)
    checks = short.diagnostics()
    assert set(checks.index) == {"r_hat", "ess_bulk", "ess_tail", "divergences", "tree_depth", "e_bfmi"}
    assert not checks.loc["ess_bulk", "ok"]
    assert "Increase draws" in checks.loc["ess_bulk", "message"]
    with pytest.warns(ConvergenceWarning) as record:  # all of them: pytest re-raises the ones a match= leaves out
        assert short.warn_if_unconverged() is False
    assert any("ESS is only" in str(w.message) for w in record)


def test_a_good_fit_warns_nothing(sleepstudy):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fit = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
            draws=1000, tune=1000, chains=4, seed=1, progressbar=False)
    assert fit.diagnostics()["ok"].all()


def test_pymc_sampler_works_too(sleepstudy):
    small = sleepstudy[sleepstudy["Subject"].isin(["308", "309", "310", "330", "331"])]
    fit = hb.Model("Reaction ~ Days + (1 | Subject)", small).fit(
        draws=200, tune=200, chains=2, cores=1, seed=2, sampler="pymc", progressbar=False, warn=False)
    assert fit.sampler == "pymc"
    assert abs(fit.fixed_effects().loc["Days", "mean"] - 10) < 5
    assert "r_hat" in fit.diagnostics().index


@pytest.mark.parametrize(("option", "value", "message"), [
    ("sampler", "stan", "sampler must be one of"),
    ("draws", 0, "draws must be a positive whole number"),
    ("target_accept", 1.5, "target_accept must be between 0 and 1"),
])
def test_bad_sampling_options(sleepstudy, option, value, message):
    with pytest.raises(HierbayesError, match=message):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy).fit(**{**KW, option: value})


def test_bad_parameterization(sleepstudy):
    with pytest.raises(HierbayesError, match="parameterization must be one of"):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, parameterization="centred")
    with pytest.raises(HierbayesError, match="'Subjct', which is not a grouping factor"):
        hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy, parameterization={"Subjct": "centered"})


def test_the_notebook_view_shows_the_failed_checks_first_and_every_table(sleepstudy):
    short = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        draws=20, tune=15, chains=2, seed=3, progressbar=False, warn=False)
    page = short._repr_html_()
    failed = short.diagnostics().query("not ok")["message"]
    assert len(failed) and page.index("Do not trust these numbers yet") < page.index("Family:")
    assert all(html.escape(m) in page for m in failed)
    text = short.describe(digits=3)
    assert text.startswith("WARNING: ") and "Diagnostics: " in text
    row = next(line for line in text.splitlines() if line.startswith("Days "))
    mean, ess = row.split()[1], row.split()[5]
    assert len(mean.split(".")[1]) == 3 and ess.isdigit()  # digits= estimates, whole-number ESS
    assert "<th>parameter</th>" not in page  # no index-name header rows
    assert not any(line.strip() == "parameter" for line in repr(short).splitlines())
