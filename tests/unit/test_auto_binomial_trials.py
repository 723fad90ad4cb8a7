"""``parameterization="auto"`` reads a binomial row of ``n`` trials as ``n`` observations, each 0 or 1.

Counting a row ``n`` times at its share of successes, without the spread among its own trials,
made ``s^2`` about ``n`` times too small and kappa ``n`` times too large: with ten trials a row,
``"auto"`` centred factors whose levels say little, and the binomial calibration failed on
``sd(Intercept|g)`` with divergences in 42 of 100 refits (validation/results_families.md).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb


def _rows(seed: int = 0, groups: int = 12, per_group: int = 5, trials: int = 10, sd: float = 0.8) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    eta = rng.normal(0.0, sd, groups)[g]
    successes = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"g": [f"g{i}" for i in g], "s": successes, "f": trials - successes})


def _one_per_trial(rows: pd.DataFrame) -> pd.DataFrame:
    """The same data with one 0/1 row per trial."""
    out = [pd.DataFrame({"g": r.g, "y": [1] * int(r.s) + [0] * int(r.f)}) for r in rows.itertuples()]
    return pd.concat(out, ignore_index=True)


@pytest.mark.parametrize("sd", [0.1, 0.8])
def test_binomial_rows_give_the_variances_of_one_row_per_trial(sd):
    rows = _rows(sd=sd)
    binomial = hb.Model("cbind(s, f) ~ 1 + (1 | g)", rows, family="binomial", collapse=False)
    bernoulli = hb.Model("y ~ 1 + (1 | g)", _one_per_trial(rows), family="bernoulli", collapse=False)
    ours, theirs = binomial.parameterization_choice.loc["g"], bernoulli.parameterization_choice.loc["g"]
    assert ours["s2"] == pytest.approx(theirs["s2"], rel=1e-10)
    assert ours["tau2"] == pytest.approx(theirs["tau2"], rel=1e-10, abs=1e-14)
    assert ours["kappa_q10"] == pytest.approx(theirs["kappa_q10"], rel=1e-10, abs=1e-12)


def test_levels_that_say_little_stay_non_centered_however_the_trials_are_grouped():
    # sd 0.1 on the logit scale with 50 trials a level: kappa about 50 * (0.1 / 4)^2 / 0.25 = 0.1
    rows = _rows(seed=3, groups=40, sd=0.1)
    model = hb.Model("cbind(s, f) ~ 1 + (1 | g)", rows, family="binomial", collapse=False)
    assert model.parameterization == {"g": "non-centered"}
    assert model.parameterization_choice.loc["g", "s2"] == pytest.approx(0.25, rel=0.1)  # p (1 - p) of a trial


def _zero_inflated(rows: pd.DataFrame, zi: float, seed: int = 1) -> pd.DataFrame:
    """``rows`` with each row's successes set to 0 with probability ``zi`` (a structural zero)."""
    zero = np.random.default_rng(seed).random(len(rows)) < zi
    out = rows.copy()
    out.loc[zero, "f"] += out.loc[zero, "s"]
    out.loc[zero, "s"] = 0
    return out


@pytest.mark.parametrize("family", ["zero_inflated_binomial", "beta_binomial"])
def test_a_row_whose_trials_move_together_counts_once(family):
    """Zero inflation (or the beta-binomial's phi) makes a row's trials move together: counted as independent,
    their shared spread read as between-level variance and auto centred levels that say little."""
    from hierbayes.model.parameterization import one_way_anova

    rows = _zero_inflated(_rows(seed=5, groups=30, per_group=6, sd=0.05), zi=0.3)
    model = hb.Model("cbind(s, f) ~ 1 + (1 | g)", rows, family=family, collapse=False)
    share = (rows["s"] / (rows["s"] + rows["f"])).to_numpy()
    index = model.design.factors["g"].index
    tau2, s2 = one_way_anova(share - share.mean(), index, 30)  # one observation per row
    choice = model.parameterization_choice.loc["g"]
    assert choice["s2"] == pytest.approx(s2, rel=1e-10) and choice["tau2"] == pytest.approx(tau2, rel=1e-10, abs=1e-14)
    assert model.parameterization == {"g": "non-centered"}
