"""Distributional regression: a formula for a family parameter (``hb.Formula(main, sigma="~ x + (1 | g)")``).

No sampling here: the model's density is checked at a point against scipy, and the posterior
functions (log-likelihood for LOO, predictions of a parameter) on prior draws against the
same hand computation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

import hierbayes as hb
from hierbayes.model.collapsed import collapse_reason
from hierbayes.posterior.fit import Posterior
from hierbayes.specification.formula import Formula, parse

FORMULA = hb.Formula("y ~ x + (1 | g)", sigma="~ x + (1 | g)")


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=40), "g": np.repeat(list("abcd"), 10), "count": rng.poisson(3, 40)})
    df["y"] = 1 + df["x"] + rng.normal(0, np.exp(0.3 * df["x"]))
    return df


@pytest.fixture(scope="module")
def model(data) -> hb.Model:
    return hb.Model(FORMULA, data, parameterization="non-centered")


def by_hand(data: pd.DataFrame, b, r, b_sigma, r_sigma) -> tuple[np.ndarray, np.ndarray]:
    """The mean and sigma of each row: ``b0 + b1 x + u_g`` and ``exp(c0 + c1 x + v_g)`` (draws leading)."""
    g = pd.factorize(data["g"], sort=True)[0]
    x = data["x"].to_numpy()
    mu = b[..., :1] + b[..., 1:2] * x + r[..., g, 0]
    sigma = np.exp(b_sigma[..., :1] + b_sigma[..., 1:2] * x + r_sigma[..., g, 0])
    return mu, sigma


# --- the formula -------------------------------------------------------------------------------

def test_a_parameters_formula_is_a_right_hand_side_with_or_without_the_parameters_name():
    for text in ("~ x + (1 | g)", "sigma ~ x + (1 | g)", "  ~x+(1|g)"):
        part, = parse(Formula("y ~ x", sigma=text)).parts
        assert part.response.expr == "sigma" and part.fixed == "x"
        assert part.blocks == (hb.specification.formula.Block("1", "g"),)
    assert str(FORMULA) == "y ~ x + (1 | g), sigma ~ x + (1 | g)"
    assert parse("y ~ x").parts == ()  # a plain formula is unchanged
    assert Formula("y ~ x", sigma="~ x") == Formula("y ~ x", sigma="~ x") != Formula("y ~ x", sigma="~ 1")


@pytest.mark.parametrize(("auxiliary", "message"), [
    ({"sigma": "y ~ x"}, "has the response 'y': a parameter's formula has no response"),
    ({"sigma": "~ x + offset(x)"}, "has an offset"),
    ({"sigma": "~ ."}, "'.' cannot stand for columns in the formula for 'sigma'"),
    ({"sigma": "x"}, "must be text with a '~'"),
])
def test_a_parameters_formula_with_a_response_offset_or_dot_is_refused(data, auxiliary, message):
    with pytest.raises(hb.FormulaError, match=message):
        hb.Model(hb.Formula("y ~ x", **auxiliary), data)


def test_a_formula_for_a_parameter_the_family_lacks_names_the_ones_it_has(data):
    with pytest.raises(hb.FormulaError, match="the bernoulli family has no parameter 'sigma'; its parameters are: none"):
        hb.Model(hb.Formula("y ~ x", sigma="~ x"), data.assign(y=(data["y"] > 1).astype(int)), "bernoulli")
    with pytest.raises(hb.FormulaError, match="the student_t family has no parameter 'alpha'; its parameters are: "
                                              "'sigma', 'nu'"):
        hb.Model(hb.Formula("y ~ x", alpha="~ x"), data, "student_t")


def test_an_unknown_column_names_the_parameters_formula(data):
    with pytest.raises(hb.DataError, match="unknown column 'z' in the formula for 'sigma'"):
        hb.Model(hb.Formula("y ~ x", sigma="~ z"), data)


def test_missing_values_in_a_parameters_column_drop_the_row_once_for_every_formula(data):
    df = data.assign(w=np.where(np.arange(len(data)) < 3, np.nan, data["x"]))
    with pytest.warns(hb.DataWarning, match="dropped 3 of 40 rows with missing values in 'w' \\(3\\)"):
        m = hb.Model(hb.Formula("y ~ x", sigma="~ w"), df)
    assert m.design.n_obs == m.design.parts[0].X.shape[0] == 37


# --- parameters and priors ------------------------------------------------------------------------

def test_the_parameters_formula_has_brms_labels_classes_and_default_priors(model, data):
    table = model.prior_summary()
    assert "sigma" not in table.index  # one number no more
    log_sd = np.log(np.std(data["y"], ddof=1))  # the log of the start of sigma's own default prior
    expected = {
        "sigma_Intercept": ("Intercept_sigma", hb.Normal(log_sd, 1.5)),
        "sigma_x": ("b_sigma", hb.Normal(0, 1 / np.std(data["x"]))),
        "sd(sigma_Intercept|g)": ("sd_sigma", hb.HalfNormal(1.0)),
    }
    for label, (cls, prior) in expected.items():
        assert table.loc[label, "class"] == cls and table.loc[label, "source"] == "default"
        assert model.priors[label] == prior


def test_correlated_group_terms_of_a_parameter_get_their_own_lkj_prior_and_labels(data):
    m = hb.Model(hb.Formula("y ~ x + (x | g)", sigma="~ x + (x | g)"), data)
    table = m.prior_summary()
    assert table.loc["cor(sigma_Intercept,sigma_x|g)", "class"] == "cor_sigma"
    assert table.loc["cor(Intercept,x|g)", "class"] == "cor"
    from hierbayes.specification.parameters import model_parameters

    labels = [p.label for p in model_parameters(m.design, m.family)]
    assert labels == ["Intercept", "x", "sd(Intercept|g)", "sd(x|g)", "cor(Intercept,x|g)", "sigma_Intercept",
                      "sigma_x", "sd(sigma_Intercept|g)", "sd(sigma_x|g)", "cor(sigma_Intercept,sigma_x|g)"]
    names = {v.name for v in m.pymc_model.free_RVs}
    assert {"corr_chol_0", "corr_chol__sigma_0", "z_g__sigma", "b_slopes__sigma"} <= names


def test_priors_by_label_and_by_the_parameters_own_class(data):
    m = hb.Model(FORMULA, data, priors={"sigma_x": hb.Normal(0, 0.5), "sd_sigma": hb.HalfNormal(0.3),
                                        "b": hb.Normal(0, 9)})
    assert m.priors["sigma_x"] == hb.Normal(0, 0.5) and m.priors["sd(sigma_Intercept|g)"] == hb.HalfNormal(0.3)
    assert m.priors["x"] == hb.Normal(0, 9)  # the mean's class does not reach sigma's formula
    assert m.prior_summary().loc["sigma_Intercept", "source"] == "default"
    with pytest.raises(hb.PriorError, match="'sigma', which is not a parameter of this model; did you mean"):
        hb.Model(FORMULA, data, priors={"sigma": hb.Exponential(1)})
    with pytest.raises(hb.PriorError, match="'sigma_x' is a real parameter"):
        hb.Model(FORMULA, data, priors={"sigma_x": hb.HalfNormal(1)})


def test_a_scalar_parameter_beside_one_with_a_formula_keeps_its_prior(data):
    m = hb.Model(hb.Formula("y ~ x", sigma="~ x"), data, "student_t")
    assert m.prior_summary().loc["nu", "class"] == "nu"
    assert "sigma" not in m.priors and "sigma_x" in m.priors


# --- the compiled model -------------------------------------------------------------------------

def test_models_differing_only_in_a_parameters_formula_never_share_a_compiled_model(data):
    keys = {hb.Model(f, data, collapse=False).structure for f in (
        "y ~ x + (1 | g)", hb.Formula("y ~ x + (1 | g)", sigma="~ x"), hb.Formula("y ~ x + (1 | g)", sigma="~ 1"),
        FORMULA, hb.Formula("y ~ x + (1 | g)", sigma="~ x + (x || g)"))}
    assert len(keys) == 5
    assert hb.Model(hb.Formula("y ~ x + (1 | g)"), data).structure == hb.Model("y ~ x + (1 | g)", data).structure


def test_the_collapsed_path_is_off_when_sigma_has_a_formula_and_says_why(data, model):
    reason = collapse_reason(model.design, model.family)
    assert reason == ("sigma has a formula of its own, so the residual SD varies by row and the group effects "
                      "cannot be integrated out in closed form")
    assert hb.Model("y ~ x + (1 | g)", data).collapsed and not hb.Model(FORMULA, data).collapsed
    with pytest.raises(hb.HierbayesError, match="collapse=True is not possible: sigma has a formula of its own"):
        hb.Model(FORMULA, data, collapse=True)


def test_the_models_log_density_is_the_normal_with_sigma_from_its_formula(model, data):
    pymc_model = model.pymc_model
    rng = np.random.default_rng(1)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in pymc_model.initial_point().items()}
    logp = pymc_model.compile_logp(vars=[pymc_model["y"]], sum=True)(point)
    outs = pymc_model.replace_rvs_by_values([pymc_model[v] for v in ("b", "r_g", "b_sigma", "r_g__sigma")])
    b, r, b_sigma, r_sigma = pymc_model.compile_fn(outs, inputs=pymc_model.value_vars)(point)
    mu, sigma = by_hand(data, b, r, b_sigma, r_sigma)
    assert np.ptp(sigma) > 0.1  # sigma varies by row
    np.testing.assert_allclose(logp, stats.norm.logpdf(data["y"], mu, sigma).sum(), rtol=1e-12)


@pytest.fixture(scope="module")
def prior_fit(model) -> Posterior:
    """A posterior object over 40 prior draws: the posterior functions, without sampling."""
    prior = model.sample_prior_predictive(draws=40, seed=3)["prior"].to_dataset()
    return Posterior(model, xr.DataTree.from_dict({"posterior": prior}), sampler="prior")


def test_the_loo_log_likelihood_uses_each_rows_sigma(prior_fit, data):
    prior_fit.add_log_likelihood()
    post = prior_fit.posterior
    mu, sigma = by_hand(data, *(post[v].values for v in ("b", "r_g", "b_sigma", "r_g__sigma")))
    ours = prior_fit.idata["log_likelihood"]["y"].values
    np.testing.assert_allclose(ours, stats.norm.logpdf(data["y"].to_numpy(), mu, sigma), rtol=1e-10)


def test_predict_kind_sigma_is_the_inverse_link_of_its_linear_predictor(prior_fit, data):
    post = prior_fit.posterior
    _, sigma = by_hand(data, *(post[v].values for v in ("b", "r_g", "b_sigma", "r_g__sigma")))
    np.testing.assert_allclose(prior_fit.predict(kind="sigma").values, sigma, rtol=1e-12)
    new = pd.DataFrame({"x": [0.5, -1.0], "g": ["b", "zz"]})
    population = prior_fit.predict(new, kind="sigma", groups="population").values
    b_sigma = post["b_sigma"].values
    np.testing.assert_allclose(population, np.exp(b_sigma[..., :1] + b_sigma[..., 1:] * new["x"].to_numpy()))
    known = prior_fit.predict(new.iloc[:1], kind="sigma").values[..., 0]
    np.testing.assert_allclose(known, population[..., 0] * np.exp(post["r_g__sigma"].values[:, :, 1, 0]))
    with pytest.raises(hb.DataError, match="level 'zz' of grouping factor 'g' was not in the fitting data"):
        prior_fit.predict(new, kind="sigma")
    with pytest.raises(hb.HierbayesError, match="kind must be one of \\('mean', 'response', 'sigma'\\)"):
        prior_fit.predict(kind="nu")


def test_the_icc_is_refused_when_sigma_varies_by_row(prior_fit):
    with pytest.raises(hb.HierbayesError, match="the ICC is undefined when sigma has a formula of its own"):
        prior_fit.icc()


def test_a_parameter_that_is_one_number_predicts_the_same_for_every_row(data):
    m = hb.Model(hb.Formula("y ~ x", nu="~ 1"), data, "student_t")  # sigma stays one number
    prior = m.sample_prior_predictive(draws=5, seed=1)["prior"].to_dataset()
    fit = Posterior(m, xr.DataTree.from_dict({"posterior": prior}), sampler="prior")
    sigma = fit.predict(kind="sigma").values
    np.testing.assert_allclose(sigma, np.broadcast_to(prior["sigma"].values[..., None], sigma.shape))
    nu = fit.predict(kind="nu").values
    np.testing.assert_allclose(nu, np.broadcast_to(np.exp(prior["b_nu"].values), nu.shape))


def test_group_effects_of_a_parameters_formula_are_its_deviations_and_totals(prior_fit):
    post = prior_fit.posterior
    table = prior_fit.group_effects("g", part="sigma")
    r = post["r_g__sigma"].sel(g="c", g__sigma__coef="Intercept").values
    total = r + post["b_sigma"].sel(sigma_term="Intercept").values
    assert table.loc[("c", "Intercept"), "mean"] == pytest.approx(r.mean())
    assert table.loc[("c", "Intercept"), "total_mean"] == pytest.approx(total.mean())
    assert table["n"].tolist() == [10] * 4
    with pytest.raises(hb.HierbayesError, match="'nu' has no formula of its own in this model"):
        prior_fit.group_effects("g", part="nu")


def test_the_command_line_takes_a_parameters_formula(data, tmp_path, capsys):
    from hierbayes import cli

    path = tmp_path / "d.csv"
    data.to_csv(path, index=False)
    assert cli.main(["fit", str(path), "y ~ x + (1 | g)", "--aux", "sigma=~ x", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "y ~ x + (1 | g), sigma ~ x" in out and "sigma_x" in out and "b_sigma" in out
    assert cli.main(["fit", str(path), "y ~ x", "--aux", "sigma ~ x", "--dry-run"]) != 0
    assert "--aux takes PARAMETER=FORMULA" in capsys.readouterr().err


def test_a_student_t_with_sigma_by_row_and_one_nu_scores_each_row(data):
    m = hb.Model(hb.Formula("y ~ x", sigma="~ x"), data, "student_t")
    prior = m.sample_prior_predictive(draws=20, seed=2)["prior"].to_dataset()
    fit = Posterior(m, xr.DataTree.from_dict({"posterior": prior}), sampler="prior")
    fit.add_log_likelihood()
    b, c, nu = prior["b"].values, prior["b_sigma"].values, prior["nu"].values[..., None]
    x = data["x"].to_numpy()
    expected = stats.t.logpdf(data["y"].to_numpy(), nu, b[..., :1] + b[..., 1:] * x, np.exp(c[..., :1] + c[..., 1:] * x))
    np.testing.assert_allclose(fit.idata["log_likelihood"]["y"].values, expected, rtol=1e-10)


def test_a_name_given_by_two_formulas_is_refused(data):
    with pytest.raises(hb.DataError, match="two formulas name a parameter 'sigma_x'; rename the column"):
        hb.Model(hb.Formula("y ~ sigma_x", sigma="~ x"), data.assign(sigma_x=data["x"] ** 2))


def _zero_inflated_poisson(name, eta, mean, params, observed, trials, dims):
    import pymc as pm

    return pm.ZeroInflatedPoisson(name, psi=1 - params["zi"], mu=mean, observed=observed, shape=observed.shape)


def test_a_probability_gets_its_formula_on_the_logit_scale(data):
    from hierbayes.specification.families.core import check_counts

    family = hb.Family(name="zip", link="log", links=("log",), parameters=(("zi", "unit"),),
                       default_priors=lambda r: {"zi": hb.Beta(1, 3)}, likelihood=_zero_inflated_poisson,
                       check_response=check_counts)
    m = hb.Model(hb.Formula("count ~ x", zi="~ x"), data, family)
    assert m.priors["zi_Intercept"] == hb.Normal(np.log(0.25 / 0.75), 1.5)  # logit of the Beta's mean
    pymc_model = m.pymc_model
    rng = np.random.default_rng(4)
    point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in pymc_model.initial_point().items()}
    logp = pymc_model.compile_logp(vars=[pymc_model["count"]], sum=True)(point)
    b, c = pymc_model.compile_fn(pymc_model.replace_rvs_by_values([pymc_model["b"], pymc_model["b_zi"]]),
                                 inputs=pymc_model.value_vars)(point)
    x, y = data["x"].to_numpy(), data["count"].to_numpy()
    mu, zi = np.exp(b[0] + b[1] * x), 1 / (1 + np.exp(-(c[0] + c[1] * x)))
    by_hand = np.where(y == 0, np.log(zi + (1 - zi) * np.exp(-mu)), np.log1p(-zi) + stats.poisson.logpmf(y, mu))
    np.testing.assert_allclose(logp, by_hand.sum(), rtol=1e-10)


def test_new_levels_draw_a_parameters_group_effects_from_its_own_population(prior_fit):
    post = prior_fit.posterior
    new = pd.DataFrame({"x": np.zeros(200), "g": [f"new{i}" for i in range(200)]})
    sigma = prior_fit.predict(new, kind="sigma", groups="new", seed=5).values
    intercept = post["b_sigma"].sel(sigma_term="Intercept").values[..., None]
    sd = post["sd_g__sigma"].sel(g__sigma__coef="Intercept").values[..., None]
    z = (np.log(sigma) - intercept) / sd  # standard normal if the effects come from N(0, sd(sigma_Intercept|g))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05


def test_new_rows_go_through_the_parameters_formula_with_the_fitting_datas_transforms(data):
    m = hb.Model(hb.Formula("y ~ x", sigma="~ scale(x)"), data)
    prior = m.sample_prior_predictive(draws=5, seed=1)["prior"].to_dataset()
    fit = Posterior(m, xr.DataTree.from_dict({"posterior": prior}), sampler="prior")
    sigma = fit.predict(pd.DataFrame({"x": [data["x"].mean()]}), kind="sigma").values[..., 0]
    # scale(x) of the fitting data's mean is 0, not the new row re-centred on itself
    np.testing.assert_allclose(sigma, np.exp(prior["b_sigma"].sel(sigma_term="Intercept").values), rtol=1e-12)
