"""A grouping factor with fewer than 5 levels: a DataWarning at fit time and a line in the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.posterior.diagnostics import FEW_LEVELS, few_levels
from hierbayes.viz.report import render_report


def two_levels(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = np.repeat(["north", "south"], 20)
    x = rng.normal(size=g.size)
    return pd.DataFrame({"y": 1 + 0.5 * x + np.where(g == "north", -0.3, 0.3) + rng.normal(0, 1, g.size),
                         "x": x, "g": g})


@pytest.mark.filterwarnings("ignore::hierbayes.common.errors.ConvergenceWarning")  # 100 draws of a 2-level SD
def test_a_two_level_factor_warns_at_fit_time_and_in_the_summary():
    model = hb.Model("y ~ x + (1 | g)", two_levels())
    with pytest.warns(hb.DataWarning, match="grouping factor 'g' has only 2 levels") as record:
        fit = model.fit(draws=100, tune=100, chains=2, seed=1, progressbar=False)
    message = next(str(w.message) for w in record if "only 2 levels" in str(w.message))
    for advice in ("sd(Intercept|g)", "Collect more levels", "fixed effect", "informative prior"):
        assert advice in message
    assert f"Few levels: {message}" in repr(fit).splitlines()
    assert "Few levels: grouping factor &#x27;g&#x27; has only 2 levels" in fit._repr_html_()
    assert "has only 2 levels" in render_report(fit, {})


def test_five_levels_are_enough_and_every_small_factor_is_named():
    df = pd.DataFrame({"y": np.arange(30.0), "g": np.tile(list("abcde"), 6), "h": np.repeat(list("pqr"), 10)})
    assert FEW_LEVELS == 5
    assert few_levels(hb.Model("y ~ 1 + (1 | g)", df).design) == []
    messages = few_levels(hb.Model("y ~ 1 + (1 | g) + (1 | h)", df).design)
    assert len(messages) == 1 and messages[0].startswith("grouping factor 'h' has only 3 levels")


def test_the_textbook_fish_model_is_warned_about(shared_data):
    fish = pd.read_csv(shared_data / "fish.csv")
    model = hb.Model("fish_num ~ 1 + temperature + (temperature | weather)", fish, family="poisson")
    [message] = few_levels(model.design)
    assert message.startswith("grouping factor 'weather' has only 2 levels")
    assert "SDs sd(Intercept|weather), sd(temperature|weather) (and correlations)" in message
