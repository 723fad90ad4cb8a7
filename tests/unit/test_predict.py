"""Predictions: known levels, population, new levels, the stateful new-data design.

Simulated data shaped like sleepstudy (18 subjects x 10 days) with a strong, correlated
varying slope, so the main model has the structure of the package's doctest model and
shares its compiled nutpie model within a test process. Every prediction is checked
draw by draw against a computation by hand from the posterior draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.posterior.predict import new_rows

FIT = dict(draws=300, tune=300, chains=2, seed=3, progressbar=False, warn=False)
TRUE = {"Intercept": 250.0, "Days": 10.0, "sd(Intercept|Subject)": 25.0, "sd(Days|Subject)": 8.0,
        "cor(Intercept,Days|Subject)": 0.6, "sigma": 15.0}


def simulate_sleep(seed: int = 4, n_subjects: int = 18, n_days: int = 10) -> pd.DataFrame:
    """Reaction ~ Days + (Days | Subject) with the values of ``TRUE``; also the true mean ``mu``."""
    rng = np.random.default_rng(seed)
    subject = np.repeat([f"s{j:02d}" for j in range(n_subjects)], n_days)
    days = np.tile(np.arange(n_days, dtype=float), n_subjects)
    sd = np.array([TRUE["sd(Intercept|Subject)"], TRUE["sd(Days|Subject)"]])
    rho = TRUE["cor(Intercept,Days|Subject)"]
    u = rng.multivariate_normal([0, 0], np.outer(sd, sd) * np.array([[1, rho], [rho, 1]]), n_subjects)
    j = np.repeat(np.arange(n_subjects), n_days)
    mu = TRUE["Intercept"] + u[j, 0] + (TRUE["Days"] + u[j, 1]) * days
    return pd.DataFrame({"Reaction": mu + rng.normal(0, TRUE["sigma"], mu.size), "Days": days,
                         "Subject": subject, "mu": mu})


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return simulate_sleep()


@pytest.fixture(scope="module")
def fit(data) -> hb.Fit:
    return hb.Model("Reaction ~ Days + (Days | Subject)", data).fit(**FIT)


@pytest.fixture(scope="module")
def scaled_fit(data) -> hb.Fit:
    """A ``scale(Days)`` model (misspecified: no varying slope; test_checking compares it by LOO)."""
    return hb.Model("Reaction ~ scale(Days) + (1 | Subject)", data).fit(**FIT)


def draws(fit: hb.Fit, var: str, **sel) -> np.ndarray:
    return fit.posterior[var].sel(sel).transpose("chain", "draw").values


NEW = pd.DataFrame({"Days": [0.0, 4.5, 9.0], "Subject": ["s03", "s11", "s03"]}, index=["a", "b", "c"])


def test_known_levels_are_population_plus_level_effect_draw_by_draw(fit):
    pred = fit.predict(NEW)
    assert pred.dims == ("chain", "draw", "obs") and list(pred["obs"].values) == ["a", "b", "c"]
    np.testing.assert_array_equal(pred["chain"].values, fit.posterior["chain"].values)
    np.testing.assert_array_equal(pred["draw"].values, fit.posterior["draw"].values)
    for row, (days, subject) in zip("abc", NEW.itertuples(index=False)):
        by_hand = (draws(fit, "b", term="Intercept") + draws(fit, "r_Subject", Subject=subject, Subject__coef="Intercept")
                   + days * (draws(fit, "b", term="Days")
                             + draws(fit, "r_Subject", Subject=subject, Subject__coef="Days")))
        np.testing.assert_allclose(pred.sel(obs=row).values, by_hand, rtol=1e-12)


def test_fitting_data_prediction_is_the_expected_mean(fit):
    np.testing.assert_allclose(fit.predict().values, fit.expected_mean(), rtol=1e-12)


def test_population_predictions_ignore_the_levels(fit):
    new = pd.DataFrame({"Days": [2.0, 2.0, 7.0], "Subject": ["s00", "never seen", "s05"]})
    pred = fit.predict(new, groups="population").values
    without_column = fit.predict(new[["Days"]], groups="population").values
    np.testing.assert_array_equal(pred, without_column)
    for i, days in enumerate(new["Days"]):
        np.testing.assert_allclose(pred[..., i], draws(fit, "b", term="Intercept") + days * draws(fit, "b", term="Days"))


def test_unseen_level_is_an_error_naming_it_unless_allowed(fit):
    new = pd.DataFrame({"Days": [1.0], "Subject": ["s99"]})
    with pytest.raises(hb.DataError, match=r"level 's99' of grouping factor 'Subject'.*allow_new_levels=True"):
        fit.predict(new)
    assert fit.predict(new, allow_new_levels=True, seed=1).shape == (2, 300, 1)


def test_new_level_effects_follow_the_fitted_population_distribution_with_its_correlation(fit):
    # two rows of one new level at Days 0 and 1 give that level's drawn (u0, u1) per draw
    new = pd.DataFrame({"Days": [0.0, 1.0], "Subject": ["new", "new"]})
    pred = fit.predict(new, groups="new", seed=5).values
    b0, b1 = draws(fit, "b", term="Intercept"), draws(fit, "b", term="Days")
    u0, u1 = pred[..., 0] - b0, pred[..., 1] - pred[..., 0] - b1
    z0 = u0 / draws(fit, "sd_Subject", Subject__coef="Intercept")
    z1 = u1 / draws(fit, "sd_Subject", Subject__coef="Days")
    assert abs(z0.std() - 1) < 0.08 and abs(z1.std() - 1) < 0.08  # spread = the fitted group SD, draw by draw
    assert abs(z0.mean()) < 0.12 and abs(z1.mean()) < 0.12
    rho = draws(fit, "cor_Subject", Subject__cor="Intercept,Days").mean()
    assert abs(np.corrcoef(z0.ravel(), z1.ravel())[0, 1] - rho) < 0.12
    assert rho > 0.2  # the simulated correlation (0.6) is visible, so the check above has teeth


def test_new_level_intervals_are_wider_than_known_level_ones(fit):
    new = pd.DataFrame({"Days": [5.0, 5.0], "Subject": ["s07", "someone else"]})
    table = fit.predict_summary(new, allow_new_levels=True, seed=2)
    width = table["97.5%"] - table["2.5%"]
    assert width.iloc[1] > 2 * width.iloc[0]
    # at Days = 5 a new level adds Var(u0 + 5 u1) = sd0^2 + 10 rho sd0 sd1 + 25 sd1^2 to the population's variance
    sd0, sd1 = draws(fit, "sd_Subject", Subject__coef="Intercept"), draws(fit, "sd_Subject", Subject__coef="Days")
    rho = draws(fit, "cor_Subject", Subject__cor="Intercept,Days")
    population = fit.predict(new.iloc[[1]], groups="population").values
    expected = np.sqrt(population.var() + np.mean(sd0**2 + 10 * rho * sd0 * sd1 + 25 * sd1**2))
    assert table["sd"].iloc[1] == pytest.approx(expected, rel=0.1)


def test_seed_makes_new_level_and_response_draws_reproducible(fit):
    new = pd.DataFrame({"Days": [3.0], "Subject": ["x"]})
    a = fit.predict(new, kind="response", groups="new", seed=11)
    b = fit.predict(new, kind="response", groups="new", seed=11)
    c = fit.predict(new, kind="response", groups="new", seed=12)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)


def test_response_draws_add_the_observation_noise(fit):
    new = pd.DataFrame({"Days": [4.0] * 4, "Subject": ["s01"] * 4})
    mean = fit.predict(new).values
    response = fit.predict(new, kind="response", seed=3).values
    noise = (response - mean) / fit.posterior["sigma"].transpose("chain", "draw").values[..., None]
    assert abs(noise.std() - 1) < 0.05 and abs(noise.mean()) < 0.05


def test_scale_transform_is_reused_on_a_single_new_row(scaled_fit, data):
    row = pd.DataFrame({"Days": [6.3], "Subject": ["s02"]})
    pred = scaled_fit.predict(row).values[..., 0]
    z = (6.3 - data["Days"].mean()) / data["Days"].std(ddof=1)  # the fitting data's mean and SD
    by_hand = (draws(scaled_fit, "b", term="Intercept") + z * draws(scaled_fit, "b", term="scale(Days)")
               + draws(scaled_fit, "r_Subject", Subject="s02", Subject__coef="Intercept"))
    np.testing.assert_allclose(pred, by_hand, rtol=1e-12)


def test_predict_summary_is_mean_sd_and_interval_per_row(fit):
    table = fit.predict_summary(NEW, prob=0.9)
    pred = fit.predict(NEW).values.reshape(-1, 3)
    assert list(table.columns) == ["mean", "sd", "5%", "95%"] and list(table.index) == ["a", "b", "c"]
    np.testing.assert_allclose(table["mean"], pred.mean(axis=0))
    np.testing.assert_allclose(table["95%"], np.quantile(pred, 0.95, axis=0))


@pytest.mark.parametrize("kind, groups, message", [
    ("median", "known", "kind must be one of"),
    ("mean", "all", "groups must be one of"),
])
def test_bad_options_are_named(fit, kind, groups, message):
    with pytest.raises(hb.HierbayesError, match=message):
        fit.predict(NEW, kind=kind, groups=groups)


# --- the new-data design alone (no sampling) -----------------------------------------------------

@pytest.fixture(scope="module")
def categorical_model() -> hb.Model:
    df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 2.5, 3.0], "x": [0.0, 1, 2, 3, 4, 5],
                       "treatment": ["control", "drug", "control", "drug", "placebo", "placebo"],
                       "g": list("aabbcc")})
    return hb.Model("y ~ center(x) + treatment + (1 | g)", df)


def test_unknown_fixed_effect_level_is_an_error_naming_column_and_level(categorical_model):
    new = pd.DataFrame({"x": [1.0], "treatment": ["surgery"], "g": ["a"]})
    with pytest.raises(hb.DataError, match=r"column 'treatment' .* level 'surgery'"):
        new_rows(categorical_model, new)


def test_new_rows_encode_levels_and_centre_as_the_fitting_data(categorical_model):
    new = pd.DataFrame({"x": [2.5, 0.0], "treatment": ["placebo", "control"], "g": ["b", "zz"]})
    rows = new_rows(categorical_model, new)
    names = categorical_model.design.fixed_names
    assert names == ("Intercept", "center(x)", "treatment[T.drug]", "treatment[T.placebo]")
    np.testing.assert_array_equal(rows.X, [[1, 0.0, 0, 1], [1, -2.5, 0, 0]])  # centred on the fitting mean 2.5
    assert list(rows.factors[0].labels) == ["b", "zz"]


def test_missing_column_and_missing_value_are_named(categorical_model):
    with pytest.raises(hb.DataError, match="lack the column 'treatment'"):
        new_rows(categorical_model, pd.DataFrame({"x": [1.0], "g": ["a"]}))
    with pytest.raises(hb.DataError, match=r"column 'x' .* 1 missing values"):
        new_rows(categorical_model, pd.DataFrame({"x": [np.nan], "treatment": ["drug"], "g": ["a"]}))
    with pytest.raises(hb.DataError, match="lack the column 'g'"):
        new_rows(categorical_model, pd.DataFrame({"x": [1.0], "treatment": ["drug"]}))
    assert new_rows(categorical_model, pd.DataFrame({"x": [1.0], "treatment": ["drug"]}), groups="population").n_rows == 1


def test_integer_levels_given_as_floats_match():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0], "x": [0.0, 1, 2, 3], "g": [10, 10, 20, 20]})
    model = hb.Model("y ~ x + (1 | g)", df)
    rows = new_rows(model, pd.DataFrame({"x": [1.0], "g": [20.0]}))
    assert list(rows.factors[0].labels) == ["20"] and "20" in model.design.factors["g"].levels


# --- exact checks on a posterior written by hand (no sampling) --------------------------------------

def fake_fit(model: hb.Model, n_draws: int, **values) -> hb.Fit:
    """A Fit whose every draw holds ``values`` (labelled by the model's design), one chain."""
    d = model.design
    coords = {"term": list(d.fixed_names)}
    dims = {"b": ("term",)}
    for f, fd in d.factors.items():
        coords[f], coords[f"{f}__coef"] = list(fd.levels), list(d.factor_coefs(f))
        dims |= {f"r_{f}": (f, f"{f}__coef"), f"sd_{f}": (f"{f}__coef",), f"cor_{f}": (f"{f}__cor",)}
    variables = {}
    for name, value in values.items():
        value = np.asarray(value, dtype=float)
        variables[name] = (("chain", "draw", *dims.get(name, ())), np.broadcast_to(value, (1, n_draws, *value.shape)))
    if "cor_g" in values:
        coords["g__cor"] = ["Intercept,x"]
    import xarray as xr

    tree = xr.DataTree.from_dict({"posterior": xr.Dataset(variables, coords=coords)})
    return hb.Fit(model, tree, sampler="by hand")


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return pd.DataFrame({"y": [1, 0, 3, 2, 5, 4], "f": [3, 4, 1, 2, 0, 1], "x": [0.0, 1, 2, 3, 4, 5],
                         "g": list("aabbcc")})


def test_poisson_means_go_through_the_inverse_link_and_responses_are_poisson(small):
    model = hb.Model("y ~ x + (1 | g)", small, family="poisson")
    fit = fake_fit(model, 4000, b=[0.5, 0.3], r_g=[[0.2], [-0.1], [0.0]], sd_g=[0.5])
    new = pd.DataFrame({"x": [1.0, 2.0], "g": ["a", "b"]})
    np.testing.assert_allclose(fit.predict(new).values[0, 0], np.exp([0.5 + 0.3 + 0.2, 0.5 + 0.6 - 0.1]))
    y = fit.predict(new, kind="response", seed=1).values[0]
    assert np.array_equal(y, np.round(y)) and (y >= 0).all()
    np.testing.assert_allclose(y.mean(axis=0), np.exp([1.0, 1.0]), rtol=0.05)
    np.testing.assert_allclose(y.var(axis=0), np.exp([1.0, 1.0]), rtol=0.1)  # variance = mean


def test_binomial_response_draws_take_the_trials_from_the_cbind_columns(small):
    model = hb.Model("cbind(y, f) ~ x + (1 | g)", small, family="binomial")
    fit = fake_fit(model, 4000, b=[0.0, 0.0], r_g=[[0.0], [0.0], [0.0]], sd_g=[0.5])
    new = pd.DataFrame({"x": [1.0, 2.0], "g": ["a", "b"], "y": [0, 0], "f": [10, 40]})
    np.testing.assert_allclose(fit.predict(new).values, 0.5)  # the mean is the probability
    y = fit.predict(new, kind="response", seed=1).values[0]
    assert (y[:, 0] <= 10).all() and (y[:, 1] <= 40).all()
    np.testing.assert_allclose(y.mean(axis=0), [5, 20], rtol=0.03)
    with pytest.raises(hb.DataError, match="lack the column 'f'"):
        fit.predict(new.drop(columns="f"), kind="response")


@pytest.mark.parametrize("formula, covariance", [
    ("y ~ x + (x | g)", [[4.0, -3.0], [-3.0, 9.0]]),             # sd (2, 3), correlation -0.5
    ("y ~ x + (x || g)", [[4.0, 0.0], [0.0, 9.0]]),              # independent
    ("y ~ x + (1 | g) + (0 + x | g)", [[4.0, 0.0], [0.0, 9.0]]),  # two blocks on one factor: independent
])
def test_new_level_effects_have_the_population_covariance(small, formula, covariance):
    model = hb.Model(formula, small)
    values = dict(b=[0.0, 0.0], r_g=np.zeros((3, 2)), sd_g=[2.0, 3.0])
    if "(x | g)" in formula:
        values["cor_g"] = [-0.5]
    fit = fake_fit(model, 20000, **values)
    new = pd.DataFrame({"x": [0.0, 1.0, 0.0], "g": ["new", "new", "other"]})
    pred = fit.predict(new, groups="new", seed=2).values[0]
    u = np.stack([pred[:, 0], pred[:, 1] - pred[:, 0], pred[:, 2]])  # (u0, u1) of "new", u0 of "other"
    np.testing.assert_allclose(np.cov(u[:2]), covariance, atol=0.3)
    assert abs(np.corrcoef(u[0], u[2])[0, 1]) < 0.03  # distinct new levels are independent


# --- a rejected call leaves the fit as it was ------------------------------------------------------

@pytest.mark.parametrize("formula", ["y ~ x + (1 | g)", "y ~ scale(x) + (x | g)"])
@pytest.mark.parametrize("bad, value, count", [(["abc", 2.0], "'abc'", 1), (["1", "2"], "'1'", 2)])
def test_a_rejected_prediction_names_the_value_and_changes_nothing(small, formula, bad, value, count, monkeypatch):
    """Text where a number was expected: a DataError naming column, value and row; later predictions are intact."""
    model = hb.Model(formula, small)
    slope = "(x |" in formula
    values = dict(b=[0.5, 0.3], r_g=np.full((3, 2 if slope else 1), 0.1), sd_g=[0.5] * (2 if slope else 1))
    if slope:
        values["cor_g"] = [0.2]
    fit = fake_fit(model, 5, **values)
    new = pd.DataFrame({"x": [1.0, 2.0], "g": ["a", "b"]})
    before = fit.predict(new).values
    state = repr(model.design.fixed_spec.encoder_state), repr(model.design.fixed_spec.transform_state)
    with pytest.raises(hb.DataError, match=rf"column 'x' of the new data holds {value} \(row 0\), which is not a "
                                           rf"number; the model was fitted with numbers in 'x' \({count} such rows\)"):
        fit.predict(new.assign(x=bad))
    np.testing.assert_array_equal(fit.predict(new).values, before)
    assert (repr(model.design.fixed_spec.encoder_state), repr(model.design.fixed_spec.transform_state)) == state
    # the design is evaluated on a copy, so even a value that passed the checks could not change it
    import hierbayes.posterior.predict as predict_module

    monkeypatch.setattr(predict_module, "_check_numbers", lambda *args: None)
    with pytest.raises(hb.DataError):
        fit.predict(new.assign(x=bad))
    np.testing.assert_array_equal(fit.predict(new).values, before)


def test_brms_words_for_the_kinds_are_accepted(fit):
    """brms's predict() draws the response and its posterior_epred() is the expected value."""
    new = fit.model.data.iloc[[0, 15]].drop(columns="Reaction")
    np.testing.assert_array_equal(fit.predict(new, kind="prediction", seed=3).values,
                                  fit.predict(new, kind="response", seed=3).values)
    np.testing.assert_array_equal(fit.predict(new, kind="epred").values, fit.predict(new).values)
    with pytest.raises(hb.HierbayesError, match="kind must be one of"):
        fit.predict(new, kind="posterior_predict")
