"""Nested factors drawn around their parent's effects (hierbayes.model.coordinates.nested_centering).

A centered factor nested in another centered factor (classes in schools, lecturers in departments)
draws each level's intercept around its parent level's, and the parent's intercepts reach the
linear predictor only through the child's. A shift of unit Jacobian (the log densities are compared
point by point in ``tests/unit/test_parameterizations.py``): here, which factors take it, that
``r_<factor>`` still records each level's own deviation, that the linear predictor counts the
parent's effect once, and that fits agree with the non-centered model's, with a factor integrated
out beside them too (the InstEval design: students crossed with lecturers nested in departments).
"""

from __future__ import annotations

import numpy as np
import pytest
from same_effects import assert_fits_agree, nested_counts

import hierbayes as hb
from hierbayes.model import coordinates
from hierbayes.model import data as contract
from hierbayes.specification import names as N

FIT = dict(draws=500, tune=500, chains=2, seed=5, progressbar=False, warn=False)
FORMULA = "y ~ x + (1 | district) + (1 | school) + (1 | klass)"


def test_each_factor_is_nested_in_the_nearest_factor_that_holds_it():
    df = nested_counts()
    design = hb.Model(FORMULA + " + (1 | rater)", df, "poisson").design
    nested = coordinates.nested_in(design)
    assert {child: parent for child, (parent, _) in nested.items()} == {"school": "district", "klass": "school"}
    levels = design.factors
    for child, (parent, index) in nested.items():  # the parent's level of each child level, from the rows
        np.testing.assert_array_equal(index[levels[child].index], levels[parent].index)


def test_only_centered_pairs_nest_and_a_parent_is_carried_by_one_child():
    df = nested_counts()
    design = hb.Model(FORMULA, df, "poisson").design
    around = coordinates.nested_centering
    centering = coordinates.hierarchical_centering(design, "centered")
    assert around(design, "centered", centering) == {"school": "district", "klass": "school"}
    assert around(design, "non-centered", None) == {}
    # the parent must be centered too: klass's nearest parent is school, non-centered here
    mixed = {"district": "centered", "klass": "centered"}
    assert around(design, mixed, coordinates.hierarchical_centering(design, mixed)) == {}
    # two factors nested in school: the first in formula order is drawn around it, the other is folded
    halves = df.assign(period=df["school"] + (np.arange(len(df)) % 2).astype(str))
    m = hb.Model("y ~ x + (1 | school) + (1 | period) + (1 | klass)", halves, "poisson", parameterization="centered",
                 collapse=False)
    assert around(m.design, "centered", coordinates.hierarchical_centering(m.design, "centered")) == {"period": "school"}
    assert coordinates.folded_factors(m.design, "centered", ("school", ("Intercept",))) == ["klass"]
    # which factor nests in which is part of the compiled structure (its data's layout)
    flat = hb.Model("y ~ x + (1 | school) + (1 | rater)", df, "poisson")
    assert m.structure[-5] == (("period", "school"), ("klass", "school")) and flat.structure[-5] == ()


def test_parent_levels_travel_with_the_data_and_not_when_integrated_out():
    df = nested_counts()
    m = hb.Model("score ~ x + (1 | school) + (1 | klass)", df)
    assert m.collapsed  # the nested pair is integrated out: nothing is drawn around anything
    assert N.FactorNames("klass").parent_levels not in contract.model_data(m.design, m.family, m.priors, True)
    plain = hb.Model("score ~ x + (1 | school) + (1 | klass)", df, collapse=False)
    values = contract.model_data(plain.design, plain.family, plain.priors, False)
    np.testing.assert_array_equal(values[N.FactorNames("klass").parent_levels], np.repeat(np.arange(12), 4))


@pytest.fixture(scope="module")
def nested_fits():
    df = nested_counts(districts=6)
    return {p: hb.Model("y ~ x + (1 | school) + (1 | klass)", df, "poisson", parameterization=p, collapse=False).fit(**FIT)
            for p in ("centered", "non-centered")}


def test_nested_poisson_fits_agree_with_the_non_centered_model(nested_fits):
    c, nc = nested_fits["centered"], nested_fits["non-centered"]
    assert "u_klass_1" in c.posterior and "u_klass_1" not in nc.posterior
    for var in ("b", "sd_school", "sd_klass", "r_school", "r_klass"):
        assert_fits_agree(c, nc, var)
    assert ("klass centered (each level's effects drawn directly); its intercepts drawn around those of "
            "school, in which it is nested") in repr(c)


def test_recorded_effects_are_each_levels_own_and_the_parent_counts_once(nested_fits):
    c = nested_fits["centered"]
    p, d = c.posterior, c.model.design
    klass_school = coordinates.nested_in(d)["klass"][1]
    # r_klass is the class's drawn intercept less its school's drawn one (which holds the fixed intercept)
    np.testing.assert_allclose(p["r_klass"].values[..., 0],
                               p["u_klass_1"].values[..., 0] - p["u_school_0"].values[..., klass_school, 0], atol=1e-10)
    # the linear predictor from b and every r: each factor's effect once, as predictions and summaries read it
    eta = c.linear_predictor()
    for i in (0, 123, 700):
        manual = (p["b"].values[..., 0] + p["b"].values[..., 1] * d.X[i, 1]
                  + sum(p[f"r_{f}"].values[..., d.factors[f].index[i], 0] for f in ("school", "klass")))
        np.testing.assert_allclose(eta[..., i], manual, atol=1e-10)


def test_crossed_with_a_nested_pair_beside_an_integrated_factor_agrees_with_all_sampled():
    """InstEval's shape: the crossed factor with the most levels integrated out, the nested pair sampled around each other."""
    df = nested_counts(raters=60)
    formula = "score ~ x + (1 | rater) + (1 | school) + (1 | klass)"
    collapsed = hb.Model(formula, df, parameterization="centered")
    assert coordinates.integrated_factors(collapsed.design) == ("rater",)
    assert collapsed.fitting_model.named_vars.keys() >= {"u_klass_2", "u_school_1"}
    fit = collapsed.fit(**FIT)
    plain = hb.Model(formula, df, parameterization="non-centered", collapse=False).fit(**FIT)
    for var in ("b", "sd_rater", "sd_school", "sd_klass", "sigma", "r_school", "r_klass", "r_rater"):
        assert_fits_agree(fit, plain, var)
