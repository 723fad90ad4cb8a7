"""Calibration of what users fit: a family parameter's own formula and the ordinal families.

The simulation from the prior gives the posterior's variables, names and shapes, and a response
with the spread a parameter's formula implies; a cumulative model's thresholds are drawn in
increasing order (the ordered transform's prior) and its response is the category. A tiny
``calibrate`` run of each is in ``tests/statistical/test_calibration.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import hierbayes as hb
from hierbayes.lessons.calibration import calibration_data
from hierbayes.lessons.simulation import draw_prior, ordered_labels, simulate_truth, tracked_parameters, with_response

SIGMA = hb.Formula("y ~ x + (1 | g)", sigma="~ x + (1 | g)")


@pytest.fixture(scope="module")
def data():
    return calibration_data(groups=8, per_group=5, seed=2)


def _theta(model, rng, **fixed):
    theta = {label: v[0] for label, v in draw_prior(model.priors, model.design, 1, rng,
                                                    ordered=ordered_labels(model.design, model.family)).items()}
    return {**theta, **fixed}


def test_a_parameters_formula_is_simulated_with_the_posteriors_names(data):
    model = hb.Model(SIGMA, data)
    truth, y = simulate_truth(model.design, model.family, model.priors, _theta(model, np.random.default_rng(0)),
                              np.random.default_rng(1))
    assert y.shape == (40,) and np.isfinite(y).all()
    assert dict(truth["b_sigma"].sizes) == {"chain": 1, "draw": 1, "sigma_term": 2}
    assert dict(truth["r_g__sigma"].sizes) == {"chain": 1, "draw": 1, "g": 8, "g__sigma__coef": 1}
    assert "sigma" not in truth  # one value per row: its formula's effects are what is ranked
    labels = [p.label for p in tracked_parameters(model.design, model.family)]
    assert labels == ["Intercept", "x", "sd(Intercept|g)", "sigma_Intercept", "sigma_x", "sd(sigma_Intercept|g)",
                      "r_g[g0,Intercept]", "r_g__sigma[g0,Intercept]"]


def test_the_simulated_spread_follows_sigmas_formula():
    data = calibration_data(groups=40, per_group=100, seed=5)
    model = hb.Model(SIGMA, data)
    fixed = {"Intercept": 0.0, "x": 0.0, "sd(Intercept|g)": 1e-9, "sigma_Intercept": np.log(2.0), "sigma_x": 1.0,
             "sd(sigma_Intercept|g)": 1e-9}
    truth, y = simulate_truth(model.design, model.family, model.priors, _theta(model, np.random.default_rng(0), **fixed),
                              np.random.default_rng(1))
    x = data["x"].to_numpy()
    sigma = np.exp(np.log(2.0) + 1.0 * (x - x.mean()))  # the intercept is at the centred column, as the prior's
    assert truth["b_sigma"].sel(sigma_term="Intercept").item() == pytest.approx(np.log(2.0) - 1.0 * x.mean())
    # y / sigma is standard normal: Kolmogorov-Smirnov on 4000 rows
    assert stats.kstest(y / sigma, "norm").pvalue > 1e-3
    assert stats.kstest(y / 2.0, "norm").pvalue < 1e-6  # a constant sigma does not fit


def test_cumulative_thresholds_are_drawn_increasing_from_their_priors(data):
    model = hb.Model("rating ~ x + (1 | g)", data, family="cumulative")
    labels = ordered_labels(model.design, model.family)
    assert labels == ["Intercept[1]", "Intercept[2]", "Intercept[3]", "Intercept[4]"]
    draws = draw_prior(model.priors, model.design, 500, np.random.default_rng(0), ordered=labels)
    thresholds = np.stack([draws[label] for label in labels], axis=-1)
    assert thresholds.shape == (500, 4) and (np.diff(thresholds, axis=-1) > 0).all()
    assert ordered_labels(model.design, hb.get_family("sratio")) == []  # sratio's thresholds are free


def test_an_ordinal_response_is_simulated_as_categories_with_the_models_probabilities():
    data = calibration_data(groups=20, per_group=200, seed=1)
    model = hb.Model("rating ~ x + (1 | g)", data, family="cumulative")
    fixed = {"Intercept[1]": -1.5, "Intercept[2]": -0.5, "Intercept[3]": 0.5, "Intercept[4]": 1.5, "x": 0.0,
             "sd(Intercept|g)": 1e-9}
    truth, y = simulate_truth(model.design, model.family, model.priors, _theta(model, np.random.default_rng(0), **fixed),
                              np.random.default_rng(2))
    assert truth["thresholds"].coords["threshold"].values.tolist() == ["1", "2", "3", "4"]
    assert set(np.unique(y)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    expected = model.family.category_probabilities(np.zeros(1), np.array([-1.5, -0.5, 0.5, 1.5]))[0]
    shares = np.bincount(y.astype(int), minlength=5) / y.size
    np.testing.assert_allclose(shares, expected, atol=0.02)  # 4000 rows: binomial sd below 0.008
    frame = with_response(data, model.design, y)
    assert frame["rating"].cat.ordered and list(frame["rating"].cat.categories) == [1, 2, 3, 4, 5]
