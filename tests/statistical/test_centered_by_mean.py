"""The centered factor sampled beside an integrated one, drawn as its mean and contrasts
(hierbayes.model.parameterizations.CenteredByMean).

With one crossed factor integrated out (of at least ``MEAN_AND_CONTRASTS_ROWS`` rows per level), the other's effects are drawn as their mean around the fixed
effects and Helmert contrasts over the levels ordered by size. The same model: the log density is the
plain hierarchically centered one's at the same effects plus the constant ``q/2 log J`` of the
orthogonal map, and the recorded effects are each level's own.
"""

from __future__ import annotations

import numpy as np
import pytest
from same_effects import crossed, helmert

import hierbayes as hb
from hierbayes.backend.sampling import FAST_PATH
from hierbayes.model import coordinates, parameterizations
from hierbayes.model.parameterizations import Centered, CenteredByMean, HierarchicallyCentered, factor_parameterizations

FORMULA = "y ~ x + (1 | item) + (1 | rater)"


def uneven_raters():
    """:func:`crossed` with 60 rows per item (the factor integrated out) and raters of unequal sizes, so
    that their order by size is not their name order."""
    df = crossed(n=2400)
    return df[~((df["rater"] < "r08") & (np.arange(len(df)) % 3 == 0))].reset_index(drop=True)


def test_the_factor_beside_an_integrated_one_takes_the_fixed_effects_as_its_mean():
    m = hb.Model(FORMULA, uneven_raters(), parameterization="centered")
    assert coordinates.integrated_factors(m.design) == ("item",)
    assert factor_parameterizations(m.design, m.parameterization, collapse=True) == {
        "rater": CenteredByMean(Centered(), ("Intercept",))}
    J = len(m.design.factors["rater"].levels)
    model = m.fitting_model
    assert model["ubar_rater_1"].type.shape == (1,) and model["u_rater_1"].type.shape == (J - 1, 1)
    # without collapsing, nothing is integrated: the plain hierarchical centering
    plain = factor_parameterizations(m.design, m.parameterization)
    assert type(plain["rater"]) is HierarchicallyCentered
    # nor with fewer rows per integrated level than MEAN_AND_CONTRASTS_ROWS (30 per item here; InstEval's 25)
    few = hb.Model(FORMULA, crossed(), parameterization="centered")
    assert len(few.design.y) / 40 < coordinates.MEAN_AND_CONTRASTS_ROWS <= len(m.design.y) / 40
    assert type(factor_parameterizations(few.design, few.parameterization, collapse=True)["rater"]) is HierarchicallyCentered


def test_log_density_is_the_plain_centered_ones_at_the_same_effects(monkeypatch):
    df = uneven_raters()
    m = hb.Model(FORMULA, df, parameterization="centered")
    by_mean = m.fitting_model
    monkeypatch.setattr(parameterizations, "CenteredByMean", HierarchicallyCentered)
    plain = hb.Model(FORMULA, df, parameterization="centered").fitting_model
    assert "ubar_rater_1" not in plain.named_vars
    counts = m.design.factors["rater"].counts
    ranks = coordinates.level_ranks(counts)
    assert list(counts[np.argsort(ranks)]) == sorted(counts, reverse=True)  # most rows first
    J = len(counts)
    logp, logp_plain = by_mean.compile_logp(), plain.compile_logp()
    rng = np.random.default_rng(3)
    for _ in range(3):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in by_mean.initial_point().items()}
        v = (point["ubar_rater_1"] + helmert(J) @ point["u_rater_1"])[ranks]
        other = {k: val for k, val in point.items() if k != "ubar_rater_1"} | {"u_rater_1": v}
        np.testing.assert_allclose(float(logp(point)), float(logp_plain(other)) + 0.5 * np.log(J), rtol=1e-10)


@pytest.fixture(scope="module")
def fit():
    return hb.Model(FORMULA, uneven_raters(), parameterization="centered").fit(draws=400, tune=400, chains=2, seed=2,
                                                                               progressbar=False, warn=False)


def test_recorded_effects_are_the_levels_own_in_their_own_order(fit):
    p = fit.posterior
    J = len(fit.model.design.factors["rater"].levels)
    ranks = coordinates.level_ranks(fit.model.design.factors["rater"].counts)
    v = p["ubar_rater_1"].values[..., None, :] + np.einsum("jk,cdkq->cdjq", helmert(J), p["u_rater_1"].values)
    mu = p["Intercept_centered"].values[..., None, None]
    np.testing.assert_allclose(p["r_rater"].values, v[..., ranks, :] - mu, atol=1e-10)
    assert list(p["r_rater"]["rater"].values) == list(fit.model.design.factors["rater"].levels)


def test_fit_agrees_with_all_effects_sampled(fit):
    from same_effects import assert_fits_agree

    plain = hb.Model(FORMULA, uneven_raters(), parameterization="non-centered", collapse=False).fit(
        draws=400, tune=400, chains=2, seed=2, progressbar=False, warn=False)
    for var in ("b", "sd_item", "sd_rater", "sigma", "r_rater", "r_item"):
        assert_fits_agree(fit, plain, var)


def test_the_choice_is_part_of_the_compiled_structure(recwarn):
    """Two data sets of one shape but not of one number of rows per integrated level draw the sampled factor
    in different coordinates, so they must not share a compiled model (nor fall back to nutpie's public API)."""
    few, many = (hb.Model(FORMULA, crossed(n=n), parameterization="centered") for n in (1200, 2400))
    assert few.structure != many.structure
    settings = dict(draws=100, tune=100, chains=2, seed=1, progressbar=False, warn=False)
    few.fit(**settings)
    fit = many.fit(**settings)
    assert "ubar_rater_1" in fit.posterior
    assert fit.idata.attrs["sampler_path"] == FAST_PATH
    assert not [w for w in recwarn if issubclass(w.category, hb.BackendWarning)]
