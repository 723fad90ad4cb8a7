"""Modes and means (hierbayes.lessons.modes, hierbayes.lessons.marginal_mode) against lme4.

The marginal mode of a gaussian model, with no priors, is lme4's maximum-likelihood estimate.
The reference numbers come from lme4 1.1-31 (R), ML fits (``REML = FALSE``):

    Rscript -e 'library(lme4); m <- lmer(Reaction ~ Days + (Days|Subject), sleepstudy, REML=FALSE);
                print(fixef(m), digits=10); print(as.data.frame(VarCorr(m)), digits=10); print(sigma(m), digits=10)'
    Rscript -e 'library(lme4); p <- lmer(diameter ~ 1 + (1|plate) + (1|sample), Penicillin, REML=FALSE);
                print(fixef(p), digits=10); print(as.data.frame(VarCorr(p)), digits=10)'

tests/data/penicillin.csv is lme4's Penicillin (see tests/data/SOURCES.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.lessons import marginal_mode as mm
from hierbayes.lessons.modes import map_estimate

SLEEPSTUDY_ML = {"Intercept": 251.40510485, "Days": 10.46728596, "sd(Intercept|Subject)": 23.779759589,
                 "sd(Days|Subject)": 5.716798514, "cor(Intercept,Days|Subject)": 0.08132109343, "sigma": 25.591907036}
PENICILLIN_ML = {"Intercept": 22.97222222, "sd(Intercept|plate)": 0.8455725123, "sd(Intercept|sample)": 1.7706474292,
                 "sigma": 0.5499321395}
PENICILLIN = Path(__file__).resolve().parents[1] / "data" / "penicillin.csv"
SLEEP_SDS = ["sd(Intercept|Subject)", "sd(Days|Subject)"]


def pooled_fit(df: pd.DataFrame) -> np.ndarray:
    """Least squares of Reaction on Days, every subject pooled: (Intercept, Days)."""
    X = np.column_stack([np.ones(len(df)), df["Days"]])
    return np.linalg.lstsq(X, df["Reaction"].to_numpy(), rcond=None)[0]


@pytest.fixture(scope="module")
def sleep_fit(sleepstudy):
    return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(
        draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)


def test_marginal_mode_is_lme4_ml_on_sleepstudy(sleepstudy):
    mode = mm.marginal_mode(hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy))
    assert mode.converged
    assert mode.values.to_dict() == pytest.approx(SLEEPSTUDY_ML, rel=1e-3)


def test_marginal_mode_is_lme4_ml_on_crossed_penicillin():
    model = hb.Model("diameter ~ 1 + (1 | plate) + (1 | sample)", pd.read_csv(PENICILLIN))
    mode = mm.marginal_mode(model)
    assert mode.converged
    assert mode.values.to_dict() == pytest.approx(PENICILLIN_ML, rel=1e-3)


def test_one_block_of_all_effects_gives_the_level_by_level_likelihood(sleepstudy, monkeypatch):
    model = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy)
    by_level = mm.marginal_mode(model).values
    monkeypatch.setattr(mm, "_level_by_level", lambda design: None)  # the crossed designs' path
    assert mm._Likelihood(model.design).path is None
    assert mm.marginal_mode(model).values.to_dict() == pytest.approx(by_level.to_dict(), rel=1e-6)


def test_nested_factors_integrate_out_level_by_level_as_one_block_does(monkeypatch):
    rng = np.random.default_rng(6)
    school = np.repeat(np.arange(8), 12)
    klass = school * 3 + np.tile(np.repeat(np.arange(3), 4), 8)
    x = rng.normal(size=school.size)
    y = 1 + 0.5 * x + rng.normal(0, 1.0, 8)[school] + rng.normal(0, 0.6, 24)[klass] + rng.normal(0, 1, school.size)
    df = pd.DataFrame({"y": y, "x": x, "school": school, "klass": klass % 3})
    model = hb.Model("y ~ x + (1 | school/klass)", df)
    assert mm._Likelihood(model.design).path == ("school", "school:klass")
    nested = mm.marginal_mode(model)
    monkeypatch.setattr(mm, "_level_by_level", lambda design: None)
    assert nested.converged
    assert mm.marginal_mode(model).values.to_dict() == pytest.approx(nested.values.to_dict(), rel=1e-5)


def test_marginal_mode_of_a_varying_intercept_is_lme4_ml(sleepstudy):
    # lmer(Reaction ~ Days + (1|Subject), sleepstudy, REML=FALSE), lme4 1.1-31
    mode = mm.marginal_mode(hb.Model("Reaction ~ Days + (1 | Subject)", sleepstudy))
    assert mode.values.to_dict() == pytest.approx({"Intercept": 251.40510485, "Days": 10.46728596,
                                                   "sd(Intercept|Subject)": 36.01208194, "sigma": 30.89543387}, rel=1e-3)


def test_marginal_mode_of_other_families_is_left_empty_with_the_reason():
    rng = np.random.default_rng(4)
    g = np.repeat(np.arange(10), 5)
    df = pd.DataFrame({"y": rng.poisson(np.exp(1 + rng.normal(0, 0.5, 10)[g])), "g": g})
    mode = mm.marginal_mode(hb.Model("y ~ 1 + (1 | g)", df, family="poisson"))
    assert not mode.converged and mode.values.isna().all()
    assert "poisson" in mode.message and "Laplace approximation" in mode.message


def test_joint_map_on_sleepstudy_collapses_to_the_pooled_fit(sleep_fit, sleepstudy):
    mode, collapsed = map_estimate(sleep_fit.model, {"sd(Intercept|Subject)": 24.0, "sd(Days|Subject)": 5.7})
    assert mode.attrs["converged"]
    assert collapsed == SLEEP_SDS
    b = mode["b"].values.ravel()
    assert b[1] > 10 and b[1] != pytest.approx(0.147, abs=0.5)  # the unconverged point
    # with every subject's effects at zero, the rest is the pooled fit (the priors are weak)
    assert b == pytest.approx(pooled_fit(sleepstudy), rel=2e-3)
    assert np.isnan(mode["cor_Subject"].values).all()


def test_joint_map_sds_collapse_on_a_small_group_design():
    rng = np.random.default_rng(5)  # 8 levels of 2 rows: a group SD of 0.3 under a residual SD of 2
    g = np.repeat(np.arange(8), 2)
    df = pd.DataFrame({"y": 2 + rng.normal(0, 0.3, 8)[g] + rng.normal(0, 2, g.size), "g": g})
    mode, collapsed = map_estimate(hb.Model("y ~ 1 + (1 | g)", df), {"sd(Intercept|g)": 0.7})
    assert mode.attrs["converged"] and collapsed == ["sd(Intercept|g)"]
    assert mode["sd_g"].item() < 0.007
    assert np.abs(mode["r_g"].values).max() < 1e-6
    assert mode["b"].item() == pytest.approx(df["y"].mean(), abs=1e-3)


def test_the_table_has_the_joint_map_the_marginal_mode_and_the_mean(sleep_fit, sleepstudy):
    table = sleep_fit.compare_map()
    assert list(table.columns) == ["joint_map", "marginal_mode", "mean", "sd", "2.5%", "97.5%"]
    assert list(table.index) == list(sleep_fit.summary().index)
    assert table.attrs["converged"] == {"joint_map": True, "marginal_mode": True}
    assert table.attrs["collapsed"] == SLEEP_SDS and table.attrs["notes"] == []
    assert table["marginal_mode"].to_dict() == pytest.approx(SLEEPSTUDY_ML, rel=1e-3)
    assert table.loc[SLEEP_SDS, "joint_map"].max() < 1e-3
    assert table.loc["Days", "joint_map"] == pytest.approx(pooled_fit(sleepstudy)[1], rel=2e-3)
    # the posterior mean of an SD sits near the marginal mode, far from the joint mode's zero
    for label in SLEEP_SDS:
        assert table.loc[label, "2.5%"] < table.loc[label, "marginal_mode"] < table.loc[label, "97.5%"]


def test_an_unconverged_optimizer_gives_nan_and_a_warning(sleep_fit):
    with pytest.warns(hb.ConvergenceWarning) as record:
        table = sleep_fit.compare_map(maxiter=1)
    messages = " ".join(str(w.message) for w in record)
    assert "joint MAP's optimizer did not converge" in messages
    assert "marginal mode: the optimizer did not converge" in messages
    assert table[["joint_map", "marginal_mode"]].isna().all().all()
    assert table.attrs["converged"] == {"joint_map": False, "marginal_mode": False}
    assert len(table.attrs["notes"]) == 2
    assert table["mean"].notna().all()
