"""Reference agreement: sleepstudy against lme4, radon at defaults, the funnel of the centered form."""

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb

# lme4 (REML) for Reaction ~ Days + (Days | Subject): shared/data/README.md
LME4 = {"Intercept": (251.405, 6.825), "Days": (10.467, 1.546)}
LME4_SD = {"sd(Intercept|Subject)": 24.74, "sd(Days|Subject)": 5.92}


@pytest.fixture(scope="module")
def fit(sleepstudy):
    return hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(seed=1, progressbar=False)


def test_fixed_effects_agree_with_lme4(fit):
    fe = fit.fixed_effects()
    for term, (estimate, se) in LME4.items():
        assert abs(fe.loc[term, "mean"] - estimate) < 0.5 * se, term
        assert 0.8 * se < fe.loc[term, "sd"] < 1.35 * se, term


def test_group_sds_near_lme4_and_a_bit_larger(fit):
    vc = fit.variance_components()
    for label, estimate in LME4_SD.items():
        assert estimate <= vc.loc[label, "mean"] <= 1.25 * estimate, label
    assert abs(vc.loc["sigma", "mean"] - 25.59) < 1.5
    assert vc.loc["cor(Intercept,Days|Subject)", "2.5%"] < 0.07 < vc.loc["cor(Intercept,Days|Subject)", "97.5%"]


def test_converged_without_divergences(fit):
    checks = fit.diagnostics()
    assert checks.loc["divergences", "value"] == 0
    assert checks.loc["r_hat", "value"] < 1.01
    assert checks["ok"].all(), checks["message"].tolist()


def test_same_seed_same_draws(fit, sleepstudy):
    again = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(seed=1, progressbar=False)
    np.testing.assert_array_equal(again.posterior["b"].values, fit.posterior["b"].values)
    other = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(seed=2, progressbar=False)
    assert not np.array_equal(other.posterior["b"].values, fit.posterior["b"].values)


def test_new_data_through_a_cached_model_gives_its_own_answer(fit, sleepstudy):
    shifted = sleepstudy.assign(Reaction=sleepstudy["Reaction"] + 100.0)
    refit = hb.Model("Reaction ~ Days + (Days | Subject)", shifted).fit(seed=1, progressbar=False)
    diff = refit.fixed_effects().loc["Intercept", "mean"] - fit.fixed_effects().loc["Intercept", "mean"]
    assert abs(diff - 100.0) < 3.0
    np.testing.assert_allclose(refit.idata["observed_data"]["Reaction"].values, shifted["Reaction"])


def test_radon_varying_intercept_has_no_divergences_at_defaults(radon):
    fit = hb.Model("log_radon ~ floor + (1 | county)", radon).fit(seed=3, progressbar=False, warn=False)
    assert int(fit.idata["sample_stats"]["diverging"].sum()) == 0
    assert fit.diagnostics().loc["r_hat", "value"] < 1.01
    assert fit.posterior["r_county"].sizes["county"] == 85
    assert "AITKIN" in fit.posterior["r_county"]["county"].values


def small_groups(seed: int = 1) -> pd.DataFrame:
    """Eight-schools-like: eight groups whose means are far noisier than their spread."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"s{j}" for j in range(8)], 10)
    y = 5.0 + rng.normal(0, 0.5, 8)[pd.factorize(g)[0]] + rng.normal(0, 40.0, g.size)
    return pd.DataFrame({"g": g, "y": y})


def test_the_centered_funnel_diverges_more_than_the_default():
    """Summed over three sampler seeds at PyMC's usual target_accept of 0.8 (nutpie's adaptation
    is good enough that a single run of the centered funnel may come through clean)."""
    df = small_groups()
    # collapse=False: both sample the group effects, which is what the parameterization is about
    default = hb.Model("y ~ 1 + (1 | g)", df, collapse=False)
    centered = hb.Model("y ~ 1 + (1 | g)", df, parameterization="centered", collapse=False)

    def divergences(model):
        fits = [model.fit(draws=500, tune=500, chains=4, seed=seed, target_accept=0.8, progressbar=False,
                          warn=False) for seed in (1, 2, 3)]
        assert all(f.posterior["r_g"].sizes["g"] == 8 for f in fits)
        return sum(int(f.idata["sample_stats"]["diverging"].sum()) for f in fits), fits[0]

    n_default, fit_default = divergences(default)
    n_centered, fit_centered = divergences(centered)
    assert n_centered >= 10
    assert n_centered > 3 * n_default
    assert "u_g_0" in fit_centered.posterior and "z_g" in fit_default.posterior
