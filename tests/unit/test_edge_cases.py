"""Formulas and data at the edges: each fits (and summarises, predicts, saves and loads), or is
refused before anything is compiled with a message naming the column or term.

Three models are sampled (a response with ``/``, no fixed effects, factor names in other
scripts); everything else is checked on the design or on draws written by hand.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_predict import fake_fit

import hierbayes as hb
from hierbayes.common.errors import DataError, FormulaError
from hierbayes.posterior.predict import new_rows
from hierbayes.specification.design import level_label
from hierbayes.specification.formula import MAX_TERMS, parse

FIT = dict(draws=200, tune=200, chains=2, seed=5, progressbar=False, warn=False)


def _round_trip(fit: hb.Fit, path) -> hb.Fit:
    fit.save(path)
    again = hb.load(path)
    pd.testing.assert_frame_equal(again.summary(), fit.summary())
    return again


# --- models users write --------------------------------------------------------------------------

def test_a_response_with_a_slash_fits_and_keeps_a_valid_name(sleepstudy, tmp_path):
    fit = hb.Model("Reaction/1000 ~ Days + (1 | Subject)", sleepstudy).fit(**FIT)
    observed = fit.idata["observed_data"]["Reaction_1000"]  # the observed variable's name, as PyMC's
    np.testing.assert_allclose(observed.values, sleepstudy["Reaction"] / 1000)
    assert 0.008 < fit.fixed_effects().loc["Days", "mean"] < 0.013  # 10.5 ms per day, in seconds
    assert fit.posterior_predictive(seed=1).name == "Reaction_1000"
    assert np.isfinite(fit.loo(warn=False).elpd)
    again = _round_trip(fit, tmp_path / "fit.nc")
    assert list(again.idata["observed_data"].data_vars) == ["Reaction_1000"]


def test_grouping_factors_whose_internal_names_clash_are_refused_naming_both(sleepstudy):
    data = sleepstudy.assign(**{"g.1": sleepstudy["Subject"], "g_1": sleepstudy["Days"] % 3})
    with pytest.raises(DataError, match=r"grouping factors 'g\.1' and 'g_1' would share the internal name 'g_1'"):
        hb.Model("Reaction ~ Days + (1 | g.1) + (1 | g_1)", data)


def test_a_model_without_fixed_effects_fits_summarises_predicts_and_saves(sleepstudy, tmp_path):
    from hierbayes.viz.report import report_tables

    fit = hb.Model("Reaction ~ 0 + (1 | Subject)", sleepstudy).fit(**FIT)
    assert fit.model.design.fixed_names == ()
    assert fit.fixed_effects().empty and list(fit.fixed_effects().columns)[:2] == ["mean", "sd"]
    assert list(fit.summary().index) == ["sd(Intercept|Subject)", "sigma"]
    assert 200 < fit.summary().loc["sd(Intercept|Subject)", "mean"] < 350  # the levels' means sit near 300
    assert report_tables(fit)["fixed_effects"].empty
    mean_308 = sleepstudy.loc[sleepstudy["Subject"].astype(str) == "308", "Reaction"].mean()
    predicted = fit.predict_summary(pd.DataFrame({"Subject": [308]}))
    assert abs(predicted["mean"].iloc[0] - mean_308) < 15
    _round_trip(fit, tmp_path / "fit.nc")


@pytest.mark.parametrize("formula", ["y ~ x + ((1 | g))", "y ~ x + (((1 | g)))", "y ~ x + ( (1 | g) )"])
def test_redundant_parentheses_around_a_group_term_are_read(formula):
    assert parse(formula).blocks == parse("y ~ x + (1 | g)").blocks


def test_a_bar_inside_inner_parentheses_is_refused_with_a_caret():
    with pytest.raises(FormulaError, match=r"a group term is \(expr \| factor\)") as info:
        parse("y ~ (x + (1 | g))")
    assert info.value.position == len("y ~ (x + (1 ")


@pytest.fixture
def wide() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 40
    return pd.DataFrame({"y": rng.normal(size=n), "s": rng.integers(0, 5, size=n), "f": rng.integers(1, 5, size=n),
                         "x": rng.normal(size=n), "body mass": rng.normal(size=n), "g": np.repeat(list("abcd"), 10)})


def test_dot_stands_for_every_other_column_never_the_response_or_a_factor(wide):
    model = hb.Model("y ~ . + (1 | g)", wide)
    assert model.design.fixed_names == ("Intercept", "s", "f", "x", "body mass")
    assert hb.Model("y ~ . - x + (1 | g)", wide).design.fixed_names == ("Intercept", "s", "f", "body mass")
    binomial = hb.Model("cbind(s, f) ~ . + (1 | g)", wide, "binomial")
    assert binomial.design.fixed_names == ("Intercept", "y", "x", "body mass")
    with pytest.raises(FormulaError, match="'.' stands for every column except the response and the grouping"):
        hb.Model("y ~ . + (1 | g)", wide[["y", "g"]])


def test_a_dot_model_saves_and_loads_with_the_same_columns(wide, tmp_path):
    model = hb.Model("y ~ . + (1 | g)", wide)
    fit = fake_fit(model, 4, b=[0.0, 1.0, 2.0, 3.0, 4.0], r_g=[[0.0]] * 4, sd_g=[1.0], sigma=1.0)
    again = _round_trip(fit, tmp_path / "fit.nc")
    assert again.model.design.fixed_names == model.design.fixed_names
    pd.testing.assert_frame_equal(again.predict_summary(wide.head(3)), fit.predict_summary(wide.head(3)))


def test_a_formula_with_too_many_terms_is_refused_not_a_recursion_error(sleepstudy):
    formula = "Reaction ~ " + " + ".join(["Days"] * 20_000) + " + (1 | Subject)"
    with pytest.raises(FormulaError, match=f"the formula has 20001 terms; a formula has at most {MAX_TERMS}"):
        hb.Model(formula, sleepstudy)


@pytest.mark.parametrize("term", ["I(" + " + ".join(["Days"] * 20_000) + ")", "I(" * 300 + "Days" + ")" * 300])
def test_an_expression_too_deep_to_read_is_a_formula_error(sleepstudy, term):
    with pytest.raises(FormulaError, match="nested too deeply|cannot read"):
        hb.Model(f"Reaction ~ {term} + (1 | Subject)", sleepstudy)


# --- data ------------------------------------------------------------------------------------------

def test_a_used_column_present_twice_is_refused_naming_it(sleepstudy, tmp_path):
    doubled = pd.concat([sleepstudy, sleepstudy[["Days"]] * 2], axis=1)
    with pytest.raises(DataError, match="the data have 2 columns named 'Days'"):
        hb.Model("Reaction ~ Days + (1 | Subject)", doubled)
    path = tmp_path / "doubled.csv"
    doubled.to_csv(path, index=False)  # pandas would read the second as 'Days.1'
    with pytest.raises(DataError, match=r"'.*doubled\.csv' has 2 columns named 'Days'"):
        hb.read_data(path)


@pytest.mark.parametrize(("column", "message"), [
    (lambda d: pd.to_timedelta(d["Days"], unit="D"),
     r"column 't' holds durations \(timedelta64.*\); a formula needs numbers: convert it first, e\.g\. "
     r"df\['t'\] = df\['t'\]\.dt\.total_seconds\(\) / 86400"),
    (lambda d: pd.Timestamp("2024-03-01") + pd.to_timedelta(d["Days"], unit="D"),
     r"column 't' holds dates and times \(datetime64.*\); .* df\['t'\] = \(df\['t'\] - df\['t'\]\.min\(\)\)\.dt\.days"),
    (lambda d: (pd.Timestamp("2024-03-01") + pd.to_timedelta(d["Days"], unit="D")).dt.tz_localize("UTC"),
     r"column 't' holds dates and times"),
])
def test_dates_and_durations_as_predictors_are_refused_with_a_conversion(sleepstudy, column, message):
    with pytest.raises(DataError, match=message):
        hb.Model("Reaction ~ t + (1 | Subject)", sleepstudy.assign(t=column(sleepstudy)))


def test_dates_may_be_the_levels_of_a_grouping_factor(sleepstudy):
    day = pd.Timestamp("2024-03-01") + pd.to_timedelta(sleepstudy["Days"], unit="D")
    model = hb.Model("Reaction ~ 1 + (1 | day)", sleepstudy.assign(day=day))
    assert model.design.factors["day"].levels[:2] == ("2024-03-01 00:00:00", "2024-03-02 00:00:00")
    rows = new_rows(model, pd.DataFrame({"day": [pd.Timestamp("2024-03-02")]}))
    assert list(rows.factors[0].labels) == ["2024-03-02 00:00:00"]


@pytest.mark.parametrize(("formula", "change", "message"), [
    ("Reaction ~ x + (1 | Subject)", lambda d: d.assign(x=d["Days"] * 1e300),
     r"column 'x' has values as large as 9e\+300, too large to scale priors by .* divide it by 1e300"),
    ("y ~ Days + (1 | Subject)", lambda d: d.assign(y=d["Reaction"] * 1e300), r"column 'y' has values as large"),
    ("Reaction ~ I(Days * 1e300) + (1 | Subject)", None,
     r"fixed effects: column 'I\(Days \* 1e\+300\)' has values as large as 9e\+300"),
])
def test_values_too_large_to_scale_priors_are_refused_naming_the_column(sleepstudy, formula, change, message):
    with pytest.raises(DataError, match=message):
        hb.Model(formula, change(sleepstudy) if change else sleepstudy)


LEVELS = {"int": [308, 309, 310], "float": [308.0, 309.0, 310.0], "str": ["308", "309", "310"]}


@pytest.mark.parametrize("fitted", list(LEVELS))
@pytest.mark.parametrize("given", list(LEVELS))
def test_a_level_matches_however_its_number_is_written(fitted, given):
    data = pd.DataFrame({"y": [1.0, 2.0, 3.5, 4.0, 2.5, 3.0], "g": np.repeat(LEVELS[fitted], 2)})
    model = hb.Model("y ~ 1 + (1 | g)", data)
    assert model.design.factors["g"].levels == ("308", "309", "310")
    fit = fake_fit(model, 3, b=[10.0], r_g=[[1.0], [2.0], [3.0]], sd_g=[1.0], sigma=1.0)
    new = pd.DataFrame({"g": LEVELS[given][::-1]})
    np.testing.assert_allclose(fit.predict(new).values[0, 0], [13.0, 12.0, 11.0])  # no level taken as unseen


def test_values_of_two_types_that_print_alike_are_refused():
    data = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "g": pd.Series([1, "1", 2, 2], dtype=object)})
    with pytest.raises(DataError, match=r"grouping factor column 'g' has different values that print the same, '1'"):
        hb.Model("y ~ 1 + (1 | g)", data)
    assert [level_label(v) for v in (1.0, np.float32(2.5), np.int16(3), True)] == ["1", "2.5", "3", "True"]


def test_a_column_quoted_with_Q_survives_save_and_load(sleepstudy, tmp_path):
    data = sleepstudy.rename(columns={"Days": "days of sleep loss"})
    model = hb.Model("Reaction ~ Q('days of sleep loss') + (1 | Subject)", data)
    assert list(model.data.columns) == ["Reaction", "days of sleep loss", "Subject"]
    fit = fake_fit(model, 4, b=[250.0, 10.0], r_Subject=[[0.0]] * 18, sd_Subject=[1.0], sigma=1.0)
    again = _round_trip(fit, tmp_path / "fit.nc")
    new = data.head(3)
    pd.testing.assert_frame_equal(again.predict_summary(new), fit.predict_summary(new))
    np.testing.assert_allclose(again.predict(new).values[0, 0], 250 + 10 * new["days of sleep loss"])


def test_factor_names_in_other_scripts_fit_summarise_predict_save_and_load(sleepstudy, tmp_path):
    data = sleepstudy.rename(columns={"Subject": "Schüler"}).assign(学校=sleepstudy["Subject"].astype(int) % 3)
    fit = hb.Model("Reaction ~ Days + (1 | Schüler) + (1 | 学校)", data).fit(**FIT)
    assert {"sd(Intercept|Schüler)", "sd(Intercept|学校)"} <= set(fit.summary().index)
    assert len(fit.group_effects("学校")) == 3
    assert re.search(r"~Schüler \(levels: 18\).*~学校 \(levels: 3\)", str(fit), flags=re.S)
    new = pd.DataFrame({"Days": [0.0, 9.0], "Schüler": [308, 309], "学校": [0, 2]})
    predicted = fit.predict_summary(new)
    assert (predicted["mean"].between(180, 450)).all()
    for name in ("fit.nc", "fit.zarr"):
        again = _round_trip(fit, tmp_path / name)
        pd.testing.assert_frame_equal(again.group_effects("学校"), fit.group_effects("学校"))
        pd.testing.assert_frame_equal(again.predict_summary(new), predicted)
