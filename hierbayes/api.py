"""The user's objects: ``hb.Model`` (a model to fit) and ``hb.Fit`` (its posterior), and ``hb.load``.

Each stage of the pipeline has its own subpackage (``spec``, ``model``, ``backend``,
``posterior``, ``viz``, ``lessons``); these classes put the stages behind two objects, so
that a user never needs to know them. :class:`Model` is the model stage's
:class:`~hierbayes.model.definition.ModelDefinition` with fitting; :class:`Fit` is the
posterior stage's :class:`~hierbayes.posterior.fit.Posterior` with plots, the MAP lesson
and saving.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> type(fit).__name__, bool(fit.fixed_effects().loc["Days", "mean"] > 5)
('Fit', True)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pandas as pd

from hierbayes.model.definition import ModelDefinition
from hierbayes.posterior.checking import prior_predictive
from hierbayes.posterior.fit import Posterior
from hierbayes.posterior.fitting import fit_model
from hierbayes.posterior.saved import load_fit, save_fit

__all__ = ["Model", "Fit", "load"]


class Model(ModelDefinition):
    __doc__ = ModelDefinition.__doc__.replace(
        "\n\n    The model stage of the pipeline; :class:`hierbayes.Model` adds fitting to it.", "")

    def fit(self, draws: int = 1000, tune: int = 1000, chains: int = 4, cores: int | None = None,
            seed: int | None = None, sampler: str = "auto", target_accept: float = 0.8,
            progressbar: bool = True, log_likelihood: bool = False, warn: bool = True,
            adapt_divergences: bool = True, adapt_parameterization: bool = True):
        """Sample the posterior with NUTS and return a :class:`Fit`.

        Parameters
        ----------
        draws, tune, chains : int
            Kept draws and tuning steps per chain, and the number of chains.
        cores : int, optional
            Chains run in parallel on this many cores (all by default).
        seed : int, optional
            The same seed gives the same draws (for the same sampler).
        sampler : {"auto", "nutpie", "pymc", "numpyro"}
            ``"auto"`` is nutpie, measured far faster (see :mod:`hierbayes.backend.sampling`);
            ``"numpyro"`` (JAX) needs ``jax`` and ``numpyro`` and runs on a GPU when JAX sees one.
        target_accept : float
            NUTS's target acceptance rate (brms's ``adapt_delta``); higher takes smaller steps.
        adapt_divergences : bool
            After a run with divergent transitions, sample again at target_accept 0.95, then
            0.99 (new seeds, the same compiled model) until a run has none, and keep the last
            run. The summary and ``fit.idata.attrs["divergence_refits"]`` say when it happened
            ("3 divergences at target_accept 0.8; refitted at 0.95: 0 divergences"); divergences
            that remain are still warned about. ``False`` keeps the first run whatever it is.
        adapt_parameterization : bool
            When ``parameterization="auto"`` chose and the chains stuck apart (largest R-hat above
            1.05), sample again with each sampled factor that was drawn non-centered drawn centered,
            and each centered one non-centered (the same posterior in other coordinates), and keep the
            run whose chains agree better. The summary and ``fit.idata.attrs["parameterization_refit"]``
            say when it happened; an R-hat that stays high is still warned about. ``False`` keeps the
            first run.
        progressbar : bool
        log_likelihood : bool
            Store the pointwise log-likelihood in ``fit.idata`` now (when it fits in memory), for
            ArviZ functions called on ``fit.idata`` directly. Off by default, as in PyMC and bambi:
            it is chains x draws x rows numbers (poisson, 10,000 rows: 7 s and 0.7 GB), and
            ``fit.loo()`` and :func:`hierbayes.compare` compute it when they need it
            (``fit.add_log_likelihood()`` does it by hand).
        warn : bool
            Print a plain-language warning when the diagnostics find a problem.

        Returns
        -------
        Fit
        """
        return fit_model(self, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed, sampler=sampler,
                         target_accept=target_accept, progressbar=progressbar, log_likelihood=log_likelihood,
                         warn=warn, adapt_divergences=adapt_divergences,
                         adapt_parameterization=adapt_parameterization)

    def sample_prior_predictive(self, draws: int = 500, seed: int | None = None):
        """Draws from the priors and data drawn from them (DataTree); see :func:`hierbayes.posterior.checking.prior_predictive`."""
        return prior_predictive(self, draws=draws, seed=seed)

class Fit(Posterior):
    __doc__ = Posterior.__doc__.replace(
        "\n\n    The posterior stage of the pipeline; :class:`hierbayes.Fit` adds plots, the MAP lesson and saving.", "")

    # -- saving, plots and the MAP lesson (logic in posterior/saved.py, viz/plots.py and lessons/teaching.py) ---
    def update(self, data=None, priors: Mapping[str, Any] | None = None, formula=None, **fit_kwargs) -> Fit:
        """Refit with changes, as brms's ``update()``: new data, other priors (merged into the ones you
        gave) or another formula, with this fit's sampler settings unless ``fit_kwargs`` change them.

        A model of the same structure (same terms, levels and prior kinds) reuses the compiled
        sampler, so new data or new prior values refit without compiling.

        Examples
        --------
        >>> import hierbayes as hb
        >>> fit = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).fit(
        ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
        >>> tighter = fit.update(priors={"Days": hb.Normal(0, 1)})
        >>> round(float(tighter.fixed_effects().loc["Days", "mean"]), 1) < 10 < round(float(
        ...     fit.fixed_effects().loc["Days", "mean"]), 1)
        True
        """
        m = self.model
        model = type(m)(m.formula if formula is None else formula, m.data if data is None else data, m.family,
                        priors={**m.user_priors, **dict(priors or {})}, namespace=m.namespace, **m.options)
        settings = dict(self.settings)
        if not settings:  # a loaded fit: its draws and chains
            settings = {"draws": self.posterior.sizes["draw"], "chains": self.posterior.sizes["chain"],
                        "seed": self.seed}
        return model.fit(**{**settings, **fit_kwargs})

    def save(self, path, format: str | None = None) -> None:
        """Write the fit to netCDF (or zarr for ``.zarr``) atomically; read it back with ``hb.load``.

        Only a fit saved by hierbayes is ever replaced, and only once the new one is complete;
        see :func:`hierbayes.posterior.saved.save_fit`.
        """
        save_fit(self, path, format=format)


    def plot_shrinkage(self, factor: str, term: str = "Intercept", **kwargs):
        """Arrows from each level's own estimate to its partial-pooling estimate (Axes); ``part="sigma"``
        shows a family parameter's group effects, on its link; see :func:`hierbayes.viz.plots.plot_shrinkage`."""
        from hierbayes.viz.plots import plot_shrinkage

        return plot_shrinkage(self, factor, term, **kwargs)

    def plot_shrinkage_2d(self, factor: str, terms: tuple[str, str | None] = ("Intercept", None), **kwargs):
        """Two varying coefficients per level, shrinking inside the population contours (Axes);
        see :func:`hierbayes.viz.plots.plot_shrinkage_2d`."""
        from hierbayes.viz.plots import plot_shrinkage_2d

        return plot_shrinkage_2d(self, factor, terms, **kwargs)

    def plot_group_effects(self, factor: str, term: str = "Intercept", **kwargs):
        """Forest plot of the levels' coefficients (Axes); see :func:`hierbayes.viz.plots.plot_group_effects`."""
        from hierbayes.viz.plots import plot_group_effects

        return plot_group_effects(self, factor, term, **kwargs)

    def plot_trace(self, parameters=None, **kwargs):
        """Trace and density per parameter (Figure); see :func:`hierbayes.viz.plots.plot_trace`."""
        from hierbayes.viz.plots import plot_trace

        return plot_trace(self, parameters, **kwargs)

    def plot_pair(self, parameters=None, **kwargs):
        """Pair plot, by default the funnel of a group effect against its SD (Figure);
        see :func:`hierbayes.viz.plots.plot_pair`."""
        from hierbayes.viz.plots import plot_pair

        return plot_pair(self, parameters, **kwargs)

    def plot_ppc(self, **kwargs):
        """Posterior predictive check against the observed response (Axes);
        see :func:`hierbayes.viz.plots.plot_ppc`."""
        from hierbayes.viz.plots import plot_ppc

        return plot_ppc(self, **kwargs)

    def conditional_effects(self, effects=None, **kwargs):
        """brms's ``conditional_effects``: expected response against a predictor, with its credible band
        (Figure); see :func:`hierbayes.viz.effects.plot_conditional_effects`.

        For example ``fit.conditional_effects("Days:trt", points=True)``.
        """
        from hierbayes.viz.effects import plot_conditional_effects

        return plot_conditional_effects(self, effects, **kwargs)

    def compare_map(self, prob: float | None = None, **kwargs) -> pd.DataFrame:
        """The joint MAP, the marginal mode (lme4's ML for gaussian models) and the posterior mean of
        every population-level parameter; see :func:`hierbayes.lessons.modes.compare_map`."""
        from hierbayes.lessons.modes import compare_map

        return compare_map(self, prob, **kwargs)


Model.fit_class = Fit


def load(path: str | os.PathLike, namespace: Mapping[str, Any] | None = None) -> Fit:
    """Read a fit written by :meth:`Fit.save`, its model rebuilt from the stored formula, family,
    priors and data (see :func:`hierbayes.posterior.saved.load_fit`).

    Opening a file never runs code from it: the stored formula is checked as any formula is
    (:mod:`hierbayes.specification.evaluation`) before anything in it is evaluated.

    Parameters
    ----------
    path : str or path
    namespace : dict, optional
        The functions the fit's formula used from ``hb.Model(..., namespace=...)``; the file
        stores only their names.

    Raises
    ------
    HierbayesError
        If the file is missing, damaged, not a saved fit, or from another hierbayes version, or
        if its formula uses anything a formula may not (naming the file and the term).
    """
    return load_fit(path, model_class=Model, fit_class=Fit, namespace=namespace)
