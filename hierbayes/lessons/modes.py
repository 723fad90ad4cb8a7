"""Modes and means: why hierbayes reports posterior means, shown on three columns.

**The joint MAP** maximizes the posterior density over everything, group effects included.
In the model's own terms (``r_j ~ Normal(0, sd)``, the *centered* coordinates) that density
grows without bound as a factor's SD goes to zero with every ``r_j`` at zero: the joint mode
is a spike, not an estimate. An optimizer runs into it whenever the levels' data say little
next to the residual noise: the group SDs collapse toward 0 and, with the effects gone, the
fixed effects become those of the fit that ignores the factor (the pooled fit).
:func:`map_estimate` finds it with one compiled log density and scipy: once a factor has
collapsed, its SDs and effects are held there and the rest optimized again (the mode given
the collapse). A mode also depends on the coordinates: in the non-centered ones
(``z_j = r_j / sd``) it is elsewhere.

**The marginal mode** integrates the group effects out first and maximizes what remains; for a
gaussian model, with no priors, it is lme4's maximum-likelihood estimate
(:mod:`hierbayes.lessons.marginal_mode`). Its SDs do not collapse.

**The posterior mean** averages over the whole posterior, SDs and effects together: what
every hierbayes table reports. :func:`compare_map` puts the three side by side.

A non-converged optimizer gives NaN and a :class:`~hierbayes.common.errors.ConvergenceWarning`
naming it, never its last point.

Examples
--------
>>> import numpy as np, pandas as pd
>>> import hierbayes as hb
>>> rng = np.random.default_rng(2)
>>> g = np.repeat(np.arange(8), 2)
>>> df = pd.DataFrame({"y": 1 + rng.normal(0, 0.3, 8)[g] + rng.normal(0, 2, g.size), "g": g})
>>> mode, collapsed = map_estimate(hb.Model("y ~ 1 + (1 | g)", df), scale={"sd(Intercept|g)": 0.7})
>>> collapsed, bool(mode["sd_g"].item() < 0.007), mode.attrs["converged"]
(['sd(Intercept|g)'], True, True)
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.backend.compat import quiet_blas
from hierbayes.common.errors import ConvergenceWarning
from hierbayes.lessons.marginal_mode import marginal_mode
from hierbayes.model.coordinates import hierarchical_centering
from hierbayes.model.pymc_model import build_model
from hierbayes.posterior.summaries import interval_names, parameter_draws
from hierbayes.specification.names import INTERCEPT_CENTERED, SLOPES, FactorNames, corr_chol, prior_variables
from hierbayes.specification.parameters import model_parameters
from hierbayes.specification.priors import PRIOR_KINDS

__all__ = ["compare_map", "map_estimate", "COLLAPSED"]

COLLAPSED = 0.01  # an SD mode below this fraction of its posterior mean has run into the spike at zero
_MAXITER = 5000
_DENSITIES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {coordinates: _LogDensity}


class _LogDensity:
    """``-log p`` (no Jacobian: the density on the parameters' own scales, as ``pm.find_MAP``) and its
    gradient over every value variable of a PyMC model, and the model's variables, compiled once."""

    def __init__(self, pymc_model):
        import pytensor
        import pytensor.tensor as pt
        from pymc.pytensorf import compile, join_nonshared_inputs

        self.model = pymc_model
        point = pymc_model.initial_point()
        values = pymc_model.value_vars
        loss = -pymc_model.logp(jacobian=False)
        grad = pt.concatenate([g.ravel() for g in pytensor.grad(loss, values)])
        self.outputs = [v.name for v in pymc_model.unobserved_value_vars]
        outs, flat = join_nonshared_inputs(point, [loss, grad, *pymc_model.unobserved_value_vars], values)
        with quiet_blas():  # PyTensor's no-BLAS note says nothing about a numba-compiled density
            self.fn = compile([flat], outs, mode="NUMBA", on_unused_input="ignore")
        self.slices, start = {}, 0
        for v in values:
            size = int(np.prod(point[v.name].shape))
            self.slices[v.name] = slice(start, start + size)
            start += size
        self.x0 = np.concatenate([np.ravel(point[v.name]) for v in values]).astype(float)

    def indices(self, value_names) -> np.ndarray:
        return np.concatenate([np.arange(self.slices[n].start, self.slices[n].stop) for n in value_names] or [[]]
                              ).astype(int)

    def minimize(self, x: np.ndarray, held: np.ndarray, maxiter: int | None):
        """L-BFGS-B over the coordinates not in ``held`` (those stay at ``x``); scipy's result and the full x."""
        from scipy import optimize

        free = np.setdiff1d(np.arange(len(x)), held)
        full = x.copy()

        def objective(xs):
            full[free] = xs
            loss, grad = self.fn(full)[:2]
            return float(loss), np.asarray(grad)[free]

        with np.errstate(all="ignore"):
            res = optimize.minimize(objective, x[free], jac=True, method="L-BFGS-B",
                                    options={"maxiter": maxiter or _MAXITER})
        out = x.copy()
        out[free] = res.x
        return res, out

    def posterior(self, x: np.ndarray) -> xr.Dataset:
        """The model's variables at ``x`` as a one-draw posterior (dims ``chain``, ``draw``)."""
        model, data = self.model, {}
        for name, value in zip(self.outputs, self.fn(x)[2:]):
            value = np.asarray(value)
            dims = tuple(model.named_vars_to_dims.get(name, ()))
            if len(dims) != value.ndim:
                dims = tuple(f"{name}_dim_{i}" for i in range(value.ndim))
            data[name] = (("chain", "draw", *dims), value[None, None])
        coords = {k: list(v) for k, v in model.coords.items() if v is not None}
        return xr.Dataset(data, coords=coords)


def _log_density(model, parameterization) -> _LogDensity:
    """The compiled log density of ``model`` in the coordinates of :func:`map_estimate`, compiled once per model."""
    kept = _DENSITIES.setdefault(model, {})
    key = repr(parameterization)
    if key not in kept:
        pymc_model = model.pymc_model if parameterization is None else build_model(
            model.design, model.family, model.priors, parameterization, around_fixed_effects=False)
        kept[key] = _LogDensity(pymc_model)
    return kept[key]


def _collapsed_factors(design, mode: xr.Dataset, scale: Mapping[str, float]) -> list[str]:
    """The factors with an SD below :data:`COLLAPSED` of its reference size ``scale`` at ``mode``."""
    out = []
    for factor in design.factors:
        names = FactorNames(factor)
        sd = mode[names.sd].values.ravel()
        labels = [names.sd_label(c) for c in design.factor_coefs(factor)]
        if any(v < COLLAPSED * scale[label] for v, label in zip(sd, labels)):
            out.append(factor)
    return out


def _held_variables(design, pymc_model, factors: list[str], centering) -> tuple[set[str], set[str]]:
    """(variables held at the collapse, of them the group effects to set to zero), by PyMC name.

    A collapsed factor's SDs, correlations and effects are held. In deviation coordinates
    (``r_j`` drawn around zero) its effects are set to zero, the spike's centre. When the
    factor's effects are drawn around the fixed effects (the model's own hierarchical
    centering), the fixed effects are held too: moving them alone would leave the spike.
    """
    free = {rv.name for rv in pymc_model.free_RVs}
    held, zeroed = set(), set()
    for factor in factors:
        names = FactorNames(factor)
        blocks = [k for k, b in enumerate(design.blocks) if b.factor == factor]
        effects = free & ({names.block(k) for k in blocks} | {names.z, names.z_mean, names.z_contrasts, names.z_slopes})
        held |= free & (prior_variables(names.sd, PRIOR_KINDS) | {corr_chol(k) for k in blocks}) | effects
        if centering and centering[0] == factor:
            held |= free & ({INTERCEPT_CENTERED} | prior_variables(SLOPES, PRIOR_KINDS))
        else:
            zeroed |= effects
    return held, zeroed


def map_estimate(model, scale: Mapping[str, float], parameterization: str | Mapping[str, str] | None = "centered",
                 maxiter: int | None = None) -> tuple[xr.Dataset, list[str]]:
    """The joint posterior mode (MAP) of ``model``, as a one-draw posterior.

    The density is maximized on the parameters' own scales (no Jacobian of the transforms
    the optimizer works in), as ``pm.find_MAP`` does, by L-BFGS-B on the model's log density
    and gradient compiled once. In the centered coordinates the density is unbounded as a
    factor's SDs and effects go to zero; when the optimizer runs into that spike (an SD
    below 1% of ``scale``), the factor is held there, its effects at zero, and the other
    parameters are optimized again: the mode given the collapse (for one factor, the fit
    that ignores it). The factor's correlations are then undefined (NaN).

    Parameters
    ----------
    model : Model
    scale : dict
        A reference size for each SD label (the posterior means).
    parameterization : {"centered", "non-centered"}, dict or None
        The coordinates of the mode; None: the model's own (with its hierarchical centering).
        ``"centered"`` (default) is the model in its own terms: group effects
        ``r_j ~ Normal(0, sd)``, deviations from the fixed effects.
    maxiter : int, optional
        Most iterations of each optimization (default 5000).

    Returns
    -------
    (xarray.Dataset, list of str)
        The mode with the posterior's variables (``b``, ``sd_<factor>``, ``r_<factor>``,
        ...; dims ``chain`` and ``draw`` of size 1), and the SD labels that collapsed.
        ``attrs``: ``converged`` (scipy's success flag of the last optimization) and
        ``message``. When it did not converge every value is NaN and a
        :class:`~hierbayes.common.errors.ConvergenceWarning` says so.
    """
    design = model.design
    centering = hierarchical_centering(design, model.parameterization) if parameterization is None else None
    density = _log_density(model, parameterization)
    pymc_model = density.model
    res, x = density.minimize(density.x0, np.zeros(0, dtype=int), maxiter)
    mode = density.posterior(x)
    factors = _collapsed_factors(design, mode, scale) if design.factors else []
    if factors:
        held, zeroed = _held_variables(design, pymc_model, factors, centering)
        values = {pymc_model.rvs_to_values[rv].name for rv in pymc_model.free_RVs if rv.name in held}
        if len(values) < len(pymc_model.free_RVs):
            x[density.indices({pymc_model.rvs_to_values[pymc_model[n]].name for n in zeroed})] = 0.0
            res, x = density.minimize(x, density.indices(values), maxiter)
            mode = density.posterior(x)
    parameters = model_parameters(design, model.family)
    collapsed = [p.label for p in parameters
                 if p.cls == "sd" and float(mode[p.var].sel(p.sel).values.ravel()[0]) < COLLAPSED * scale[p.label]]
    collapsed_factors = {p.factor for p in parameters if p.label in collapsed}
    for p in parameters:  # a correlation of effects that are all zero is undefined
        if p.cls == "cor" and p.factor in collapsed_factors:
            mode[p.var].loc[p.sel] = np.nan
    mode.attrs.update(converged=bool(res.success), message=f"L-BFGS-B, {res.nit} iterations: {res.message}")
    if not res.success:
        warnings.warn(f"the joint MAP's optimizer did not converge ({mode.attrs['message']}); its column is NaN",
                      ConvergenceWarning, stacklevel=2)
        mode = mode.map(lambda v: v * np.nan, keep_attrs=True)
        collapsed = []
    return mode, collapsed


def compare_map(fit, prob: float | None = None, parameterization: str | Mapping[str, str] | None = "centered",
                maxiter: int | None = None) -> pd.DataFrame:
    """The joint MAP, the marginal mode and the posterior mean of every population-level parameter.

    Parameters
    ----------
    fit : Fit
    prob : float, optional
        Mass of the posterior interval.
    parameterization : {"centered", "non-centered"}, dict or None
        Where the joint mode is taken (see :func:`map_estimate`): by default in the model's own
        terms, whichever parameterization the fit sampled.
    maxiter : int, optional
        Most iterations of each optimizer.

    Returns
    -------
    DataFrame
        Index: the labels of :meth:`~hierbayes.api.Fit.summary`. Columns:

        - ``joint_map``: the joint posterior mode, group effects included (:func:`map_estimate`);
          a factor whose SDs collapse to zero has its effects at zero and undefined (NaN) correlations;
        - ``marginal_mode``: the maximum of the marginal likelihood, group effects integrated out and
          no priors: for a gaussian model lme4's ``REML = FALSE`` estimate
          (:func:`hierbayes.lessons.marginal_mode.marginal_mode`); NaN for other families;
        - ``mean``, ``sd`` and the interval (``2.5%``, ``97.5%``): the posterior's.

        ``attrs``: ``collapsed`` (the SDs whose joint mode is at zero), ``converged``
        (``{"joint_map": bool, "marginal_mode": bool}``) and ``notes`` (one sentence per column
        left empty, saying why). A column whose optimizer did not converge is NaN, with a
        :class:`~hierbayes.common.errors.ConvergenceWarning` naming it.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
    >>> table = fit.compare_map()
    >>> list(table.columns[:3]), round(float(table.loc["Days", "marginal_mode"]), 2)  # lme4's ML: 10.47
    (['joint_map', 'marginal_mode', 'mean'], 10.47)
    """
    lo, hi = interval_names(prob or fit.prob)
    table = fit.summary(prob)[["mean", "sd", lo, hi]]
    mode, collapsed = map_estimate(fit.model, table["mean"].to_dict(), parameterization, maxiter)
    marginal = marginal_mode(fit.model, maxiter)
    notes = [] if marginal.converged else [f"marginal_mode: {marginal.message}"]
    if not mode.attrs["converged"]:
        notes.append(f"joint_map: the optimizer did not converge ({mode.attrs['message']})")
    table.insert(0, "marginal_mode", marginal.values.reindex(table.index).to_numpy())
    table.insert(0, "joint_map", parameter_draws(mode, fit.parameters)[0, 0])
    table.attrs.update(collapsed=collapsed, notes=notes,
                       converged={"joint_map": mode.attrs["converged"], "marginal_mode": marginal.converged})
    return table
