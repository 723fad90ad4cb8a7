"""Any dataframe a user holds is accepted: polars, pyarrow, the interchange protocol; anything else
is refused naming its type in full."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import hierbayes as hb

FIT = dict(draws=100, tune=100, chains=1, seed=2, progressbar=False, warn=False)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    g = np.repeat(list("abcdef"), 8)
    return pd.DataFrame({"y": rng.normal(size=g.size) + pd.factorize(g)[0] * 0.3, "x": rng.normal(size=g.size),
                         "g": g})


@pytest.mark.parametrize("convert", [pl.from_pandas, pa.Table.from_pandas,
                                     lambda df: pl.from_pandas(df).to_arrow()],
                         ids=["polars", "pyarrow", "polars-to-arrow"])
def test_other_dataframes_give_the_same_model_as_pandas(frame, convert):
    reference = hb.Model("y ~ x + (1 | g)", frame)
    model = hb.Model("y ~ x + (1 | g)", convert(frame))
    np.testing.assert_array_equal(model.design.X, reference.design.X)
    np.testing.assert_array_equal(model.design.y, reference.design.y)
    assert model.design.factors["g"].levels == reference.design.factors["g"].levels
    assert model.structure == reference.structure  # the same compiled model


def test_polars_categorical_and_new_data_in_polars(frame):
    data = pl.from_pandas(frame).with_columns(pl.col("g").cast(pl.Categorical))
    fit = hb.Model("y ~ x + (1 | g)", data).fit(**FIT)
    new = pl.DataFrame({"x": [0.0, 1.0], "g": ["a", "f"]})
    np.testing.assert_allclose(fit.predict(new).values, fit.predict(new.to_pandas()).values)


@pytest.mark.parametrize(("data", "name"), [([1, 2], "builtins.list"), (np.ones((3, 2)), "numpy.ndarray"),
                                            ({"y": [1.0]}, "builtins.dict")])
def test_a_non_dataframe_is_refused_with_its_full_type_name(data, name):
    with pytest.raises(hb.DataError, match=rf"data must be a dataframe \(pandas, polars, a pyarrow table, ...\), "
                                           rf"got {name}$"):
        hb.Model("y ~ 1", data)
