"""fit.update(): brms's update, a refit with changes that keeps everything else of the fit."""

from __future__ import annotations

import pytest

import hierbayes as hb

FIT = dict(draws=200, tune=200, chains=2, seed=4, progressbar=False, warn=False)


@pytest.fixture(scope="module")
def fit(sleepstudy) -> hb.Fit:
    return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy, priors={"sigma": hb.Exponential(0.05)}).fit(**FIT)


def test_new_priors_are_merged_into_the_given_ones_and_the_settings_kept(fit):
    tight = fit.update(priors={"Days": hb.Normal(0, 0.5)})
    assert tight.model.priors["Days"] == hb.Normal(0, 0.5)
    assert tight.model.priors["sigma"] == hb.Exponential(0.05)  # the user's earlier prior stays
    assert tight.model.structure == fit.model.structure  # same kinds of prior: the compiled sampler is reused
    assert tight.posterior.sizes == fit.posterior.sizes and tight.seed == fit.seed
    assert abs(tight.fixed_effects().loc["Days", "mean"]) < 1.5 < fit.fixed_effects().loc["Days", "mean"] - 5


def test_new_data_formula_and_fit_settings(fit, sleepstudy):
    fewer = fit.update(data=sleepstudy[sleepstudy["Days"] < 5], draws=100)
    assert fewer.model.design.n_obs == 90 and fewer.posterior.sizes["draw"] == 100
    assert fewer.model.options == fit.model.options  # "auto" parameterization chooses again on the new rows
    simpler = fit.update(formula="Reaction ~ Days + (1 | Subject)")
    assert "sd(Days|Subject)" not in simpler.summary().index and simpler.model.family.name == "gaussian"
    with pytest.raises(hb.DataError, match="unknown column 'Age'"):
        fit.update(formula="Reaction ~ Age + (1 | Subject)")
