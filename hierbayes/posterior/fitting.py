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
from hierbayes.errors import DataWarning
from hierbayes.model import collapsed as _collapsed
from hierbayes.model import data as _data
from hierbayes.posterior.diagnostics import few_levels
from hierbayes.posterior.fit import Posterior

__all__ = ["fit_model"]


def fit_model(model, *, draws: int = 1000, tune: int = 1000, chains: int = 4, cores: int | None = None,
              seed: int | None = None, sampler: str = "auto", target_accept: float = 0.8,
              progressbar: bool = True, log_likelihood: bool = False, warn: bool = True,
              adapt_divergences: bool = True) -> Posterior:
    """Sample ``model``'s posterior with NUTS; the arguments are those of :meth:`hierbayes.Model.fit`.

    Returns
    -------
    Posterior
        An instance of ``model.fit_class`` (:class:`Posterior` when it is None).
    """
    data = _data.model_data(model.design, model.family, model.priors, model.collapsed, model.parameterization)
    run = run_sampler(lambda: model.fitting_model, _data.pack_data(data), model.structure,
                      coords=_data.model_coords(model.design),
                      starts=_data.initial_values(model.design, model.family, model.priors, data,
                                                  model.parameterization, model.collapsed),
                      sampler=sampler, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                      target_accept=target_accept, progressbar=progressbar, adapt_divergences=adapt_divergences)
    if model.collapsed:
        run = _collapsed.with_group_effects(run, model.design, data, seed)
    fit_class = model.fit_class or Posterior
    fit = fit_class.from_run(model, run, seed=seed, log_likelihood=log_likelihood)
    fit.settings = {"draws": draws, "tune": tune, "chains": chains, "cores": cores, "seed": seed, "sampler": sampler,
                    "target_accept": target_accept, "progressbar": progressbar, "log_likelihood": log_likelihood,
                    "warn": warn, "adapt_divergences": adapt_divergences}
    if warn:
        for message in few_levels(model.design):
            warnings.warn(message, DataWarning, stacklevel=3)
        fit.warn_if_unconverged()
    return fit
