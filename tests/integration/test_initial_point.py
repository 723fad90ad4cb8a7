"""A sampler that cannot start: nutpie's failure at its initial point becomes a hierbayes error.

The data set is the 34th simulation of ``validation/run_sbc.py``'s ``weibull`` case (responses from
0.011 to 366,097), rebuilt here from :func:`calibration_data` and the case's seed by the steps of
:func:`hierbayes.calibrate` (no refit changes its random stream). Under the priors that case holds
fixed, the sampler used to start the intercept at its prior's location, 0.69, where log(mean) of
this data set is 9.09: the log density at the jittered start was about -8e20 and nutpie panicked
("bad initial gradient: Invalid initial point"), a Rust panic that reached the user as a
``BaseException``. The mean's intercept now starts at the data's location, where the same fit
samples; the old start is forced here to check the panic's translation.
"""

from __future__ import annotations

import numpy as np
import pytest

import hierbayes as hb
import hierbayes.lessons.calibration as calibration
from hierbayes.common.errors import HierbayesError, InitialPointError
from hierbayes.lessons.calibration import calibration_data
from hierbayes.lessons.simulation import draw_prior, simulate_truth, with_response
from hierbayes.model.definition import ModelDefinition
from hierbayes.posterior import fitting
from hierbayes.posterior.fitting import fit_model

FORMULA, SEED, N_SIMS = "positive ~ x + (1 | g)", 2018, 100


def weibull_case_data_set(number: int):
    """``(data, priors, refit seed)`` of simulation ``number`` (1-based) of the SBC ``weibull`` case."""
    data = calibration_data(groups=10, per_group=6, crossed=5, nested=3, seed=SEED)
    base = ModelDefinition(FORMULA, data, "weibull")
    rng = np.random.default_rng(SEED)
    pool = draw_prior(base.priors, base.design, N_SIMS, rng)
    for used in range(number):
        _, y = simulate_truth(base.design, base.family, base.priors, {k: v[used] for k, v in pool.items()}, rng)
        seed = int(rng.integers(2**31))
    return with_response(data, base.design, y), base.priors, seed


@pytest.fixture(scope="module")
def extreme():
    return weibull_case_data_set(34)


def test_the_rebuilt_data_set_is_the_one_that_panicked(extreme):
    data, _, _ = extreme
    assert data["positive"].min() == pytest.approx(0.010859, rel=1e-4)
    assert data["positive"].max() == pytest.approx(366097.07, rel=1e-6)


def test_nutpie_panic_at_the_initial_point_is_an_initial_point_error(extreme, monkeypatch):
    data, priors, seed = extreme
    model = ModelDefinition(FORMULA, data, "weibull", priors=priors)
    starts = fitting._data.initial_values

    def at_the_prior_location(*args, **kwargs):  # the start before the intercept started at the data's
        return {**starts(*args, **kwargs), "Intercept_centered": np.array(priors["Intercept"].values["mu"])}

    monkeypatch.setattr(fitting._data, "initial_values", at_the_prior_location)
    with pytest.raises(InitialPointError, match=r"could not start: the log density or its gradient is not finite.*"
                                                 r"Rescale the response") as caught:
        fit_model(model, draws=100, tune=100, chains=2, seed=seed, progressbar=False, warn=False)
    assert isinstance(caught.value, HierbayesError) and not isinstance(caught.value, KeyboardInterrupt)


def test_the_same_fit_samples_from_the_data_located_start(extreme):
    data, priors, seed = extreme
    fit = fit_model(ModelDefinition(FORMULA, data, "weibull", priors=priors), draws=200, tune=200, chains=2,
                    seed=seed, progressbar=False, warn=False)
    intercept = fit.posterior["b"].sel(term="Intercept")
    assert np.isfinite(intercept).all()
    chain_means = intercept.mean("draw").values
    assert abs(chain_means[0] - chain_means[1]) < 1.0  # both chains in one place: no chain stuck where it started


def test_a_log_density_not_finite_at_the_start_is_an_initial_point_error():
    """exp(200 x) overflows: nutpie's RuntimeError ("All initialization points failed") is translated too."""
    model = hb.Model(FORMULA, calibration_data(groups=10, per_group=6, seed=1), "weibull",
                     priors={"x": hb.Normal(200.0, 1.0)})
    with pytest.raises(InitialPointError, match=r"could not start.*All initialization points failed"):
        model.fit(draws=50, tune=50, chains=2, seed=1, progressbar=False, warn=False)


def test_the_same_data_fit_under_their_own_default_priors(extreme):
    """The default intercept prior is located at the data's log mean, where the sampler starts fine."""
    data, _, seed = extreme
    model = hb.Model(FORMULA, data, "weibull")
    assert model.priors["Intercept"].values["mu"] == pytest.approx(np.log(data["positive"].mean()), abs=1e-3)
    fit = model.fit(draws=100, tune=100, chains=2, seed=seed, progressbar=False, warn=False)
    intercept = fit.posterior["b"].sel(term="Intercept")
    assert np.isfinite(intercept).all()
    assert abs(float(intercept.mean()) - np.log(data["positive"].mean())) < 2.5  # on the data's scale


def test_calibrate_counts_a_refit_that_cannot_start_and_goes_on(monkeypatch):
    calls = []

    def second_cannot_start(model, **options):
        calls.append(options["seed"])
        if len(calls) == 2:
            raise InitialPointError("the sampler (nutpie) could not start (test)")
        return fit_model(model, **options)

    monkeypatch.setattr(calibration, "fit_model", second_cannot_start)
    cal = hb.calibrate("y ~ x + (1 | g)", calibration_data(groups=5, per_group=4, seed=1), n_sims=3, draws=40,
                       tune=40, thin=1, seed=3)
    assert (cal.n_sims, cal.unstarted, len(calls)) == (3, 1, 4)


def test_calibrate_gives_up_when_most_refits_cannot_start(monkeypatch):
    def never_starts(model, **options):
        raise InitialPointError("the sampler (nutpie) could not start (test)")

    monkeypatch.setattr(calibration, "fit_model", never_starts)
    with pytest.raises(HierbayesError, match=r"11 refits could not start \(log density not finite at the initial "
                                             r"point\) against 0 kept"):
        hb.calibrate("y ~ x + (1 | g)", calibration_data(groups=5, per_group=4, seed=1), n_sims=3, seed=3)


def test_only_a_non_identity_link_intercept_starts_at_the_data(extreme):
    """Under default priors the start is the prior's location either way, so seeded fits are unchanged."""
    from hierbayes.model import data as model_data

    def intercept_start(model):
        values = model_data.model_data(model.design, model.family, model.priors, model.collapsed, model.parameterization)
        return float(model_data.initial_values(model.design, model.family, model.priors, values,
                                               model.parameterization, model.collapsed)["Intercept_centered"])

    data, priors, _ = extreme
    assert intercept_start(ModelDefinition(FORMULA, data, "weibull", priors=priors)) == pytest.approx(
        np.log(data["positive"].mean()))  # not the stated prior's 0.69
    default = ModelDefinition(FORMULA, data, "weibull")
    assert intercept_start(default) == pytest.approx(default.priors["Intercept"].values["mu"])
    stated = {"Intercept": hb.Normal(100.0, 1.0)}
    assert intercept_start(ModelDefinition("y ~ x + (1 | g)", data, priors=stated)) == pytest.approx(100.0)
