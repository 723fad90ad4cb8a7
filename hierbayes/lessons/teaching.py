"""Two lessons of multilevel modelling, as functions a notebook can call.

**Why the posterior mean and not the MAP.** The posterior of a group SD is skewed, and
the joint mode of a hierarchical posterior is degenerate: in the model's own terms
(``r_j ~ Normal(0, sd)``) the density grows without bound as ``sd -> 0`` with every
``r_j -> 0``, so with little data per level the MAP of a group SD collapses toward zero
while the posterior mean stays where the data put it. :func:`compare_map` prints the two
side by side for every population-level parameter. A mode, unlike a mean, depends on the
parameterization: in the non-centered coordinates (``z_j = r_j / sd``) the joint mode
is elsewhere (often *above* the mean), which is one more reason not to report it.

**Why non-centered when levels hold little data.** When a level's data say little next
to the population spread, the centered posterior of ``(r_j, log sd)`` is a funnel that
NUTS cannot traverse: divergent transitions and a poor effective sample size. The
non-centered parameterization samples ``z_j ~ Normal(0, 1)`` instead, whose geometry is
plain. When every level holds a lot of data the roles turn, and the non-centered
``(z_j, log sd)`` is the funnel; the default ``parameterization="auto"``
(:mod:`hierbayes.model.parameterization`) therefore centers only a factor whose levels nearly
all say a lot. :func:`compare_parameterizations` fits both and tabulates divergences and
ESS per second; its ``plot_funnel`` shows the two funnels side by side.

Examples
--------
>>> import numpy as np, pandas as pd
>>> import hierbayes as hb
>>> rng = np.random.default_rng(2)
>>> g = np.repeat(np.arange(8), 2)
>>> df = pd.DataFrame({"y": 1 + rng.normal(0, 0.3, 8)[g] + rng.normal(0, 2, g.size), "g": g})
>>> mode, collapsed = map_estimate(hb.Model("y ~ 1 + (1 | g)", df), scale={"sd(Intercept|g)": 0.7})
>>> collapsed, bool(mode["sd_g"].item() < 0.007)
(['sd(Intercept|g)'], True)
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.deferred import deferred_import
from hierbayes.errors import DataWarning, HierbayesError
from hierbayes.posterior.summaries import interval_names, parameter_draws
from hierbayes.specification.names import INTERCEPT_CENTERED, SLOPES, FactorNames, corr_chol, prior_variables
from hierbayes.specification.parameters import model_parameters
from hierbayes.specification.priors import PRIOR_KINDS

plt = deferred_import("matplotlib.pyplot")

__all__ = ["compare_map", "map_estimate", "compare_parameterizations", "ParameterizationComparison",
           "with_parameterization"]


COLLAPSED = 0.01  # an SD mode below this fraction of its posterior mean has run into the spike at zero


def with_parameterization(model, parameterization: str | Mapping[str, str]):
    """The same formula, data, family and priors with another parameterization of the group effects.

    The group effects stay in the model (``collapse=False``), since the lessons here are
    about their geometry.
    """
    with warnings.catch_warnings():  # the rows dropped for missing values were reported once already
        warnings.simplefilter("ignore", DataWarning)
        return type(model)(model.formula, model.data, model.family, priors=model.user_priors,
                     parameterization=parameterization, collapse=False, namespace=model.namespace)


def _find_map(pymc_model, hold: set[str] = frozenset(), start: xr.Dataset | None = None) -> xr.Dataset:
    """``pm.find_MAP`` over the free variables not in ``hold`` (those stay at ``start``)."""
    import pymc as pm

    free = [rv for rv in pymc_model.free_RVs if rv.name not in hold]
    initvals = None
    if start is not None:
        initvals = {rv.name: start[rv.name].values[0, 0] for rv in pymc_model.free_RVs}
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            tree = pm.find_MAP(model=pymc_model, vars=free, initvals=initvals, return_inferencedata=True,
                               jitter=False, progressbar=False)
    finally:
        logger.setLevel(level)
    return tree["posterior"].to_dataset()


def _collapsed_variables(model, mode: xr.Dataset, scale: dict[str, float]) -> set[str]:
    """Free variables of the centered model's factors whose SDs went to zero at ``mode``.

    ``scale`` is a reference size per SD label (the posterior mean); an SD below
    :data:`COLLAPSED` of it has collapsed. The names follow :func:`hierbayes.model.pymc_model.build_model`.
    """
    from hierbayes.model.coordinates import hierarchical_centering

    design = model.design
    centering = hierarchical_centering(design, model.parameterization, model.collapsed)
    held = set()
    free = {rv.name for rv in model.pymc_model.free_RVs}
    for factor in design.factors:
        names = FactorNames(factor)
        sd = mode[names.sd].values.ravel()
        labels = [names.sd_label(c) for c in design.factor_coefs(factor)]
        if not any(v < COLLAPSED * scale[label] for v, label in zip(sd, labels)):
            continue
        blocks = [k for k, b in enumerate(design.blocks) if b.factor == factor]
        held |= free & (prior_variables(names.sd, PRIOR_KINDS) | {names.block(k) for k in blocks}
                        | {corr_chol(k) for k in blocks})
        if centering and centering[0] == factor:
            # its effects are drawn around the fixed effects: collapsed, they equal them, and
            # moving a fixed effect alone would leave the spike (coordinates.hierarchical_centering)
            held |= free & ({INTERCEPT_CENTERED} | prior_variables(SLOPES, PRIOR_KINDS))
    return held


def map_estimate(model, scale: dict[str, float], parameterization: str | Mapping[str, str] | None = "centered"
                 ) -> tuple[xr.Dataset, list[str]]:
    """The joint posterior mode (MAP) of ``model`` by ``pm.find_MAP``, as a one-draw posterior.

    The density is maximized on the parameters' own scales (no Jacobian of the
    transforms the optimizer works in), as ``pm.find_MAP`` does. In the centered
    coordinates the density is unbounded as a factor's SDs and effects go to zero; when
    the optimizer runs into that spike (an SD below 1% of ``scale``), that factor is held
    there and the other parameters are optimized again, so they are the mode given the
    collapse (for one factor: close to the fit that ignores it); the factor's
    correlations are then undefined (NaN).

    Parameters
    ----------
    model : Model
    scale : dict
        A reference size for each SD label (the posterior means).
    parameterization : {"centered", "non-centered"}, dict or None
        The coordinates in which the mode is taken; None uses the model's own.
        ``"centered"`` (default) is the model in its own terms, group effects
        ``r_j ~ Normal(0, sd)`` (drawn around the fixed effects in one factor:
        :func:`hierbayes.model.coordinates.hierarchical_centering`).

    Returns
    -------
    (xarray.Dataset, list of str)
        The mode with the posterior's variables (``b``, ``sd_<factor>``, ``r_<factor>``,
        ...; dims ``chain`` and ``draw`` of size 1), and the SD labels that collapsed.
    """
    variant = model if parameterization is None else with_parameterization(model, parameterization)
    mode = _find_map(variant.pymc_model)
    held = _collapsed_variables(variant, mode, scale)
    if held and len(held) < len(variant.pymc_model.free_RVs):
        mode = _find_map(variant.pymc_model, held, mode)
    parameters = model_parameters(model.design, model.family)
    collapsed = [p.label for p in parameters
                 if p.cls == "sd" and float(mode[p.var].sel(p.sel).values.ravel()[0]) < COLLAPSED * scale[p.label]]
    collapsed_factors = {p.factor for p in parameters if p.label in collapsed}
    for p in parameters:  # a correlation of effects that are all zero is undefined
        if p.cls == "cor" and p.factor in collapsed_factors:
            mode[p.var].loc[p.sel] = np.nan
    return mode, collapsed


def compare_map(fit, prob: float | None = None, parameterization: str | Mapping[str, str] | None = "centered"
                ) -> pd.DataFrame:
    """MAP next to the posterior mean and interval, for every fixed effect and variance component.

    Parameters
    ----------
    fit : Fit
    prob : float, optional
        Mass of the posterior interval.
    parameterization : {"centered", "non-centered"}, dict or None
        Where the mode is taken (see :func:`map_estimate`): by default in the model's own
        terms, whichever parameterization the fit sampled.

    Returns
    -------
    DataFrame
        Index: the labels of :meth:`~hierbayes.api.Fit.summary`. Columns ``map``,
        ``mean``, ``sd`` and the interval (``2.5%``, ``97.5%``). ``attrs["collapsed"]``
        lists the SDs whose mode is at zero (see :func:`map_estimate`).
    """
    lo, hi = interval_names(prob or fit.prob)
    table = fit.summary(prob)[["mean", "sd", lo, hi]]
    mode, collapsed = map_estimate(fit.model, table["mean"].to_dict(), parameterization)
    table.insert(0, "map", parameter_draws(mode, fit.parameters)[0, 0])
    table.attrs["collapsed"] = collapsed
    return table


@dataclass
class ParameterizationComparison:
    """Centered and non-centered fits of one model, side by side.

    Attributes
    ----------
    fits : dict
        ``{"centered": Fit, "non-centered": Fit}``.
    table : DataFrame
        Per parameterization: ``divergences``, ``sampling_seconds`` (compilation
        excluded), ``min_ess_bulk`` over the population-level parameters and the
        parameter it belongs to (``worst_parameter``), ``ess_bulk_per_second`` (the
        minimum ESS divided by the sampling time) and ``max_r_hat``.
    """

    fits: dict
    table: pd.DataFrame

    def plot_funnel(self, factor: str | None = None, level: str | None = None, term: str | None = None):
        """The funnel of each fit (:func:`hierbayes.viz.plots.plot_funnel`) side by side; returns the Figure."""
        from hierbayes.viz.plots import plot_funnel

        fig, axes = plt.subplots(1, len(self.fits), figsize=(10, 4.2), sharex=True, sharey=True, layout="constrained")
        for ax, (name, fit) in zip(axes, self.fits.items()):
            plot_funnel(fit, factor, level, term, ax=ax)
            ax.set_title(f"{name}: {int(self.table.loc[name, 'divergences'])} divergences")
        return fig

    def __repr__(self) -> str:
        return self.table.to_string()

    def _repr_html_(self) -> str:
        return self.table.to_html()


def _sampling_table(fits: dict) -> pd.DataFrame:
    rows = {}
    for name, fit in fits.items():
        summary = fit.summary()
        seconds = float(fit.timings["sample"])
        worst = summary["ess_bulk"].idxmin()
        rows[name] = {
            "divergences": int(fit.idata["sample_stats"]["diverging"].sum()),
            "sampling_seconds": seconds,
            "min_ess_bulk": float(summary.loc[worst, "ess_bulk"]),
            "worst_parameter": worst,
            "ess_bulk_per_second": float(summary.loc[worst, "ess_bulk"]) / max(seconds, 1e-9),
            "max_r_hat": float(summary["r_hat"].max()),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("parameterization")


def compare_parameterizations(model, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
                              seed: int | None = None, **fit_kwargs) -> ParameterizationComparison:
    """Fit ``model`` centered and non-centered and compare how well NUTS samples each.

    Parameters
    ----------
    model : Model
        Formula, data, family and priors to use; its own parameterization is ignored.
    draws, tune, chains, seed
        As in :meth:`~hierbayes.api.Model.fit`, the same for both fits.
    **fit_kwargs
        Passed to both fits (``target_accept``, ``cores``, ...).

    Returns
    -------
    ParameterizationComparison
        ``.table`` of divergences and ESS per second, ``.fits``, ``.plot_funnel()``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import hierbayes as hb
    >>> rng = np.random.default_rng(3)
    >>> g = np.repeat(np.arange(8), 3)
    >>> df = pd.DataFrame({"y": 1 + rng.normal(0, 0.5, 8)[g] + rng.normal(size=g.size), "g": g})
    >>> result = hb.compare_parameterizations(hb.Model("y ~ 1 + (1 | g)", df), draws=300, tune=300,
    ...                                       chains=2, seed=1)  # doctest: +SKIP
    >>> list(result.table.index)  # doctest: +SKIP
    ['centered', 'non-centered']
    >>> fig = result.plot_funnel()  # doctest: +SKIP

    (Skipped as a doctest for its two compilations; ``tests/test_teaching.py`` and
    ``notebooks/05_funnel.ipynb`` run it.)
    """
    if not model.design.factors:
        raise HierbayesError("this model has no grouping factor, so nothing to parameterize")
    fit_kwargs = {"progressbar": False, **fit_kwargs, "warn": False}
    fits = {name: with_parameterization(model, name).fit(draws=draws, tune=tune, chains=chains, seed=seed, **fit_kwargs)
            for name in ("centered", "non-centered")}
    return ParameterizationComparison(fits, _sampling_table(fits))
