"""Models without a group term (``Reaction ~ Days``, ``y ~ 1``): the pooled baseline fitted next to a
multilevel model. They fit, summarise, predict, save, load and compare like any other model, through
the Python API and the command line, and say plainly where group-level results would be that there
are none.

The fixed effects and predictions are checked against statsmodels' maximum-likelihood fits (OLS and
GLM): with the default weakly informative priors and a few hundred rows, the posterior mean sits
within a small fraction of a posterior SD of the estimate, and the posterior SD near its standard error.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hierbayes as hb
from hierbayes import cli
from hierbayes.backend.sampling import FAST_PATH
from hierbayes.common.errors import HierbayesError
from hierbayes.posterior.fit import NO_GROUPS

KW = dict(draws=500, tune=500, chains=2, seed=1, progressbar=False, warn=False)
NEW = pd.DataFrame({"x": [-1.5, 0.0, 0.7, 2.5]})  # 2.5: beyond most of the data
MEAN_WITHIN_SD = 0.3  # |posterior mean - MLE| / posterior SD
SD_RATIO = (0.8, 1.25)  # posterior SD / standard error of the MLE


def simulated(n: int = 400, seed: int = 11) -> pd.DataFrame:
    """One predictor ``x`` and a response per family: bernoulli ``event``, poisson ``count``,
    binomial ``hits`` of ``trials``; a ``site`` column the pooled models ignore."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    trials = rng.integers(5, 15, size=n)
    return pd.DataFrame({
        "x": x,
        "event": rng.binomial(1, 1 / (1 + np.exp(-(-0.5 + 1.0 * x)))),
        "count": rng.poisson(np.exp(1.0 + 0.4 * x)),
        "hits": rng.binomial(trials, 1 / (1 + np.exp(-(0.3 - 0.8 * x)))),
        "trials": trials,
        "site": np.repeat([f"s{k}" for k in range(20)], n // 20),
    }).assign(misses=lambda d: d["trials"] - d["hits"])


DATA = simulated()
X = sm.add_constant(DATA[["x"]])
X_NEW = sm.add_constant(NEW, has_constant="add")
# family -> (formula, statsmodels fit)
CASES = {
    "bernoulli": ("event ~ x", sm.GLM(DATA["event"], X, family=sm.families.Binomial()).fit()),
    "poisson": ("count ~ x", sm.GLM(DATA["count"], X, family=sm.families.Poisson()).fit()),
    "binomial": ("cbind(hits, misses) ~ x",
                 sm.GLM(DATA[["hits", "misses"]], X, family=sm.families.Binomial()).fit()),
}


@pytest.fixture(scope="module")
def pooled(sleepstudy):
    return hb.Model("Reaction ~ Days", sleepstudy).fit(**KW)


@pytest.fixture(scope="module")
def multilevel(sleepstudy):
    return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(**KW)


@pytest.fixture(scope="module")
def glm_fits():
    return {family: hb.Model(formula, DATA, family).fit(**KW) for family, (formula, _) in CASES.items()}


def assert_near_mle(fit, estimates: pd.Series, errors: pd.Series) -> None:
    """Posterior means within MEAN_WITHIN_SD posterior SDs of the MLE, posterior SDs near its SEs."""
    table = fit.fixed_effects()
    assert list(table.index) == list(estimates.index)
    distance = (table["mean"] - estimates).abs() / table["sd"]
    ratio = table["sd"] / errors
    assert (distance < MEAN_WITHIN_SD).all(), pd.DataFrame({"posterior": table["mean"], "mle": estimates,
                                                            "distance": distance})
    assert ratio.between(*SD_RATIO).all(), ratio
    assert (table["r_hat"] < 1.02).all() and (table["ess_bulk"] > 200).all()


def mle_table(result, names) -> tuple[pd.Series, pd.Series]:
    return pd.Series(np.asarray(result.params), index=names), pd.Series(np.asarray(result.bse), index=names)


# --- the model --------------------------------------------------------------------------------------

def test_the_model_has_no_factor_nothing_to_choose_and_nothing_to_integrate_out(sleepstudy):
    model = hb.Model("Reaction ~ Days", sleepstudy)
    assert model.design.factors == {} and not model.collapsed
    assert model.parameterization == {} and model.parameterization_choice.empty
    assert list(model.prior_summary().index) == ["Intercept", "Days", "sigma"]
    assert repr(model).endswith("data: 180 rows; groups: none")
    with pytest.raises(HierbayesError, match="collapse=True is not possible: the model has no grouping factor, so "
                                             "there are no group effects to integrate out"):
        hb.Model("Reaction ~ Days", sleepstudy, collapse=True)
    with pytest.raises(HierbayesError, match="'Subject', which is not a grouping factor of this model"):
        hb.Model("Reaction ~ Days", sleepstudy, parameterization={"Subject": "centered"})


# --- gaussian: fixed effects, summary, display ----------------------------------------------------

def test_gaussian_fixed_effects_and_sigma_match_ols(pooled, sleepstudy):
    ols = sm.OLS(sleepstudy["Reaction"], sm.add_constant(sleepstudy[["Days"]])).fit()
    assert_near_mle(pooled, *mle_table(ols, ["Intercept", "Days"]))
    # sigma: the residual SD (47.7 with 178 degrees of freedom)
    sigma = pooled.summary().loc["sigma"]
    assert abs(sigma["mean"] - np.sqrt(ols.scale)) < 0.5 * sigma["sd"]


def test_summary_tables_have_no_group_rows(pooled):
    assert list(pooled.summary().index) == ["Intercept", "Days", "sigma"]
    vc = pooled.variance_components()
    assert list(vc.index) == ["sigma"]
    np.testing.assert_allclose(vc.loc["sigma", "mean"], pooled.posterior["sigma"].values.mean())
    checks = pooled.diagnostics()  # over the summary's parameters: there are no group effects to add
    assert checks.loc["r_hat", "value"] == pytest.approx(pooled.summary()["r_hat"].max())
    assert checks.loc["ess_bulk", "value"] == pytest.approx(pooled.summary()["ess_bulk"].min())


def test_summary_says_there_are_no_group_level_effects_where_they_would_be(pooled):
    text = repr(pooled)
    assert "Group-level effects: none. The model has no grouping factor" in text
    assert text.index("Group-level effects: none") < text.index("Population-level effects:") \
        < text.index("Family-specific parameters:")
    assert "Group effects:" not in text  # no parameterization line: nothing was parameterized
    assert re.search(r"Days\s+10\.4\d", text)
    page = pooled._repr_html_()
    assert "<h4>Group-level effects: none</h4>" in page and NO_GROUPS in page
    assert page.index("Group-level effects: none") < page.index("Population-level effects:")


def test_group_level_results_say_the_model_has_no_grouping_factor(pooled):
    with pytest.raises(HierbayesError, match="the ICC needs a grouping factor, and the model Reaction ~ Days has "
                                             "none"):
        pooled.icc()
    no_factor = r"'Subject' is not a grouping factor: the model Reaction ~ Days has no grouping factor"
    for call in (lambda: pooled.group_effects("Subject"), lambda: pooled.pooling("Subject"),
                 lambda: pooled.plot_shrinkage("Subject"), lambda: pooled.plot_shrinkage_2d("Subject"),
                 lambda: pooled.plot_group_effects("Subject")):
        with pytest.raises(HierbayesError, match=no_factor):
            call()
    with pytest.raises(HierbayesError, match="the model Reaction ~ Days has no grouping factor, so it has no group "
                                             "effects to plot"):
        pooled.plot_pair()
    with pytest.raises(HierbayesError, match="no grouping factor, so nothing to parameterize"):
        hb.compare_parameterizations(pooled.model)


def test_predictions_are_the_ols_line_whatever_the_groups_option(pooled, sleepstudy):
    ols = sm.OLS(sleepstudy["Reaction"], sm.add_constant(sleepstudy[["Days"]])).fit()
    new = pd.DataFrame({"Days": [0.0, 4.5, 12.0]}, index=["first day", "middle", "beyond the data"])
    table = pooled.predict_summary(new)
    assert list(table.index) == list(new.index)
    expected = ols.predict(sm.add_constant(new, has_constant="add"))
    assert ((table["mean"] - expected).abs() < MEAN_WITHIN_SD * table["sd"]).all()
    known = pooled.predict(new).values
    for groups in ("population", "new"):  # no group effects: the same draws, not merely close
        np.testing.assert_array_equal(pooled.predict(new, groups=groups, seed=1).values, known)
    # the response draws add sigma: their SD is about sqrt(sigma^2 + sd(mean)^2)
    response = pooled.predict_summary(new, kind="response", seed=2)
    sigma = pooled.summary().loc["sigma", "mean"]
    np.testing.assert_allclose(response["sd"], np.sqrt(sigma**2 + table["sd"] ** 2), rtol=0.1)


def test_loo_r2_and_the_posterior_predictive_check(pooled, sleepstudy):
    ols = sm.OLS(sleepstudy["Reaction"], sm.add_constant(sleepstudy[["Days"]])).fit()
    result = pooled.loo()
    # the elpd of a 3-parameter model: the maximised log-likelihood less about 3
    assert abs(float(result.elpd) - (ols.llf - 3)) < 1.5
    assert 2.5 < float(result.p) < 4.0
    assert (result.pareto_k.values < result.good_k).all()
    r2 = pooled.r2().loc["R2"]
    assert abs(r2["mean"] - ols.rsquared) < 2 * r2["sd"]
    replicated = pooled.posterior_predictive(seed=1)
    assert replicated.shape == (2, 500, 180)
    assert abs(float(replicated.mean()) - sleepstudy["Reaction"].mean()) < 2.0


def test_save_and_load_give_the_same_fit(pooled, tmp_path):
    path = tmp_path / "pooled.nc"
    pooled.save(path)
    again = hb.load(path)
    assert again.model.design.factors == {} and not again.model.collapsed
    assert again.model.parameterization == pooled.model.parameterization
    pd.testing.assert_frame_equal(again.summary(), pooled.summary())
    new = pd.DataFrame({"Days": [1.0, 8.0]})
    np.testing.assert_array_equal(again.predict(new).values, pooled.predict(new).values)
    assert repr(again) == repr(pooled)


def test_compare_ranks_the_multilevel_model_first(pooled, multilevel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hb.DataWarning)  # a few influential subjects' rows (Pareto k)
        table = hb.compare({"pooled": pooled, "multilevel": multilevel})
    assert list(table.index) == ["multilevel", "pooled"]
    diff, se = table.loc["pooled", "elpd_diff"], table.loc["pooled", "dse"]
    # brms/loo on sleepstudy: elpd -953 against -861, a difference of about -92 with SE about 21
    assert -110 < diff < -75 and 12 < se < 30 and diff / se < -3
    assert table.loc["multilevel", "weight"] > 0.9


# --- the GLM families -------------------------------------------------------------------------------

@pytest.mark.parametrize("family", list(CASES))
def test_glm_fixed_effects_match_statsmodels(glm_fits, family):
    fit, (_, mle) = glm_fits[family], CASES[family]
    assert_near_mle(fit, *mle_table(mle, ["Intercept", "x"]))
    assert fit.model.design.factors == {} and not fit.model.collapsed


@pytest.mark.parametrize("family", list(CASES))
def test_glm_predictions_match_statsmodels(glm_fits, family):
    fit, (_, mle) = glm_fits[family], CASES[family]
    table = fit.predict_summary(NEW)
    expected = np.asarray(mle.predict(X_NEW))  # the mean: a probability, or a poisson rate
    assert ((table["mean"] - expected).abs() < MEAN_WITHIN_SD * table["sd"]).all(), (table["mean"], expected)
    np.testing.assert_array_equal(fit.predict(NEW, groups="population").values, fit.predict(NEW).values)


@pytest.mark.parametrize("family", list(CASES))
def test_glm_tables_display_and_loo(glm_fits, family):
    fit = glm_fits[family]
    assert list(fit.summary().index) == ["Intercept", "x"]
    vc = fit.variance_components()  # no group SDs, and these families have no parameter of their own
    assert vc.empty and list(vc.columns) == list(fit.summary().columns)
    text = repr(fit)
    assert "Group-level effects: none" in text and "Family-specific parameters" not in text
    assert 1.5 < float(fit.loo().p) < 3.0
    with pytest.raises(HierbayesError, match="the ICC needs a grouping factor"):
        fit.icc()


def test_glm_save_load_round_trip(glm_fits, tmp_path):
    for family, fit in glm_fits.items():
        fit.save(tmp_path / f"{family}.nc")
        again = hb.load(tmp_path / f"{family}.nc")
        pd.testing.assert_frame_equal(again.summary(), fit.summary())
        np.testing.assert_array_equal(again.predict(NEW).values, fit.predict(NEW).values)


# --- y ~ 1 and y ~ 0 ---------------------------------------------------------------------------------

def test_intercept_only_is_the_mean(sleepstudy):
    fit = hb.Model("Reaction ~ 1", sleepstudy).fit(**KW)
    y = sleepstudy["Reaction"]
    ols = sm.OLS(y, np.ones(len(y))).fit()
    assert_near_mle(fit, *mle_table(ols, ["Intercept"]))
    assert list(fit.summary().index) == ["Intercept", "sigma"]
    predicted = fit.predict_summary(pd.DataFrame(index=range(3)))  # nothing to read: no predictor
    np.testing.assert_allclose(predicted["mean"], fit.fixed_effects().loc["Intercept", "mean"])
    assert "Group-level effects: none" in repr(fit)
    assert abs(float(fit.loo().elpd) - (ols.llf - 2)) < 1.5
    assert float(fit.r2().loc["R2", "mean"]) < 1e-12  # every row has the same expected value


def test_no_intercept_no_predictor_no_group_estimates_sigma_alone(sleepstudy):
    """``y ~ 0``: the linear predictor is zero; only sigma is sampled (its MLE: the root mean square)."""
    fit = hb.Model("Reaction ~ 0", sleepstudy).fit(**KW)
    assert list(fit.summary().index) == ["sigma"] and fit.fixed_effects().empty
    sigma = fit.summary().loc["sigma"]
    assert abs(sigma["mean"] - np.sqrt((sleepstudy["Reaction"] ** 2).mean())) < sigma["sd"]
    np.testing.assert_array_equal(fit.predict(pd.DataFrame(index=range(2))).values, 0.0)
    assert np.isfinite(float(fit.loo().elpd))


# --- the compiled-model cache ------------------------------------------------------------------------

def test_the_compiled_model_is_reused_for_other_rows(pooled, sleepstudy):
    """The fast path (its expansion of the draws, the compiled-model cache) serves a pooled model; a
    refit with other rows compiles nothing and fits those rows. (nutpie's public API, the fallback:
    ``tests/integration/test_backend_fallback.py``.)"""
    assert pooled.idata.attrs["sampler_path"] == FAST_PATH
    assert set(pooled.posterior.data_vars) >= {"b", "sigma"}
    later = sleepstudy[sleepstudy["Days"] >= 2]
    refit = hb.Model("Reaction ~ Days", later).fit(**KW)
    assert refit.idata.attrs["sampler_path"] == FAST_PATH
    assert refit.timings["build"] == 0.0
    ols = sm.OLS(later["Reaction"], sm.add_constant(later[["Days"]])).fit()
    assert_near_mle(refit, *mle_table(ols, ["Intercept", "Days"]))


# --- the command line -------------------------------------------------------------------------------

def run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


FAST_CLI = ["--draws", "500", "--tune", "500", "--chains", "2", "--seed", "1", "--no-progress"]
POOLED_FILES = {"summary.csv", "fixed_effects.csv", "variance_components.csv", "diagnostics.csv", "priors.csv",
                "fit.nc", "trace.png", "ppc.png", "report.html", cli.RUN_MANIFEST}


def test_cli_writes_a_complete_run_folder_without_group_sections(sleepstudy, tmp_path):
    data = tmp_path / "sleep.csv"
    sleepstudy.to_csv(data, index=False)
    out = tmp_path / "run"
    code, stdout, stderr = run(["fit", data, "Reaction ~ Days", *FAST_CLI, "--out", out])
    assert code == 0, stderr
    assert "Group-level effects: none" in stdout and f"wrote {out}" in stdout
    assert {p.name for p in out.iterdir()} == POOLED_FILES  # no icc, group effects or shrinkage files
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary folder left
    fit = hb.load(out / "fit.nc")
    fixed = pd.read_csv(out / "fixed_effects.csv", index_col=0)
    pd.testing.assert_frame_equal(fixed, fit.fixed_effects(), check_names=False)
    ols = sm.OLS(sleepstudy["Reaction"], sm.add_constant(sleepstudy[["Days"]])).fit()
    assert_near_mle(fit, *mle_table(ols, ["Intercept", "Days"]))
    assert list(pd.read_csv(out / "variance_components.csv", index_col=0).index) == ["sigma"]

    page = (out / "report.html").read_text()
    assert re.search(r"<th>grouping factors</th>\s*<td>none \(complete pooling\)</td>", page)
    assert "<p id='no-group-effects'>None. The model has no grouping factor" in page
    assert "<p id='no-shrinkage'>No shrinkage plots: the model has no grouping factor" in page
    assert "table-group_effects" not in page and "figure-shrinkage" not in page and "table-icc" not in page
    assert 'id="figure-trace"' in page and 'id="figure-ppc"' in page and 'id="table-fixed_effects"' in page

    code, stdout, _ = run(["summary", out])
    assert code == 0 and "Group-level effects: none" in stdout and re.search(r"Days\s+10\.\d", stdout)


def test_cli_poisson_run_folder_says_it_has_no_variance_components(tmp_path):
    data = tmp_path / "counts.csv"
    DATA.to_csv(data, index=False)
    out = tmp_path / "run"
    code, stdout, stderr = run(["fit", data, "count ~ x", "--family", "poisson", *FAST_CLI, "--out", out])
    assert code == 0, stderr
    assert {p.name for p in out.iterdir()} == POOLED_FILES
    assert pd.read_csv(out / "variance_components.csv").empty
    page = (out / "report.html").read_text()
    assert "<p id='no-variance_components'>None: this model has none of these parameters.</p>" in page
    estimates, _ = mle_table(CASES["poisson"][1], ["Intercept", "x"])
    fixed = pd.read_csv(out / "fixed_effects.csv", index_col=0)
    assert ((fixed["mean"] - estimates).abs() < MEAN_WITHIN_SD * fixed["sd"]).all()
