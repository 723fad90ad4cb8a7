"""After divergences the sampler reruns at a higher target_accept, on the same compiled model.

A centered varying intercept with 8 groups of 2 rows and little between-group spread is
Neal's funnel in miniature: at target_accept 0.8 a short run meets divergences.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.backend import sampling

DRAWS = {"draws": 200, "tune": 200, "chains": 2, "progressbar": False, "warn": False}


@pytest.fixture(scope="module")
def funnel():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 2)
    df = pd.DataFrame({"y": rng.normal(0, 0.2, 8)[g] + rng.normal(0, 1, g.size), "g": [f"s{i}" for i in g]})
    return hb.Model("y ~ 1 + (1 | g)", df, collapse=False, parameterization="centered")


def divergences(fit) -> int:
    return int(fit.idata["sample_stats"]["diverging"].sum())


def test_divergences_trigger_reruns_of_the_compiled_model(funnel, monkeypatch):
    funnel.fit(**DRAWS, seed=2)  # compiled (or loaded) before counting
    calls = []
    original = sampling._nutpie_model
    monkeypatch.setattr(sampling, "_nutpie_model", lambda *a, **k: calls.append(1) or original(*a, **k))
    fit = funnel.fit(**DRAWS, seed=1)
    note = fit.idata.attrs["divergence_refits"]
    assert note.startswith("1 divergence at target_accept 0.8; refitted at 0.95: ")
    accepts = [0.8, 0.95, 0.99][: note.count(";") + 1]
    assert fit.idata.attrs["target_accept"] == accepts[-1]
    assert len(calls) == 1  # one model for every rerun: nothing compiled or looked up again
    assert fit.settings["target_accept"] == 0.8 and fit.settings["adapt_divergences"] is True
    assert f"({note})" in fit.describe()
    assert note.endswith(f": {divergences(fit)} divergence" + ("" if divergences(fit) == 1 else "s"))


@pytest.mark.filterwarnings("ignore:R-hat reaches", "ignore:bulk ESS", "ignore:tail ESS")  # the funnel's, kept on purpose
def test_switched_off_keeps_the_first_run(funnel):
    fit = funnel.fit(**DRAWS, seed=1, adapt_divergences=False)
    assert divergences(fit) > 0
    assert "divergence_refits" not in fit.idata.attrs and fit.idata.attrs["target_accept"] == 0.8
    assert "refitted" not in fit.describe()
    with pytest.warns(hb.ConvergenceWarning, match="transitions diverged"):
        funnel.fit(**{**DRAWS, "warn": True}, seed=1, adapt_divergences=False)


def test_a_run_without_divergences_is_not_repeated(funnel):
    fit = funnel.fit(**DRAWS, seed=2)
    assert divergences(fit) == 0 and "divergence_refits" not in fit.idata.attrs
    assert fit.idata.attrs["target_accept"] == 0.8


@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_other_samplers_rerun_as_well(funnel, sampler):
    fit = funnel.fit(**{**DRAWS, "draws": 150, "tune": 150}, seed=1, sampler=sampler)
    note = fit.idata.attrs["divergence_refits"]
    assert "at target_accept 0.8; refitted at 0.95: " in note
    assert note.endswith(f": {divergences(fit)} divergence" + ("" if divergences(fit) == 1 else "s"))
