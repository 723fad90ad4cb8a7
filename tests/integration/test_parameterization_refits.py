"""After chains stick apart, a model whose parameterization "auto" chose is sampled again in the other coordinates.

The data are one of the simulated data sets on which the calibration of a small poisson model failed
(``tests/data/SOURCES.md``): counts up to 16.7 million, where "auto"'s estimate of how much each level's data
say (on the response scale) is near 0, so it draws the effects non-centered; two chains then stick in
different places (R-hat about 2). Drawn centered, the same posterior mixes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hierbayes as hb
from hierbayes.posterior.fitting import STUCK_RHAT, largest_rhat, other_coordinates

DATA = Path(__file__).resolve().parents[1] / "data" / "stuck_poisson.csv"
# the calibration's priors, held fixed (the defaults of the data the simulations were drawn for)
PRIORS = {"Intercept": hb.Normal(1.099, 2.5), "x": hb.Normal(0, 3.215), "sd(Intercept|g)": hb.HalfNormal(1),
          "sd(x|g)": hb.HalfNormal(1.286), "cor": hb.LKJ(2)}
RUN = {"draws": 400, "tune": 400, "chains": 2, "seed": 1029344969, "progressbar": False, "warn": False}


@pytest.fixture(scope="module")
def model():
    return hb.Model("count ~ x + (x | g)", pd.read_csv(DATA), "poisson", priors=PRIORS)


@pytest.fixture(scope="module")
def first(model):
    return model.fit(**RUN, adapt_parameterization=False)


@pytest.fixture(scope="module")
def refitted(model):
    return model.fit(**RUN)


def test_auto_draws_these_data_non_centered_and_the_chains_stick_apart(model, first):
    assert model.parameterization == {"g": "non-centered"}
    assert other_coordinates(model) == {"g": "centered"}
    assert "parameterization_refit" not in first.idata.attrs
    assert largest_rhat(first) > 1.5


def test_stuck_chains_are_sampled_again_centered_and_the_better_run_kept(model, first, refitted):
    fit = refitted
    note = fit.idata.attrs["parameterization_refit"]
    assert note.startswith(f"chains stuck apart, R-hat {largest_rhat(first):.2f}; refitted with g centered: ")
    assert note.endswith(", kept")
    assert fit.model.parameterization == {"g": "centered"} and fit.model.refitted_from == {"g": "non-centered"}
    assert model.parameterization == {"g": "non-centered"}  # the user's model is left as it was
    assert largest_rhat(fit) < 1.2 < 2.0 < largest_rhat(first)  # short chains: the kept run is not yet at 1.01
    header = "\n".join(fit._header())
    assert "(chains stuck apart, R-hat" in header
    assert "g centered (each level's effects drawn directly), after its chains stuck apart non-centered" in header
    # the correlation's chains: apart by many times their own spread in the first run, overlapping in the kept one
    assert apart(first.posterior["cor_g"].values[..., 0]) > 5 > 0.5 > apart(fit.posterior["cor_g"].values[..., 0])


def apart(draws: np.ndarray) -> float:
    """How far apart two chains' means are, in their draws' SDs within a chain."""
    return float(abs(draws[0].mean() - draws[1].mean()) / np.sqrt(draws.var(axis=1).mean()))


def test_the_report_says_the_fit_was_sampled_again(refitted):
    from hierbayes.viz.report import render_report

    page = render_report(refitted, {})
    assert "sampler reruns" in page and refitted.idata.attrs["parameterization_refit"] in page


def test_a_saved_refitted_fit_loads_in_the_coordinates_it_was_drawn_in(refitted, tmp_path):
    refitted.save(tmp_path / "fit.nc")
    loaded = hb.load(tmp_path / "fit.nc")
    assert loaded.model.parameterization == {"g": "centered"}
    assert loaded.idata.attrs["parameterization_refit"] == refitted.idata.attrs["parameterization_refit"]
    assert "(chains stuck apart, R-hat" in "\n".join(loaded._header())
    np.testing.assert_allclose(loaded.summary()["mean"], refitted.summary()["mean"])


def test_other_coordinates_that_cannot_start_leave_the_first_run(model, first, monkeypatch):
    from hierbayes.common.errors import InitialPointError
    from hierbayes.posterior import fitting

    sample = fitting._sample

    def refuses_the_other_coordinates(m, settings):
        if m.refitted_from:
            raise InitialPointError("the log density is not finite at the initial point")
        return sample(m, settings)

    monkeypatch.setattr(fitting, "_sample", refuses_the_other_coordinates)
    fit = model.fit(**RUN)
    assert fit.model is model and largest_rhat(fit) == largest_rhat(first)
    assert fit.idata.attrs["parameterization_refit"].endswith("with g centered the sampler could not start, the first run kept")


def test_a_parameterization_the_user_chose_is_kept(model):
    chosen = hb.Model("count ~ x + (x | g)", model.data, "poisson", priors=PRIORS, parameterization="non-centered")
    assert other_coordinates(chosen) is None
    fit = chosen.fit(**RUN)
    assert "parameterization_refit" not in fit.idata.attrs and fit.model is chosen


def test_chains_that_agree_are_not_sampled_again():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(12), 20)
    df = pd.DataFrame({"y": rng.normal(0, 1, 12)[g] + rng.normal(size=g.size), "g": g})
    model = hb.Model("y ~ 1 + (1 | g)", df, collapse=False)
    fit = model.fit(draws=300, tune=300, chains=2, seed=3, progressbar=False, warn=False)
    assert largest_rhat(fit) < STUCK_RHAT
    assert "parameterization_refit" not in fit.idata.attrs and fit.model is model
