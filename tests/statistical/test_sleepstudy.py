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


def small_groups(seed: int = 1, levels: int = 40, rows: int = 2) -> pd.DataFrame:
    """Many groups whose means are far noisier than their spread: a funnel for centered effects."""
    rng = np.random.default_rng(seed)
    g = np.repeat([f"s{j}" for j in range(levels)], rows)
    y = 5.0 + rng.normal(0, 0.5, levels)[pd.factorize(g)[0]] + rng.normal(0, 40.0, g.size)
    return pd.DataFrame({"g": g, "y": y})


def test_the_centered_funnel_mixes_worse_than_the_default():
    """Centered effects cannot follow the group SD into the neck of the funnel: the chains stay at
    large SDs and their effective sample size collapses. (Divergence counts, the textbook symptom,
    are too rare and noisy under nutpie's adaptation to test: a few per run for either form.)"""
    from arviz_stats.base import array_stats

    df = small_groups()
    # collapse=False: both sample the group effects, which is what the parameterization is about
    default = hb.Model("y ~ 1 + (1 | g)", df, collapse=False)
    centered = hb.Model("y ~ 1 + (1 | g)", df, parameterization="centered", collapse=False)
    for seed in (1, 2):
        fits = [m.fit(draws=500, tune=500, chains=4, seed=seed, target_accept=0.8, progressbar=False, warn=False)
                for m in (default, centered)]
        sd = [f.posterior["sd_g"].sel(g__coef="Intercept").values for f in fits]
        ess = [float(array_stats.ess(s, chain_axis=0, draw_axis=1)) for s in sd]
        assert ess[1] < ess[0] / 3, ess  # measured: about 440 against 15-55
        assert np.log(sd[0]).min() < np.log(sd[1]).min() - 2  # the default reaches SDs e^2 times smaller
    assert "u_g_0" in fits[1].posterior and "z_mean_g" in fits[0].posterior
