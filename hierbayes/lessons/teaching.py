"""Two lessons of multilevel modelling, as functions a notebook can call.

**Why the posterior mean and not the MAP.** The joint mode of a hierarchical posterior is
degenerate: in the model's own terms (``r_j ~ Normal(0, sd)``) the density grows without
bound as ``sd -> 0`` with every ``r_j -> 0``. :func:`compare_map` tabulates the joint MAP,
the marginal mode (group effects integrated out: lme4's ML estimate for gaussian models)
and the posterior mean; the lesson lives in :mod:`hierbayes.lessons.modes`.

**Why non-centered when levels hold little data.** When a level's data say little next
to the population spread, the centered posterior of ``(r_j, log sd)`` is a funnel that
NUTS cannot traverse: divergent transitions and a poor effective sample size. The
non-centered parameterization samples ``z_j ~ Normal(0, 1)`` instead, whose geometry is
plain. When every level holds a lot of data the roles turn, and the non-centered
``(z_j, log sd)`` is the funnel; the default ``parameterization="auto"``
(:mod:`hierbayes.model.parameterization`) therefore centers only a factor whose levels nearly
all say a lot. :func:`compare_parameterizations` fits both and tabulates divergences and
ESS per second; its ``plot_funnel`` shows the two funnels side by side.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import DataWarning, HierbayesError
from hierbayes.lessons.modes import compare_map, map_estimate

plt = deferred_import("matplotlib.pyplot")

__all__ = ["compare_map", "map_estimate", "compare_parameterizations", "ParameterizationComparison",
           "with_parameterization"]


def with_parameterization(model, parameterization: str | Mapping[str, str]):
    """The same formula, data, family and priors with another parameterization of the group effects.

    The group effects stay in the model (``collapse=False``), since the lessons here are
    about their geometry.
    """
    with warnings.catch_warnings():  # the rows dropped for missing values were reported once already
        warnings.simplefilter("ignore", DataWarning)
        return type(model)(model.formula, model.data, model.family, priors=model.user_priors,
                     parameterization=parameterization, collapse=False, namespace=model.namespace)


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
        Passed to both fits (``target_accept``, ``cores``, ...). Both keep their first run
        (``adapt_divergences=False``), so that the table shows the divergences each
        parameterization meets at the same ``target_accept``; pass ``adapt_divergences=True``
        to let them rerun as ``Model.fit`` does.

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
    ...                                       chains=2, seed=1)
    >>> list(result.table.index)
    ['centered', 'non-centered']
    >>> fig = result.plot_funnel()

    (Skipped as a doctest for its two compilations; ``tests/test_teaching.py`` and
    ``notebooks/05_funnel.ipynb`` run it.)
    """
    if not model.design.factors:
        raise HierbayesError("this model has no grouping factor, so nothing to parameterize")
    fit_kwargs = {"progressbar": False, "adapt_divergences": False, "adapt_parameterization": False, **fit_kwargs,
                  "warn": False}
    fits = {name: with_parameterization(model, name).fit(draws=draws, tune=tune, chains=chains, seed=seed, **fit_kwargs)
            for name in ("centered", "non-centered")}
    return ParameterizationComparison(fits, _sampling_table(fits))
