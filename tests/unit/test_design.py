"""Spec + data -> design arrays: level indices, Z columns, and every bad input caught early."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.common.errors import DataError, DataWarning, FormulaError
from hierbayes.specification.columns import used_columns
from hierbayes.specification.design import make_design
from hierbayes.specification.families import get_family
from hierbayes.specification.formula import parse


def design(formula, data, family="gaussian", **kw):
    return make_design(parse(formula), data, get_family(family), **kw)


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    n = 40
    return pd.DataFrame({
        "y": rng.normal(size=n),
        "x": rng.normal(size=n),
        "k": np.tile(["lo", "mid", "hi", "lo"], n // 4),
        "a": np.repeat(["A1", "A2"], n // 2),
        "b": np.tile(np.repeat(["b1", "b2"], 5), n // 10),
        "c": np.tile([3, 1, 2, 10], n // 4),
        "count": rng.poisson(2.0, size=n),
        "t": rng.uniform(1, 3, size=n),
    })


def test_level_index_and_names(df):
    d = design("y ~ x + (1 | c)", df)
    f = d.factors["c"]
    # numeric levels sort numerically (10 after 3), named as strings
    assert f.levels == ("1", "2", "3", "10")
    assert [f.levels[i] for i in f.index[:4]] == ["3", "1", "2", "10"]
    assert f.counts.tolist() == [10, 10, 10, 10]
    assert f.index.dtype == np.int32


def test_interaction_factor_levels_are_observed_combinations(df):
    d = design("y ~ 1 + (1 | a/b)", df)
    assert list(d.factors) == ["a", "a:b"]
    assert d.factors["a:b"].levels == ("A1:b1", "A1:b2", "A2:b1", "A2:b2")
    expected = (df["a"] + ":" + df["b"]).tolist()
    got = [d.factors["a:b"].levels[i] for i in d.factors["a:b"].index]
    assert got == expected


def test_block_columns(df):
    d = design("y ~ x + (x | a) + (C(k) | b)", df)
    b0, b1 = d.blocks
    assert b0.coef_names == ("Intercept", "x")
    np.testing.assert_allclose(b0.Z[:, 1], df["x"])
    assert b1.coef_names == ("Intercept", "C(k)[T.lo]", "C(k)[T.mid]")
    assert d.factor_coefs("b") == b1.coef_names


def test_fixed_part_and_offset(df):
    d = design("y ~ x + C(k) + offset(np.log(t))", df)
    assert d.fixed_names == ("Intercept", "x", "C(k)[T.lo]", "C(k)[T.mid]")
    np.testing.assert_allclose(d.offset, np.log(df["t"]))
    assert d.has_intercept
    assert not design("y ~ 0 + x", df).has_intercept


def test_binomial_trials(df):
    data = df.assign(s=df["count"], f=df["count"] + 1)
    d = design("cbind(s, f) ~ x + (1 | a)", data, "binomial")
    np.testing.assert_allclose(d.trials, 2 * data["count"] + 1)


def test_used_columns_and_unknown_column(df):
    assert used_columns(parse("y ~ scale(x) + (1 | a/b)"), df.columns) == ["y", "x", "a", "b"]
    with pytest.raises(DataError, match="unknown column 'xx'.*did you mean 'x'"):
        design("y ~ xx + (1 | a)", df)
    with pytest.raises(DataError, match="unknown column 'grp'"):
        design("y ~ x + (1 | grp)", df)


def test_missing_values_are_dropped_with_a_count(df):
    data = df.copy()
    data.loc[[0, 1], "x"] = np.nan
    data.loc[[1, 2], "a"] = None
    data.loc[5, "t"] = np.nan  # unused column: must not drop
    with pytest.warns(DataWarning, match=r"dropped 3 of 40 rows with missing values in 'x' \(2\), 'a' \(2\)"):
        d = design("y ~ x + (1 | a)", data)
    assert d.n_obs == 37 and d.n_dropped == 3
    with pytest.raises(DataError, match="3 rows have missing values"):
        design("y ~ x + (1 | a)", data, na_action="error")


def test_no_warning_without_missing_values(df):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        design("y ~ x + (1 | a)", df)


def test_hundred_thousand_levels_stay_small():
    n = 200_000
    rng = np.random.default_rng(1)
    data = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                         "g": rng.integers(0, 100_000, size=n)})
    d = design("y ~ x + (x | g)", data)
    assert len(d.factors["g"].levels) == len(np.unique(data["g"]))
    assert d.blocks[0].Z.shape == (n, 2)  # an index and q columns, never rows x levels


@pytest.mark.parametrize(
    ("formula", "family", "change", "error", "message"),
    [
        ("k ~ x + (1 | a)", "gaussian", None, DataError, "response 'k' must be numeric"),
        ("y ~ x + (1 | a)", "gaussian", lambda d: d.assign(a="A1"), DataError,
         "grouping factor 'a' has only one level"),
        ("y ~ x + (1 | a)", "bernoulli", None, DataError, "must be 0 or 1"),
        ("y ~ x + (1 | a)", "poisson", None, DataError, "non-negative whole counts"),
        ("count ~ x + (1 | a)", "poisson", lambda d: d.assign(count=d["count"] - 3), DataError,
         "non-negative whole counts"),
        ("count ~ x + (1 | a)", "negative_binomial", lambda d: d.assign(count=d["count"] + 0.5), DataError,
         "non-negative whole counts"),
        ("cbind(count, c) ~ x + (1 | a)", "binomial", lambda d: d.assign(c=-d["c"]), DataError,
         "failures column 'c'"),
        ("count ~ x + (1 | a)", "binomial", None, DataError, "cbind"),
        ("y ~ x + (1 | a)", "gaussian", lambda d: d.assign(x=np.r_[np.inf, d["x"][1:]]), DataError,
         "column 'x' has 1 infinite values"),
        ("y ~ x + (1 | a)", "gaussian", lambda d: d.iloc[:0], DataError, "empty"),
        ("y ~ x + (1 | a)", "gaussian", lambda d: d.assign(y=3.0), DataError, "constant"),
        ("y ~ x + x2 + (1 | a)", "gaussian", lambda d: d.assign(x2=2 * d["x"]), DataError,
         "'x2' is a linear combination of 'x'"),
        ("y ~ x + (C(k) || a)", "gaussian", None, FormulaError, "ambiguous"),
        ("y ~ x + (1 | a) + (1 | a)", "gaussian", None, FormulaError, "'Intercept' varies by 'a' in more than one"),
    ],
)
def test_bad_input(df, formula, family, change, error, message):
    data = change(df) if change else df
    with pytest.raises(error, match=re.escape(message) if "'" not in message else message):
        hb.Model(formula, data, family)


def test_transform_that_makes_nan_is_refused_not_dropped(df):
    with pytest.raises(DataError, match=r"column 'np.log\(x\)' has \d+ infinite or undefined values"):
        design("y ~ np.log(x) + (1 | a)", df)


def test_data_must_be_a_dataframe():
    with pytest.raises(DataError, match=r"must be a dataframe \(pandas, polars, a pyarrow table, ...\), got builtins.dict"):
        design("y ~ x", {"y": [1, 2]})


def test_as_many_levels_as_rows_warns_for_gaussian_only(df):
    data = df.assign(id=np.arange(len(df)))
    with pytest.warns(DataWarning, match="as many levels as rows"):
        design("y ~ x + (1 | id)", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        design("count ~ x + (1 | id)", data, "poisson")  # observation-level effects: overdispersion


@pytest.mark.parametrize("name", ["b", "sigma", "X"])
def test_a_factor_may_not_take_the_name_of_a_model_variable(df, name):
    data = df.assign(**{name: df["a"]})
    with pytest.raises(DataError, match=f"grouping factor '{name}' has the name of one of the model's own"):
        hb.Model(f"y ~ x + (1 | {name})", data)
