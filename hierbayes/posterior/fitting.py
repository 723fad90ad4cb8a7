"""Fitting: a model's data through the sampler, and the draws labelled as a posterior.

This is the one place that runs the pipeline's lower stages in order for one model:
the data contract (:mod:`hierbayes.model.data`), the sampler (:mod:`hierbayes.backend.sampling`),
the draws of integrated-out group effects (:mod:`hierbayes.model.collapsed`) and the
labelled posterior (:class:`~hierbayes.posterior.fit.Posterior`, or the model's
``fit_class``: :class:`hierbayes.Fit` for an ``hb.Model``).

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = fit_model(model, draws=100, tune=100, chains=1, seed=1, progressbar=False, warn=False)
>>> type(fit).__name__, fit.posterior.sizes["draw"]
('Fit', 100)
"""

from __future__ import annotations

import warnings

from hierbayes.backend.sampling import run_sampler
from hierbayes.common.errors import DataWarning, InitialPointError
from hierbayes.model import collapsed as _collapsed
from hierbayes.model import data as _data
from hierbayes.model.coordinates import parameterization_of, sampled_design
from hierbayes.posterior.diagnostics import few_levels
from hierbayes.posterior.fit import Posterior

__all__ = ["fit_model"]


STUCK_RHAT = 1.05
"""Chains stuck apart: a largest R-hat (of the summary's parameters) above this, well above the 1.01 a converged fit is asked for, makes
``adapt_parameterization`` sample again in the other coordinates (simulation-based calibration of a small
poisson model: chains stuck apart in 20 of 100 non-centered refits, 4 of those 20 centered, docs/diagnostics.md)."""


def fit_model(model, *, draws: int = 1000, tune: int = 1000, chains: int = 4, cores: int | None = None,
              seed: int | None = None, sampler: str = "auto", target_accept: float = 0.8,
              progressbar: bool = True, log_likelihood: bool = False, warn: bool = True,
              adapt_divergences: bool = True, adapt_parameterization: bool = True) -> Posterior:
    """Sample ``model``'s posterior with NUTS; the arguments are those of :meth:`hierbayes.Model.fit`.

    Returns
    -------
    Posterior
        An instance of ``model.fit_class`` (:class:`Posterior` when it is None).
    """
    settings = {"draws": draws, "tune": tune, "chains": chains, "cores": cores, "seed": seed, "sampler": sampler,
                "target_accept": target_accept, "progressbar": progressbar, "log_likelihood": log_likelihood,
                "warn": warn, "adapt_divergences": adapt_divergences, "adapt_parameterization": adapt_parameterization}
    fit = _sample(model, settings)
    if adapt_parameterization and (other := other_coordinates(model)) is not None and chains > 1:
        first = largest_rhat(fit)
        if first > STUCK_RHAT:
            other_model = model.reparameterized(other)
            words = ", ".join(f"{f} {other[f]}" for f in other_model.refitted_from)
            try:
                refit = _sample(other_model, settings)
            except InitialPointError:  # the other coordinates could not start: the first run stands
                note = f"chains stuck apart, R-hat {first:.2f}; with {words} the sampler could not start, the first run kept"
            else:
                second = largest_rhat(refit)
                note = (f"chains stuck apart, R-hat {first:.2f}; refitted with {words}: R-hat {second:.2f}, "
                        + ("kept" if second < first else "the first run kept"))
                fit = refit if second < first else fit
            fit.idata.attrs["parameterization_refit"] = note
    if warn:
        for message in few_levels(model.design):
            warnings.warn(message, DataWarning, stacklevel=3)
        fit.warn_if_unconverged()
    return fit


def _sample(model, settings: dict) -> Posterior:
    """One sampling run of ``model`` (with its reruns after divergences) as a labelled posterior."""
    data = _data.model_data(model.design, model.family, model.priors, model.collapsed, model.parameterization)
    run = run_sampler(lambda: model.fitting_model, _data.pack_data(data), model.structure,
                      coords=_data.model_coords(model.design),
                      starts=_data.initial_values(model.design, model.family, model.priors, data,
                                                  model.parameterization, model.collapsed),
                      sampler=settings["sampler"], draws=settings["draws"], tune=settings["tune"],
                      chains=settings["chains"], cores=settings["cores"], seed=settings["seed"],
                      target_accept=settings["target_accept"], progressbar=settings["progressbar"],
                      adapt_divergences=settings["adapt_divergences"])
    if model.collapsed:
        run = _collapsed.with_group_effects(run, model.design, data, settings["seed"])
    fit_class = model.fit_class or Posterior
    fit = fit_class.from_run(model, run, seed=settings["seed"], log_likelihood=settings["log_likelihood"])
    fit.settings = dict(settings)
    return fit


def other_coordinates(model) -> dict[str, str] | None:
    """The parameterization to try when chains stick apart: each sampled factor that ``"auto"`` drew centered
    or non-centered (with a varying intercept) in the other of the two; None when ``"auto"`` did not
    choose or no factor can switch. A partially centered factor stays as it is.

    >>> import hierbayes as hb
    >>> df = hb.datasets.load("sleepstudy")
    >>> other_coordinates(hb.Model("Reaction ~ Days + (Days | Subject)", df, collapse=False))
    {'Subject': 'non-centered'}
    >>> other_coordinates(hb.Model("Reaction ~ Days + (Days | Subject)", df, parameterization="centered")) is None
    True
    """
    if model.options.get("parameterization") != "auto" or model.parameterization_choice is None:
        return None
    sampled = sampled_design(model.design).factors if model.collapsed else model.design.factors
    swap = {"centered": "non-centered", "non-centered": "centered"}
    out, changed = {}, False
    for factor in model.design.factors:
        chosen = parameterization_of(model.parameterization, factor)
        if factor in sampled and "Intercept" in model.design.factor_coefs(factor) and chosen in swap:
            out[factor], changed = swap[chosen], True
        else:
            out[factor] = chosen
    return out if changed else None


def largest_rhat(fit: Posterior) -> float:
    """The largest R-hat over the summary's parameters (fixed effects, group SDs and correlations, family
    parameters; 1.0 when none has one). Chains stuck apart move the group SDs, and this costs a few
    parameters' R-hats where the diagnostics' every group effect would cost seconds on a large design."""
    rhat = fit.summary()["r_hat"].astype(float)
    return float(rhat.max()) if rhat.notna().any() else 1.0
