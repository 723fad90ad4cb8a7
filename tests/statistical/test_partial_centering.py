"""Each level's effects drawn part-way between centered and non-centered
(hierbayes.model.parameterizations.PartiallyCentered).

``"auto"`` takes it where a factor's intercepts are well informed and a slope is not (it took
``"centered-intercept"`` before). The weights are data, one per level and coefficient; the log
densities are compared point by point with the non-centered model's in
``tests/unit/test_parameterizations.py``. Here: the weights follow each level's own data, new data
of one shape reuse the compiled model with their own weights, a level's effects and the group SDs
start where the centered ones would, and a fit agrees with the non-centered model's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from same_effects import assert_fits_agree

import hierbayes as hb
from hierbayes.model import data as contract
from hierbayes.model.parameterization import centering_weights
from hierbayes.specification import names as N

FIT = dict(draws=500, tune=500, chains=2, seed=3, progressbar=False, warn=False)


def uneven_bernoulli(seed: int = 4, groups: int = 40) -> pd.DataFrame:
    """``logit p = -0.5 + x + u0 + u1 x``, sd(u) = (0.8, 0.4): groups of 40 to 160 rows."""
    rng = np.random.default_rng(seed)
    sizes = np.linspace(40, 160, groups).astype(int)
    g = np.repeat(np.arange(groups), sizes)
    x = rng.normal(size=g.size)
    u = rng.normal(0, [0.8, 0.4], (groups, 2))
    eta = -0.5 + x + u[g, 0] + u[g, 1] * x
    return pd.DataFrame({"y": (rng.random(g.size) < 1 / (1 + np.exp(-eta))).astype(float), "x": x,
                         "g": [f"g{j:02d}" for j in g]})


def test_auto_draws_the_bernoulli_slopes_partially_centered_each_level_by_its_data():
    df = uneven_bernoulli()
    m = hb.Model("y ~ x + (1 + x | g)", df, "bernoulli")
    assert m.parameterization == {"g": "partially-centered"}
    w = contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)[
        N.FactorNames("g").centering_weights]
    assert w.shape == (40, 2) and np.all((w > 0) & (w < 1))
    rows = m.design.factors["g"].counts
    # more rows, more weight on the centered side: for the intercept and for the slope alike
    assert np.corrcoef(rows, w[:, 0])[0, 1] > 0.9 and np.corrcoef(rows, w[:, 1])[0, 1] > 0.9
    assert w[:, 1].mean() < w[:, 0].mean()  # the slope says less than the intercept at every level


def test_new_data_of_one_shape_reuse_the_model_with_their_own_weights():
    a, b = uneven_bernoulli(seed=4), uneven_bernoulli(seed=5)
    ma, mb = (hb.Model("y ~ x + (1 + x | g)", d, "bernoulli") for d in (a, b))
    assert ma.structure == mb.structure
    wa, wb = (contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)[
        N.FactorNames("g").centering_weights] for m in (ma, mb))
    np.testing.assert_allclose(wa, centering_weights(ma.design, ma.family, "g"))
    np.testing.assert_allclose(wb, centering_weights(mb.design, mb.family, "g"))
    assert np.abs(wa - wb).max() > 0.01


def test_the_levels_start_at_the_fixed_effects():
    m = hb.Model("y ~ x + (1 + x | g)", uneven_bernoulli(), "bernoulli")
    data = contract.model_data(m.design, m.family, m.priors, m.collapsed, m.parameterization)
    start = contract.initial_values(m.design, m.family, m.priors, data, m.parameterization, m.collapsed)
    w = data[N.FactorNames("g").centering_weights]
    np.testing.assert_allclose(start["t_g_0_0"], w[:, 0] * start["Intercept_centered"])
    pm_m = m.pymc_model
    effects = pm_m.compile_fn(pm_m.replace_rvs_by_values([pm_m["r_g"]]), inputs=pm_m.value_vars,
                              on_unused_input="ignore")({**pm_m.initial_point(), **start})[0]
    np.testing.assert_allclose(effects, 0.0, atol=1e-12)  # every level at the fixed effects: r = 0


def test_a_partially_centered_fit_agrees_with_the_non_centered_one():
    df = uneven_bernoulli()
    partial = hb.Model("y ~ x + (1 + x | g)", df, "bernoulli").fit(**FIT)
    plain = hb.Model("y ~ x + (1 + x | g)", df, "bernoulli", parameterization="non-centered").fit(**FIT)
    assert "Group effects: g partially centered (each level's effects drawn part-way" in repr(partial)
    for var in ("b", "sd_g", "cor_g", "r_g"):
        assert_fits_agree(partial, plain, var)
