"""Grouped K-fold cross-validation: folds hold whole levels, the refits share one compiled sampler,
and each held-out row is scored with the model's own density, by hand here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import logsumexp

import hierbayes as hb
from hierbayes.posterior.crossvalidation import WEIGHT_COLUMN, _held_out_elpd, _weighted, fold_of_rows

FIT = dict(draws=300, tune=300, chains=2, seed=2, progressbar=False, warn=False)


def test_folds_keep_every_level_together_and_use_every_fold():
    df = pd.DataFrame({"g": np.repeat(list("abcdefgh"), 3)})
    folds = fold_of_rows(df, 4, by="g", seed=1)
    assert df.assign(f=folds).groupby("g")["f"].nunique().eq(1).all()
    assert set(folds) == {0, 1, 2, 3} and np.bincount(folds).tolist() == [6, 6, 6, 6]
    with pytest.raises(hb.HierbayesError, match="k must be between 2 and the number of levels of 'g' \\(8\\), not 9"):
        fold_of_rows(df, 9, by="g")


def test_the_refits_weigh_the_held_out_rows_out():
    assert _weighted("y ~ x + (1 | g)") == f"y | weights({WEIGHT_COLUMN}) ~ x + (1 | g)"
    assert _weighted("y | trunc(lb = 0) ~ x") == f"y | trunc(lb = 0) + weights({WEIGHT_COLUMN}) ~ x"
    formula = _weighted(hb.Formula("y ~ x", sigma="~ x"))
    assert formula.main == f"y | weights({WEIGHT_COLUMN}) ~ x" and formula.auxiliary == (("sigma", "~ x"),)
    with pytest.raises(hb.HierbayesError, match="has weights\\(\\) of its own"):
        _weighted("y | weights(w) ~ x")


def test_a_held_out_rows_score_is_its_log_mean_density_over_the_draws(sleepstudy):
    held_out = sleepstudy["Subject"].isin(["308", "309", "310"]).to_numpy()
    data = sleepstudy.assign(**{WEIGHT_COLUMN: (~held_out).astype(float)})
    refit = hb.Model(_weighted("Reaction ~ Days + (1 | Subject)"), data).fit(**FIT)
    post = refit.posterior
    b = post["b"].transpose("chain", "draw", "term").values
    r = post["r_Subject"].sel(Subject__coef="Intercept").transpose("chain", "draw", "Subject").values
    level = pd.Index(post["Subject"].values).get_indexer(sleepstudy["Subject"])
    mean = b[..., :1] + b[..., 1:] * sleepstudy["Days"].to_numpy() + r[..., level]
    logp = stats.norm.logpdf(sleepstudy["Reaction"].to_numpy(), mean, post["sigma"].values[..., None])[..., held_out]
    by_hand = logsumexp(logp.reshape(-1, held_out.sum()), axis=0) - np.log(logp.shape[0] * logp.shape[1])
    np.testing.assert_allclose(_held_out_elpd(refit, held_out), by_hand, rtol=1e-10)
    # the held-out subjects' effects are drawn from the fitted population, like new levels
    held = r[..., np.unique(level[held_out])].ravel()
    assert np.std(held) == pytest.approx(float(post["sd_Subject"].mean()), rel=0.35)


def test_new_subjects_are_harder_to_predict_than_new_days_of_known_ones(sleepstudy):
    fit = hb.Model("Reaction ~ Days + (Days | Subject)", sleepstudy).fit(**FIT)
    grouped = fit.kfold(k=3, by="Subject")
    assert grouped.k == 3 and grouped.by == "Subject" and len(grouped.elpd_i) == 180
    assert grouped.elpd == pytest.approx(grouped.elpd_i.sum())
    loo = fit.loo(warn=False)
    assert grouped.elpd < float(loo.elpd) - 2 * grouped.se / 3  # a new subject's slope is unknown
    assert "3-fold cross-validation (levels of 'Subject' held out together)" in repr(grouped)
