"""Saving and loading fits: identical results after a round trip, clear errors for bad files.

The fit has user priors, a dropped row and a categorical grouping column whose level order
is not alphabetical, so the round trip must restore the whole design state, not just the draws.
Its structure is that of test_predict's main model (one compile per test process).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from test_predict import FIT, simulate_sleep

import hierbayes as hb

NEW = pd.DataFrame({"Days": [0.0, 6.5, 3.0], "Subject": ["s04", "s10", "somebody new"]})


@pytest.fixture(scope="module")
def fit() -> hb.Fit:
    data = simulate_sleep()
    order = sorted(data["Subject"].unique(), reverse=True)
    data["Subject"] = pd.Categorical(data["Subject"], categories=order)
    data.loc[5, "Reaction"] = np.nan
    with pytest.warns(hb.DataWarning, match="dropped 1 of 180 rows"):
        model = hb.Model("Reaction ~ Days + (Days | Subject)", data, priors={"Days": hb.Normal(5, 20)})
    fit = model.fit(**FIT)
    fit.posterior_predictive(seed=4)
    return fit


@pytest.fixture(scope="module", params=["fit.nc", "fit.zarr"])
def loaded(request, fit, tmp_path_factory) -> hb.Fit:
    path = tmp_path_factory.mktemp("saved") / request.param
    fit.save(path)
    return hb.load(path)


def test_round_trip_gives_identical_summaries(fit, loaded):
    pd.testing.assert_frame_equal(loaded.summary(), fit.summary())
    pd.testing.assert_frame_equal(loaded.group_effects("Subject"), fit.group_effects("Subject"))
    pd.testing.assert_frame_equal(loaded.icc(), fit.icc())
    pd.testing.assert_frame_equal(loaded.diagnostics(), fit.diagnostics())
    pd.testing.assert_frame_equal(loaded.model.prior_summary(), fit.model.prior_summary())
    assert repr(loaded) == repr(fit)


def test_round_trip_restores_the_design_state(fit, loaded):
    assert loaded.model.design.factors["Subject"].levels == fit.model.design.factors["Subject"].levels
    assert loaded.model.design.factors["Subject"].levels[0] == "s17"  # the categorical order, not sorted
    assert loaded.model.design.n_dropped == 1
    assert loaded.model.priors["Days"] == hb.Normal(5, 20)
    assert loaded.model.structure == fit.model.structure
    assert (loaded.sampler, loaded.seed, loaded.prob) == (fit.sampler, fit.seed, fit.prob)


def test_round_trip_gives_identical_predictions_and_groups(fit, loaded):
    for groups in ("known", "new"):
        kwargs = dict(groups=groups, allow_new_levels=True, kind="response", seed=9)
        pd.testing.assert_frame_equal(loaded.predict_summary(NEW, **kwargs), fit.predict_summary(NEW, **kwargs))
    xr.testing.assert_identical(loaded.idata["posterior_predictive"].to_dataset(),
                                fit.idata["posterior_predictive"].to_dataset())
    assert loaded.loo(warn=False).elpd == fit.loo(warn=False).elpd
    assert "hierbayes_data" not in loaded.idata.children
    assert "hierbayes_data" not in fit.idata.children and "user_priors" not in fit.idata.attrs  # save left fit alone


def _rewrite(path, target, **attrs):
    tree = xr.open_datatree(path, engine="h5netcdf").load()
    tree.attrs.update(attrs)
    tree.to_netcdf(target, engine="h5netcdf")


def test_other_version_is_a_clear_error(fit, tmp_path):
    fit.save(tmp_path / "fit.nc")
    _rewrite(tmp_path / "fit.nc", tmp_path / "old.nc", hierbayes_version="0.0.1")
    with pytest.raises(hb.HierbayesError, match=r"written by hierbayes 0\.0\.1; this is hierbayes " + hb.__version__):
        hb.load(tmp_path / "old.nc")


def test_damaged_or_foreign_files_are_clear_errors(fit, tmp_path):
    fit.save(tmp_path / "fit.nc")
    raw = (tmp_path / "fit.nc").read_bytes()
    (tmp_path / "truncated.nc").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(hb.HierbayesError, match="cannot read .*truncated.nc.* as a saved fit"):
        hb.load(tmp_path / "truncated.nc")
    (tmp_path / "text.nc").write_text("not a fit")
    with pytest.raises(hb.HierbayesError, match="cannot read"):
        hb.load(tmp_path / "text.nc")
    xr.DataTree(xr.Dataset({"x": ("i", [1.0])})).to_netcdf(tmp_path / "foreign.nc", engine="h5netcdf")
    with pytest.raises(hb.HierbayesError, match="not written by Fit.save"):
        hb.load(tmp_path / "foreign.nc")
    _rewrite(tmp_path / "fit.nc", tmp_path / "bad_priors.nc", user_priors="{not json")
    with pytest.raises(hb.HierbayesError, match="is damaged"):
        hb.load(tmp_path / "bad_priors.nc")
    with pytest.raises(hb.HierbayesError, match="no saved fit"):
        hb.load(tmp_path / "missing.nc")


def test_unknown_format_is_refused(fit, tmp_path):
    with pytest.raises(hb.HierbayesError, match="format must be one of"):
        fit.save(tmp_path / "fit.pkl", format="pickle")


def test_the_model_keeps_its_own_copy_of_the_columns_it_uses(tmp_path):
    """Editing the caller's DataFrame after building the model changes nothing the model reports."""
    data = simulate_sleep()
    data["unused"] = 1.0
    model = hb.Model("Reaction ~ Days + (1 | Subject)", data)
    before = model.data.copy()
    data.loc[:, "Reaction"] = 0.0
    data.loc[:, "Subject"] = "somebody else"
    assert list(model.data.columns) == ["Reaction", "Days", "Subject"]
    pd.testing.assert_frame_equal(model.data, before)
    assert np.array_equal(model.design.y, before["Reaction"].to_numpy())
