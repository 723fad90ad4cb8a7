"""Saving and loading fits: identical results after a round trip, clear errors for bad files.

The fit has user priors, a dropped row and a categorical grouping column whose level order
is not alphabetical, so the round trip must restore the whole design state, not just the draws.
Its structure is that of test_predict's main model (one compile per test process).
"""

from __future__ import annotations

import shutil
from pathlib import Path

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


# --- saving never loses work ------------------------------------------------------------------------

def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _full_disk_midway(monkeypatch, method: str, exception: BaseException) -> None:
    """``DataTree.<method>`` writes part of its output, then fails as a full disk (or Ctrl-C) would."""
    original = getattr(xr.DataTree, method)

    def fails_midway(self, target, *args, **kwargs):
        if method == "to_zarr":
            original(self, target, *args, **kwargs)
            shutil.rmtree(Path(target) / "posterior")  # as if the disk filled before the draws were written
        else:
            with open(target, "wb") as handle:
                handle.write(b"\x89HDF\r\n\x1a\n half a file")
        raise exception

    monkeypatch.setattr(xr.DataTree, method, fails_midway)


@pytest.mark.parametrize("exception", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_netcdf_save_keeps_the_previous_file(fit, tmp_path, monkeypatch, exception):
    path = tmp_path / "fit.nc"
    fit.save(path)
    before = path.read_bytes()
    _full_disk_midway(monkeypatch, "to_netcdf", exception)
    with pytest.raises(type(exception)):
        fit.save(path)
    assert path.read_bytes() == before  # the earlier save, byte for byte
    assert _listing(tmp_path) == ["fit.nc"]  # no temporary left beside it
    monkeypatch.undo()
    pd.testing.assert_frame_equal(hb.load(path).summary(), fit.summary())


@pytest.mark.parametrize("exception", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_zarr_save_keeps_the_previous_folder(fit, tmp_path, monkeypatch, exception):
    path = tmp_path / "fit.zarr"
    fit.save(path)
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    _full_disk_midway(monkeypatch, "to_zarr", exception)
    with pytest.raises(type(exception)):
        fit.save(path)
    assert {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    assert _listing(tmp_path) == ["fit.zarr"]
    monkeypatch.undo()
    fit.save(path)  # a save that completes replaces the earlier one
    assert _listing(tmp_path) == ["fit.zarr"]
    pd.testing.assert_frame_equal(hb.load(path).summary(), fit.summary())


def test_zarr_save_refuses_a_folder_that_is_not_a_saved_fit(fit, tmp_path):
    mine = tmp_path / "thesis.zarr"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("precious")
    with pytest.raises(hb.HierbayesError, match=r"'.*thesis\.zarr' exists and is not a fit saved by hierbayes"):
        fit.save(mine)
    with pytest.raises(hb.HierbayesError, match="is not a fit saved by hierbayes"):
        fit.save(mine, format="zarr")
    assert _listing(mine) == ["chapter1.tex"] and (mine / "chapter1.tex").read_text() == "precious"
    assert _listing(tmp_path) == ["thesis.zarr"]


def test_a_saved_zarr_fit_with_a_file_added_is_not_replaced(fit, tmp_path):
    path = tmp_path / "fit.zarr"
    fit.save(path)
    (path / "posterior" / "notes.txt").write_text("mine")
    with pytest.raises(hb.HierbayesError, match=r"holds 'posterior/notes\.txt', which is not part of a saved fit"):
        fit.save(path)
    assert (path / "posterior" / "notes.txt").read_text() == "mine"


def test_netcdf_save_replaces_only_a_saved_fit(fit, tmp_path):
    data = tmp_path / "sleep.csv"
    data.write_text("Reaction,Days\n250,0\n")
    with pytest.raises(hb.HierbayesError, match=r"'.*sleep\.csv' exists and is not a fit saved by hierbayes"):
        fit.save(data)
    assert data.read_text() == "Reaction,Days\n250,0\n"
    with pytest.raises(hb.HierbayesError, match="it is a folder"):
        fit.save(tmp_path)
    (tmp_path / "link.nc").symlink_to(data)
    with pytest.raises(hb.HierbayesError, match="symbolic link"):
        fit.save(tmp_path / "link.nc")
    with pytest.raises(hb.HierbayesError, match="does not exist"):
        fit.save(tmp_path / "no" / "fit.nc")
    assert _listing(tmp_path) == ["link.nc", "sleep.csv"]


def test_a_saved_file_has_ordinary_permissions(fit, tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    fit.save(tmp_path / "fit.nc")
    fit.save(tmp_path / "fit.zarr")
    assert (tmp_path / "fit.nc").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "fit.zarr").stat().st_mode & 0o777 == 0o777 & ~umask
