"""The nominal families, categorical and multinomial, without sampling.

Their log densities against a softmax computed here and against scipy.stats.multinomial; the
formula fitted once per category after the first, with brms's names and the default priors;
predictions from prior draws against the linear predictors by hand; and the refusals, each
naming the column, category or term at fault.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr
from scipy import stats

import hierbayes as hb
from hierbayes.common.errors import DataError, DataWarning, FormulaError
from hierbayes.model.data import response_name
from hierbayes.posterior.predict import new_rows, predict_rows
from hierbayes.specification.families import get_family
from hierbayes.specification.likelihood import draw, log_likelihood
from hierbayes.viz.effects import effect_lines


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def choices() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 60
    x = rng.normal(1.0, 2.0, n)
    mode = np.array(["bus", "car", "walk"])[np.arange(n) % 3]
    return pd.DataFrame({"mode": mode, "x": x, "g": [f"s{i % 6}" for i in range(n)],
                         "bus": rng.integers(0, 4, n), "car": rng.integers(1, 5, n), "walk": rng.integers(0, 3, n)})


def test_categorical_log_density_is_the_log_softmax_of_zero_and_the_categories_predictors():
    family = get_family("categorical").with_categories(("a", "b", "c"))
    rng = np.random.default_rng(1)
    mub, muc = rng.normal(size=(2, 4, 5))  # each: 4 draws of 5 rows
    y = np.array([0.0, 1.0, 2.0, 1.0, 0.0])
    ours = log_likelihood(family, y, np.zeros((4, 5)), {"mub": mub, "muc": muc})
    p = softmax(np.stack([np.zeros((4, 5)), mub, muc], axis=-1))
    expected = np.log(np.take_along_axis(p, y.astype(int)[None, :, None], axis=-1)[..., 0])
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    np.testing.assert_allclose(family.nominal_probabilities(np.zeros((4, 5)), {"mub": mub, "muc": muc}), p, rtol=1e-12)


def test_multinomial_log_density_matches_scipy_and_its_draws_keep_the_totals():
    family = get_family("multinomial").with_categories(("a", "b", "c"))
    rng = np.random.default_rng(2)
    mub, muc = rng.normal(size=(2, 3, 4))
    y = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 5.0], [3.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    trials = y.sum(axis=1)
    ours = log_likelihood(family, y, np.zeros((3, 4)), {"mub": mub, "muc": muc}, trials)
    p = softmax(np.stack([np.zeros((3, 4)), mub, muc], axis=-1))
    np.testing.assert_allclose(ours, stats.multinomial.logpmf(y, trials, p), rtol=1e-10)
    counts = draw(family, np.random.default_rng(3), np.zeros((3, 4)), {"mub": mub, "muc": muc}, trials)
    assert counts.shape == (3, 4, 3)
    np.testing.assert_array_equal(counts.sum(axis=-1), np.broadcast_to(trials, (3, 4)))


def test_each_category_after_the_first_gets_the_formula_with_brms_names_and_logit_scale_priors(choices):
    model = hb.Model("mode ~ x + (1 | g)", choices, family="categorical")
    assert model.family.categories == ("bus", "car", "walk")  # sorted; the first is the reference
    assert [name for name, _ in model.family.parameters] == ["mucar", "muwalk"]
    priors = model.prior_summary()["prior"]
    assert list(priors.index) == ["mucar_Intercept", "mucar_x", "sd(mucar_Intercept|g)",
                                  "muwalk_Intercept", "muwalk_x", "sd(muwalk_Intercept|g)"]
    # each intercept centred at its category's log odds against the reference (equal shares here: 0)
    assert priors["mucar_Intercept"] == "Normal(mu=0, sigma=2.5)"
    assert priors["mucar_x"] == f"Normal(mu=0, sigma={2.5 / np.std(choices['x']):.4g})"
    assert priors["sd(muwalk_Intercept|g)"] == "HalfNormal(sigma=1)"
    assert {"r_g__mucar", "r_g__muwalk", "sd_g__mucar", "b_mucar", "b_muwalk"} <= set(model.pymc_model.named_vars)
    np.testing.assert_array_equal(model.design.y[:3], [0.0, 1.0, 2.0])  # each row's category position


def test_a_categorical_response_keeps_pandas_category_order_and_a_category_may_have_its_own_formula(choices):
    df = choices.assign(mode=pd.Categorical(choices["mode"], ["walk", "bus", "car"]))
    model = hb.Model(hb.Formula("mode ~ x + (1 | g)", mucar="~ 1"), df, family="categorical")
    assert model.family.categories == ("walk", "bus", "car")
    assert model.design.part_design("mubus").fixed_names == ("Intercept", "x")
    assert model.design.part_design("mucar").fixed_names == ("Intercept",)
    assert not model.design.part_design("mucar").factors
    shares = df["mode"].value_counts()
    prior = model.priors["mubus_Intercept"]
    assert prior.values["mu"] == pytest.approx(np.log(shares["bus"] / shares["walk"]))


def test_multinomial_counts_are_the_cbind_columns_with_their_row_sums_or_trials(choices):
    model = hb.Model("cbind(bus, car, walk) ~ x", choices, family="multinomial")
    assert model.family.categories == ("bus", "car", "walk")
    assert list(model.prior_summary().index) == ["mucar_Intercept", "mucar_x", "muwalk_Intercept", "muwalk_x"]
    np.testing.assert_array_equal(model.design.y, choices[["bus", "car", "walk"]].to_numpy())
    np.testing.assert_array_equal(model.design.trials, choices[["bus", "car", "walk"]].sum(axis=1))
    total = choices.assign(n=choices[["bus", "car", "walk"]].sum(axis=1))
    assert hb.Model("cbind(bus, car, walk) | trials(n) ~ x", total, family="multinomial").design.trials.sum() == \
        total["n"].sum()
    with pytest.raises(DataError, match=r"must sum to trials\(\) in every row"):
        hb.Model("cbind(bus, car, walk) | trials(n) ~ x", total.assign(n=total["n"] + 1), family="multinomial")


def test_predictions_are_the_softmax_of_the_categories_linear_predictors(choices):
    model = hb.Model("mode ~ x + (1 | g)", choices, family="categorical")
    draws = model.sample_prior_predictive(draws=4, seed=1)["prior"].to_dataset()
    rng = np.random.default_rng(0)
    rows = new_rows(model, None)
    probabilities = predict_rows(model, draws, rows, "probabilities", rng=rng)
    assert probabilities.dims == ("chain", "draw", "obs", "category")
    assert list(probabilities["category"].values) == ["bus", "car", "walk"]
    level = pd.factorize(choices["g"], sort=True)[0]
    etas = [np.zeros((1, 4, len(choices)))]
    for part in ("mucar", "muwalk"):
        b = draws[f"b_{part}"].values  # (chain, draw, [Intercept, x])
        r = draws[f"r_g__{part}"].values[..., 0]  # (chain, draw, level)
        etas.append(b[..., :1] + b[..., 1:] * choices["x"].to_numpy() + r[..., level])
    np.testing.assert_allclose(probabilities.values, softmax(np.stack(etas, axis=-1)), rtol=1e-10)
    np.testing.assert_allclose(predict_rows(model, draws, rows, "mean", rng=rng).values, probabilities.values)
    np.testing.assert_allclose(predict_rows(model, draws, rows, "mucar", rng=rng).values, etas[1], rtol=1e-10)
    response = predict_rows(model, draws, rows, "response", rng=rng).values
    assert response.shape == (1, 4, len(choices)) and set(np.unique(response)) <= {0.0, 1.0, 2.0}


@pytest.mark.parametrize("formula, family, change, error, message", [
    ("mode ~ x", "categorical", lambda d: d.assign(mode=np.where(d["x"] > 1, "bus", "car")), DataError,
     r"response 'mode' has 2 categories \['bus', 'car'\]; .* use family='bernoulli'"),
    ("mode ~ x", "categorical", lambda d: d.assign(mode=pd.Categorical(d["mode"], ["bus", "car", "walk", "tram"])),
     DataError, r"response 'mode' has categories without rows: \['tram'\]"),
    ("mode ~ x", "categorical", lambda d: d.assign(mode=np.where(d.index % 3 == 0, "a b", d["mode"])).assign(
        mode=lambda e: np.where(e.index % 3 == 1, "a_b", e["mode"])), DataError,
     r"categories \['a b', 'a_b'\] whose linear predictors would share the name 'mua_b'"),
    ("mode ~ x", "categorical", lambda d: d.assign(x=np.where(d["mode"] == "walk", np.nan, d["x"])), DataError,
     r"response 'mode' has no rows of the categories \['walk'\] once rows with missing values are dropped"),
    ("mode ~ x + offset(x)", "categorical", None, FormulaError, r"the categorical family takes no offset\(\)"),
    ("cbind(bus, car) ~ x", "categorical", None, FormulaError,
     r"the categorical family takes one response column of categories, without cbind\(\)"),
    ("cbind(bus, car, walk) ~ x", "multinomial", lambda d: d.assign(car=d["car"] + 0.5), DataError,
     r"response 'car' must hold non-negative whole counts; found \d\.5 on 60 rows"),
    ("cbind(bus, car, walk) ~ x", "multinomial", lambda d: d.assign(bus=-d["bus"] - 1), DataError,
     r"response 'bus' must hold non-negative whole counts; found -\d"),
    ("cbind(bus, car, walk) ~ x", "multinomial", lambda d: d.assign(**dict.fromkeys(["bus", "car", "walk"], np.where(d.index < 2, 0, 1))),
     DataError, r"must have a positive total in every row .*found 0 on 2 rows \(first at rows \[0, 1\]\)"),
    ("cbind(bus, car, walk) ~ x", "multinomial", lambda d: d.assign(walk=0), DataError,
     r"count column 'walk' is 0 in every row: its category never occurs"),
    ("cbind(bus, car) ~ x", "multinomial", None, FormulaError, r"for two, cbind\(bus, car\), use family='binomial'"),
    ("mode ~ x", "multinomial", None, FormulaError, r"for one column of categories use family='categorical'"),
    ("cbind(bus, car, tram) ~ x", "multinomial", None, DataError, r"'tram' is not one"),
    ("cbind(bus, car, walk) ~ x", "poisson", None, DataError,
     r"cbind\(bus, car, walk\) has 3 count columns: the response of family='multinomial', not 'poisson'"),
])
def test_bad_nominal_inputs_are_refused_by_name(choices, formula, family, change, error, message):
    data = choices if change is None else change(choices)
    with pytest.raises(error, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the rows with a missing predictor, dropped
        hb.Model(formula, data, family=family)


def test_a_formula_for_a_category_the_model_does_not_have_names_the_ones_it_has(choices):
    with pytest.raises(FormulaError, match=r"no parameter 'mutram'; .* after the reference 'bus', are: 'mucar', "
                                           r"'muwalk'"):
        hb.Model(hb.Formula("mode ~ x", mutram="~ 1"), choices, family="categorical")
    with pytest.raises(FormulaError, match=r"ID shared across formula parts"):
        hb.Model("mode ~ x + (1 | p | g)", choices, family="categorical")


@pytest.mark.parametrize("formula, family", [("mode ~ x + (1 | g)", "categorical"),
                                             ("cbind(bus, car, walk) ~ x + (1 | g)", "multinomial")])
def test_loos_log_likelihood_is_the_sampled_models_own_log_density(choices, formula, family):
    model = hb.Model(formula, choices, family=family)
    pymc_model = model.pymc_model
    names = [v.name for v in pymc_model.free_RVs + pymc_model.deterministics]  # not the response
    python = {"mode": "FAST_COMPILE"}  # PyTensor's Python linker: the same numbers, no compile
    prior = pm.sample_prior_predictive(draws=20, model=pymc_model, var_names=names, random_seed=1,
                                       compile_kwargs=python)
    draws = xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()})
    fit = hb.Fit(model, draws.copy(), sampler="prior draws")
    fit.add_log_likelihood()
    name = response_name(model.design)
    theirs = pm.compute_log_likelihood(draws, model=pymc_model, extend_inferencedata=False, progressbar=False,
                                       compile_kwargs=python)[name].transpose("chain", "draw", ...).values
    ours = fit.idata["log_likelihood"][name].values
    assert ours.shape == theirs.shape == (1, 20, len(choices))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


@pytest.mark.parametrize("family", ["categorical", "multinomial"])
def test_calibration_simulates_the_categories_from_the_softmax_of_the_parts(family):
    from hierbayes.lessons.calibration import CHOICES, calibration_data
    from hierbayes.lessons.simulation import draw_prior, simulate_truth, with_response

    data = calibration_data(groups=50, per_group=20, seed=3)  # 1000 rows, 10 trials each
    response = "choice" if family == "categorical" else "cbind(votes_a, votes_b, votes_c)"
    model = hb.Model(f"{response} ~ x + (1 | g)", data, family=family)
    parts = [name for name, _ in model.family.parameters]
    theta = {label: v[0] for label, v in draw_prior(model.priors, model.design, 1, np.random.default_rng(1)).items()}
    theta.update({f"{parts[0]}_Intercept": 0.4, f"{parts[0]}_x": 0.8, f"{parts[1]}_Intercept": -0.3,
                  f"{parts[1]}_x": -0.6})
    truth, y = simulate_truth(model.design, model.family, model.priors, theta, np.random.default_rng(2))
    assert sorted(truth.data_vars) == sorted(f"{kind}{part}" for part in parts
                                             for kind in ("b_", "r_g__", "sd_g__"))
    # each category's linear predictor from the recorded truth: X b + the group's effect
    X = np.column_stack([np.ones(len(data)), data["x"]])
    level = pd.Categorical(data["g"], categories=truth[f"r_g__{parts[0]}"]["g"].values).codes
    etas = {part: X @ truth[f"b_{part}"].values[0, 0] + truth[f"r_g__{part}"].values[0, 0, level, 0] for part in parts}
    p = model.family.nominal_probabilities(np.zeros(len(data)), etas)  # (N, 3)
    trials = np.ones(len(data)) if family == "categorical" else data[["votes_a", "votes_b", "votes_c"]].sum(axis=1).values
    expected = (trials[:, None] * p).sum(axis=0)
    if family == "categorical":
        assert y.shape == (len(data),) and set(np.unique(y)) <= {0.0, 1.0, 2.0}
        out = with_response(data, model.design, y, model.family)
        assert list(out["choice"].cat.categories) == list(CHOICES) and not out["choice"].cat.ordered
        np.testing.assert_array_equal(out["choice"].cat.codes, y.astype(int))
        observed = np.bincount(y.astype(int), minlength=3)
    else:
        assert y.shape == (len(data), 3)
        np.testing.assert_array_equal(y.sum(axis=1), trials)  # the design's row totals
        out = with_response(data, model.design, y, model.family)
        np.testing.assert_array_equal(out[["votes_a", "votes_b", "votes_c"]].values, y)
        observed = y.sum(axis=0)
    # the categories' totals within 4 binomial standard deviations of the model's expected totals
    sd = np.sqrt((trials[:, None] * p * (1 - p)).sum(axis=0))
    assert np.all(np.abs(observed - expected) < 4 * sd), (observed, expected, sd)
    assert np.all(expected / trials.sum() > 0.1)  # every category has a real share: the test can tell them apart
    hb.Model(f"{response} ~ x + (1 | g)", out, family=family)  # the simulated data are a valid response


def test_weights_multiply_each_rows_categorical_log_density_and_other_addition_terms_are_refused(choices):
    weights = np.random.default_rng(5).integers(1, 4, len(choices)).astype(float)
    weighted = hb.Model("mode | weights(w) ~ x", choices.assign(w=weights), family="categorical").pymc_model
    plain = hb.Model("mode ~ x", choices, family="categorical").pymc_model
    start = plain.initial_point()
    rows = plain.compile_logp(vars=[plain["mode"]], sum=False)(start)[0]
    total = weighted.compile_logp(vars=[weighted["mode"]])(weighted.initial_point())
    np.testing.assert_allclose(total, np.sum(weights * rows), rtol=1e-12)
    with pytest.raises(FormulaError, match=r"cens\(x\): the categorical family's response cannot be censored"):
        hb.Model("mode | cens(x) ~ x", choices, family="categorical")
    with pytest.raises(FormulaError, match=r"weights\(x\): the multinomial family's counts take no addition term"):
        hb.Model("cbind(bus, car, walk) | weights(x) ~ x", choices, family="multinomial")


def prior_fit(model: hb.Model) -> hb.Fit:
    """A Fit whose 'posterior' is prior draws: enough to read predictions without sampling."""
    prior = model.sample_prior_predictive(draws=30, seed=2)["prior"].to_dataset()
    return hb.Fit(model, xr.DataTree.from_dict({"posterior": prior}), sampler="prior draws")


@pytest.mark.parametrize("formula, family", [("mode ~ x + side", "categorical"),
                                             ("cbind(bus, car, walk) ~ x + side", "multinomial")])
def test_interpretation_functions_give_one_row_per_category(choices, formula, family):
    fit = prior_fit(hb.Model(formula, choices.assign(side=np.where(choices.index % 2, "left", "right")),
                             family=family))
    means = fit.marginal_means("side")  # within each category, as within a by group
    assert means[["category", "side"]].values.tolist() == [[c, s] for c in ("bus", "car", "walk")
                                                           for s in ("left", "right")]
    np.testing.assert_allclose(means.groupby("side")["estimate"].sum(), 1.0)  # each level's probabilities
    shares = fit.predictions(by=True)
    assert shares["category"].tolist() == ["bus", "car", "walk"]
    np.testing.assert_allclose(shares["estimate"].sum(), 1.0)
    change = fit.comparisons("side")
    assert change["category"].tolist() == ["bus", "car", "walk"] and abs(change["estimate"].sum()) < 1e-12
    assert fit.slopes("x")["category"].tolist() == ["bus", "car", "walk"]
    rows = fit.predictions({"x": [0.0, 1.0]})
    assert rows[["x", "category"]].values.tolist() == [[x, c] for x in (0.0, 1.0) for c in ("bus", "car", "walk")]
    with pytest.raises(hb.HierbayesError, match=r"scale='link' is one linear predictor"):
        fit.predictions(scale="link")
    figure = fit.conditional_effects("x")  # one line per category, whose probabilities sum to 1 along x
    lines = effect_lines(figure.axes[0])
    assert [line.get_label() for line in lines] == ["bus", "car", "walk"]
    np.testing.assert_allclose(sum(line.get_ydata() for line in lines), 1.0)
    plt.close(figure)


def test_a_response_named_category_is_not_taken_for_the_category_labels(choices):
    fit = prior_fit(hb.Model("category ~ x", choices.rename(columns={"mode": "category"}), family="categorical"))
    assert fit.predictions(by=True)["category"].tolist() == ["bus", "car", "walk"]
    with pytest.raises(hb.HierbayesError, match="a predictor has that name; rename it"):
        prior_fit(hb.Model("mode ~ category", choices.assign(category=choices["x"]), family="categorical")
                  ).predictions(by=True)
