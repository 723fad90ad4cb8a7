"""Plots of a fit: partial pooling made visible, and the standard checks (matplotlib).

- :func:`plot_shrinkage`: per level, an arrow from its own (no-pooling) estimate to its
  partial-pooling estimate, levels placed by size; small levels move most.
- :func:`plot_shrinkage_2d`: the same for two varying coefficients at once, inside the
  contours of the fitted population distribution.
- :func:`plot_group_effects`: forest plot of the levels' coefficients.
- :func:`plot_funnel`: a group effect against the log of its SD, divergent draws marked.
- :func:`plot_ppc`: replicated data from the posterior against the observed response.
- :func:`plot_trace`, :func:`plot_pair`: drawn by arviz-plots, on the printed labels.

Single-panel plots take ``ax=`` (a new figure when omitted) and return the Axes;
the multi-panel ones (trace, pair) return the Figure. Nothing here calls ``plt.show()``.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> ax = fit.plot_shrinkage("Subject")
>>> len(shrinkage_arrows(ax))
18
>>> fig = fit.plot_trace(["Days", "sd(Days|Subject)"])
>>> len(fig.axes)
4
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter
from scipy import stats

from hierbayes.common.errors import HierbayesError, did_you_mean
from hierbayes.posterior.checking import SAMPLE_DRAWS, SAMPLE_ROWS, count_frequencies, predictive_sample
from hierbayes.posterior.pooling import check_coefficient, pooling, population_draws
from hierbayes.posterior.summaries import interval_names, parameter_draws
from hierbayes.specification.names import FactorNames, part_label
from hierbayes.specification.parameters import group_effect_parameters

__all__ = ["plot_shrinkage", "plot_shrinkage_2d", "plot_group_effects", "plot_funnel", "plot_ppc", "plot_trace",
           "plot_pair", "shrinkage_arrows", "labelled_draws", "density"]

NO_POOLING = dict(facecolors="white", edgecolors="0.2", s=28, zorder=3, linewidths=1)
PARTIAL = dict(color="C0", s=22, zorder=4)
ARROW = dict(arrowstyle="-|>", color="0.35", lw=1.0, shrinkA=3, shrinkB=3, mutation_scale=9)
POPULATION = dict(color="C1", lw=1.5, ls="--")
COMPLETE = dict(color="0.45", lw=1.2, ls=":")
DIVERGENT = dict(color="C3", s=14, zorder=4)


def _axes(ax: Axes | None, figsize=(7, 4.5)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _scale_label(term: str, scale: str, part: str | None = None) -> str:
    """The axis of a coefficient: ``Days``, ``Intercept (logit scale)``; a family parameter's: ``log sigma``,
    ``log sigma: x`` (the coefficient of ``x`` on log sigma)."""
    if part is None:
        return term if scale == "identity" else f"{term} ({scale} scale)"
    on = part if scale == "identity" else f"{scale} {part}"
    return on if term == "Intercept" else f"{on}: {term}"


def shrinkage_arrows(ax: Axes) -> list[Annotation]:
    """The arrows of a shrinkage plot: ``arrow.xyann`` is the level's own estimate, ``arrow.xy``
    its partial-pooling estimate."""
    return [t for t in ax.texts if isinstance(t, Annotation) and t.arrow_patch is not None]


def _arrow(ax: Axes, start, end) -> None:
    ax.annotate("", xy=end, xytext=start, arrowprops=ARROW, annotation_clip=False)


def _spread_by_size(n: np.ndarray) -> np.ndarray:
    """Sample sizes nudged apart (multiplicatively) so levels of equal size do not overlap."""
    x = n.astype(float).copy()
    for value in np.unique(n):
        same = np.flatnonzero(n == value)
        if same.size > 1:
            x[same] = value * 10 ** np.linspace(-0.06, 0.06, same.size)
    return x


def _constant(values: np.ndarray) -> bool:
    return bool(np.ptp(values) <= 1e-12 * max(1.0, float(np.abs(values).max())))


def plot_shrinkage(fit, factor: str, term: str = "Intercept", *, x: str = "auto", prob: float | None = None,
                   part: str | None = None, ax: Axes | None = None) -> Axes:
    """Arrows from each level's own estimate to its partial-pooling estimate.

    Parameters
    ----------
    fit : Fit
    factor : str
    term : str, default "Intercept"
        A varying coefficient of ``factor``.
    x : {"auto", "n", "sorted"}
        Place levels by their number of rows (log scale) or in order of their
        partial-pooling estimate; ``"auto"``: by rows when the levels differ in size, sorted when
        every level has the same number of rows (a balanced design, where a rows axis says nothing).
    prob : float, optional
        Mass of the posterior intervals drawn behind the arrows.
    part : str, optional
        The group effects of a family parameter's own formula (``"sigma"``), on its link: the
        axis reads "log sigma". A level's own estimate of such a parameter is the maximum of its
        likelihood with the rest of the model at its posterior mean (for ``sigma``: the log of the
        RMS of its residuals from the fitted mean); see :func:`~hierbayes.posterior.pooling.pooling`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Open circles: no pooling; dots: partial pooling (posterior mean) with the
        interval; dashed: the population mean (ticks per level when level-2 predictors
        make it differ between levels); dotted: complete pooling. Levels without their own
        estimate (see :func:`~hierbayes.posterior.pooling.pooling`) show the dot only.
    """
    table = pooling(fit, factor, term, prob, part)
    lo, hi = interval_names(table.attrs["prob"])
    ax = _axes(ax)
    if x == "auto":
        x = "sorted" if _constant(table["n"].to_numpy().astype(float)) else "n"
    if x == "n":
        xs = _spread_by_size(table["n"].to_numpy())
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())  # 20, not 2 x 10^1
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"rows per level of {factor} (log scale)")
    elif x == "sorted":
        xs = np.argsort(np.argsort(table["partial_pooling"].to_numpy())).astype(float)
        if len(xs) <= 40:  # few enough to name each level
            ax.set_xticks(xs, [str(level) for level in table.index], rotation=90, fontsize=7)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(f"levels of {factor}, sorted by partial-pooling estimate")
    else:
        raise HierbayesError(f"x must be 'auto', 'n' or 'sorted', not {x!r}")
    own, partial = table["no_pooling"].to_numpy(), table["partial_pooling"].to_numpy()
    has_own = np.isfinite(own)
    ax.vlines(xs, table[lo], table[hi], color="C0", alpha=0.3, lw=2.5,
              label=f"{100 * table.attrs['prob']:g}% interval")
    own_label = "no pooling (own estimate)" if part is None else "no pooling (own rows, mean as fitted)"
    ax.scatter(xs[has_own], own[has_own], label=own_label, **NO_POOLING)
    ax.scatter(xs, partial, label="partial pooling (posterior mean)", **PARTIAL)
    for xi, a, b in zip(xs[has_own], own[has_own], partial[has_own]):
        _arrow(ax, (xi, a), (xi, b))
    population, complete = table["population"].to_numpy(), table["complete_pooling"].to_numpy()
    if _constant(population):
        ax.axhline(population[0], label="population mean", **POPULATION)
    else:
        ax.scatter(xs, population, marker="_", s=150, color="C1", zorder=2, label="population value of the level")
    if _constant(complete):
        ax.axhline(complete[0], label="complete pooling", **COMPLETE)
    else:
        ax.scatter(xs, complete, marker="x", s=14, color="0.45", zorder=2, label="complete pooling")
    if (~has_own).any():
        missing = int((~has_own).sum())
        ax.text(0.01, 0.01, f"{missing} level{'s' if missing > 1 else ''} without an estimate of its own "
                "(see pooling()['reason'])", transform=ax.transAxes, fontsize=8, color="0.3")
    ax.set_ylabel(_scale_label(term, table.attrs["scale"], part))
    ax.set_title(f"Partial pooling of {part_label(term, part)} by {factor}")
    # below the axes, where it cannot cover a level's point
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3 if part is None else 2,
              frameon=False)
    ax.figure.set_layout_engine("constrained")
    return ax


def _second_term(design, factor: str, terms) -> tuple[str, str]:
    first, second = terms
    design.check_factor(factor)
    coefs = design.factor_coefs(factor)
    if second is None:
        others = [c for c in coefs if c != first]
        if not others:
            raise HierbayesError(f"a 2-D shrinkage plot needs two varying coefficients; {factor!r} has "
                                 f"only {list(coefs)}")
        second = others[0]
    return first, second


def _population_normals(fit, factor: str, terms: tuple[str, str], max_draws: int = 300):
    """Means (S, 2) and covariances (S, 2, 2) of the population distribution, per posterior draw.

    The mean is the population value of each coefficient (averaged over levels when level-2
    predictors make it differ), the covariance ``diag(sd) R diag(sd)``.
    """
    a, b = terms
    labels = {p.label for p in fit.parameters}
    names = FactorNames(factor)
    cor = next((lab for lab in (names.cor_label(a, b), names.cor_label(b, a)) if lab in labels), None)
    sd_labels = [names.sd_label(a), names.sd_label(b)]
    draws = labelled_draws(fit, sd_labels + ([cor] if cor else []))
    flat = {name: draws[name].values.ravel() for name in draws.data_vars}
    keep = np.unique(np.linspace(0, len(flat[sd_labels[0]]) - 1, max_draws).astype(int))
    sd = np.column_stack([flat[label][keep] for label in sd_labels])
    rho = flat[cor][keep] if cor else np.zeros(len(keep))
    cov = np.empty((len(keep), 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = sd[:, 0] ** 2, sd[:, 1] ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = rho * sd[:, 0] * sd[:, 1]
    mean = np.column_stack([population_draws(fit, factor, t).mean(axis=-1).ravel()[keep] for t in terms])
    return mean, cov


def _mixture_density(points: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Density at ``points`` (n, 2) of the equal-weight mixture of N(mean[s], cov[s])."""
    inv = np.linalg.inv(cov)
    diff = points[None, :, :] - mean[:, None, :]
    quad = np.einsum("sni,sij,snj->sn", diff, inv, diff)
    norm = 2 * np.pi * np.sqrt(np.linalg.det(cov))
    return (np.exp(-0.5 * quad) / norm[:, None]).mean(axis=0)


def _mixture_levels(mean: np.ndarray, cov: np.ndarray, masses: Sequence[float], n: int = 4000,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Density levels whose upper sets hold ``masses`` of the mixture, and the draws used."""
    rng = np.random.default_rng(seed)
    which = rng.integers(len(mean), size=n)
    samples = mean[which] + np.einsum("nij,nj->ni", np.linalg.cholesky(cov[which]), rng.standard_normal((n, 2)))
    return np.quantile(_mixture_density(samples, mean, cov), [1 - m for m in masses]), samples


def plot_shrinkage_2d(fit, factor: str, terms: tuple[str, str | None] = ("Intercept", None), *,
                      masses: Sequence[float] = (0.5, 0.8, 0.95), ax: Axes | None = None) -> Axes:
    """Two varying coefficients per level: arrows from no pooling to partial pooling.

    The contours enclose ``masses`` of the fitted population distribution of a level's
    coefficients: the bivariate normal ``N(b, diag(sd) R diag(sd))``, averaged over the
    posterior draws of ``b``, the SDs and the correlation (zero for coefficients in
    different or ``||`` blocks). With level-2 predictors it is centred at the average of
    the levels' population values.

    Parameters
    ----------
    fit : Fit
    factor : str
    terms : (str, str or None)
        The coefficients on the x and y axes; None takes the factor's next coefficient.
    masses : sequence of float
        Probability enclosed by each contour.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    design = fit.model.design
    terms = _second_term(design, factor, terms)
    for term in terms:
        check_coefficient(design, factor, term)
    t1, t2 = (pooling(fit, factor, term) for term in terms)
    ax = _axes(ax, figsize=(6.5, 5.5))
    mean, cov = _population_normals(fit, factor, terms)
    masses = sorted(masses, reverse=True)
    levels, samples = _mixture_levels(mean, cov, masses)
    own = np.column_stack([t1["no_pooling"], t2["no_pooling"]])
    partial = np.column_stack([t1["partial_pooling"], t2["partial_pooling"]])
    points = np.vstack([partial, own[np.isfinite(own).all(axis=1)]])
    lo = np.minimum(points.min(axis=0), np.quantile(samples, 0.01, axis=0))
    hi = np.maximum(points.max(axis=0), np.quantile(samples, 0.99, axis=0))
    pad = 0.08 * (hi - lo)
    gx, gy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], 100), np.linspace(lo[1] - pad[1], hi[1] + pad[1], 100))
    density = _mixture_density(np.column_stack([gx.ravel(), gy.ravel()]), mean, cov).reshape(gx.shape)
    contours = ax.contour(gx, gy, density, levels=levels, colors="C1", linewidths=1, alpha=0.8)
    ax.clabel(contours, fmt={lev: f"{100 * m:g}%" for lev, m in zip(contours.levels, masses)}, fontsize=7)
    has_own = np.isfinite(own).all(axis=1)
    ax.scatter(*own[has_own].T, label="no pooling (own estimate)", **NO_POOLING)
    ax.scatter(*partial.T, label="partial pooling (posterior mean)", **PARTIAL)
    for a, b in zip(own[has_own], partial[has_own]):
        _arrow(ax, tuple(a), tuple(b))
    centre = [t1["population"].mean(), t2["population"].mean()]
    ax.scatter(*centre, marker="+", s=120, color="C1", zorder=5, label="population mean")
    ax.plot([], [], color="C1", lw=1, label="population distribution")
    scale = t1.attrs["scale"]
    ax.set_xlabel(_scale_label(terms[0], scale))
    ax.set_ylabel(_scale_label(terms[1], scale))
    ax.set_title(f"Partial pooling of ({terms[0]}, {terms[1]}) by {factor}")
    ax.legend(fontsize=8, loc="best")
    return ax


def plot_group_effects(fit, factor: str, term: str = "Intercept", *, prob: float | None = None,
                       sort: bool = True, ax: Axes | None = None) -> Axes:
    """Forest plot of each level's coefficient (population value + deviation) with its interval.

    Parameters
    ----------
    fit : Fit
    factor : str
    term : str, default "Intercept"
    prob : float, optional
    sort : bool, default True
        Order the levels by posterior mean (else in the order of the data's levels).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One horizontal interval per level; the dashed line is the population mean.
    """
    design = fit.model.design
    check_coefficient(design, factor, term)
    prob = prob or fit.prob
    lo, hi = interval_names(prob)
    table = fit.group_effects(factor, prob).xs(term, level="coefficient")
    if sort:
        table = table.sort_values("total_mean")
    ax = _axes(ax, figsize=(6, max(3.0, 0.18 * len(table) + 1)))
    y = np.arange(len(table))
    ax.hlines(y, table[f"total_{lo}"], table[f"total_{hi}"], color="C0", lw=1.5,
              label=f"{100 * prob:g}% interval")
    ax.scatter(table["total_mean"], y, label="posterior mean", **PARTIAL)
    population = float(fit.fixed_effects().loc[term, "mean"]) if term in design.fixed_names else 0.0
    ax.axvline(population, label="population mean", **POPULATION)
    if len(table) <= 60:
        ax.set_yticks(y, table.index)
    else:
        ax.set_yticks([])
    ax.set_ylabel(factor)
    ax.set_xlabel(_scale_label(term, fit.model.family.link))
    ax.set_title(f"{term} by {factor}")
    ax.legend(fontsize=8, loc="lower right")
    return ax


# --- draws by printed label ---------------------------------------------------------------------------

def labelled_draws(fit, labels: Sequence[str], log_sd: bool = False) -> xr.Dataset:
    """A Dataset with one (chain, draw) variable per printed label.

    Labels are those of :meth:`~hierbayes.api.Fit.summary` (``Days``, ``sd(Days|Subject)``,
    ``sigma``) or group effects ``r_<factor>[<level>,<coefficient>]``. With ``log_sd``,
    SDs become ``log sd(...)``.
    """
    by_label = {p.label: p for p in fit.parameters + group_effect_parameters(fit.model.design)}
    data = {}
    for label in labels:
        if label not in by_label:
            close = did_you_mean(label, [p.label for p in fit.parameters])
            hint = f"; did you mean {close!r}?" if close else ""
            raise HierbayesError(f"no parameter labelled {label!r}: use the labels of fit.summary() or "
                                 f"group effects as 'r_<factor>[<level>,<coefficient>]'{hint}")
        values = parameter_draws(fit.posterior, [by_label[label]])[..., 0]
        if log_sd and label in by_label and by_label[label].cls == "sd":
            label, values = f"log {label}", np.log(values)
        data[label] = (("chain", "draw"), values)
    post = fit.posterior
    return xr.Dataset(data, coords={"chain": post["chain"].values, "draw": post["draw"].values})


def _labelled_tree(fit, labels: Sequence[str], log_sd: bool = False) -> xr.DataTree:
    return xr.DataTree.from_dict({"posterior": labelled_draws(fit, labels, log_sd),
                                  "sample_stats": fit.idata["sample_stats"].to_dataset()})


def _funnel_labels(fit, factor: str | None, level: str | None, term: str | None) -> tuple[str, str]:
    """The group effect of the level with the fewest rows and its SD, unless named."""
    design = fit.model.design
    if not design.factors:
        raise HierbayesError(f"the model {design.spec.formula} has no grouping factor, so it has no group effects "
                             "to plot")
    factor = factor or next(iter(design.factors))
    term = term or design.factor_coefs(factor)[0]
    check_coefficient(design, factor, term)
    fd = design.factors[factor]
    if level is None:
        level = fd.levels[int(np.argmin(fd.counts))]
    elif level not in fd.levels:
        raise HierbayesError(f"{level!r} is not a level of {factor!r}")
    return FactorNames(factor).effect_label(level, term), FactorNames(factor).sd_label(term)


def plot_trace(fit, parameters: Sequence[str] | None = None, **kwargs) -> Figure:
    """Trace and marginal density of each parameter, chains overlaid (arviz-plots' ``plot_trace_dist``).

    Parameters
    ----------
    fit : Fit
    parameters : list of str, optional
        Printed labels (default: every row of :meth:`~hierbayes.api.Fit.summary`) or group
        effects ``r_<factor>[<level>,<coefficient>]``.
    **kwargs
        Passed to :func:`arviz_plots.plot_trace_dist`.

    Returns
    -------
    matplotlib.figure.Figure
        Two panels per parameter; divergent transitions are marked on the traces.
    """
    import arviz_plots as azp

    labels = list(parameters) if parameters is not None else [p.label for p in fit.parameters]
    collection = azp.plot_trace_dist(_labelled_tree(fit, labels), var_names=labels, backend="matplotlib", **kwargs)
    figure = collection.viz["figure"].item()
    _name_trace_panels(figure, labels)
    return figure


def _name_trace_panels(figure: Figure, labels: Sequence[str]) -> None:
    """One title per row of panels (the parameter's label above its density), in place of arviz-plots'
    rotated y-labels, which run into each other for labels such as ``sd(Intercept|Subject)``."""
    axes = [ax for ax in figure.axes if ax.get_visible()]
    if len(axes) != 2 * len(labels):
        return  # a layout we do not know (other kwargs): leave arviz-plots' labels
    left = sorted((ax for ax in axes if ax.get_position().x0 < 0.5), key=lambda ax: -ax.get_position().y0)
    right = sorted((ax for ax in axes if ax.get_position().x0 >= 0.5), key=lambda ax: -ax.get_position().y0)
    if len(left) != len(labels) or len(right) != len(labels):
        return
    for label, density_ax, trace_ax in zip(labels, left, right):
        density_ax.set_xlabel("")
        trace_ax.set_xlabel("")
        trace_ax.set_ylabel("")
        density_ax.set_title(f"{label}: posterior density", fontsize=9, loc="left")
        trace_ax.set_title(f"{label}: trace", fontsize=9, loc="left")
    right[-1].set_xlabel("draw (one line style per chain)")
    figure.set_layout_engine("constrained")


def plot_pair(fit, parameters: Sequence[str] | None = None, *, factor: str | None = None, level: str | None = None,
              term: str | None = None, log_sd: bool = True, **kwargs) -> Figure:
    """Pair plot of the posterior draws, divergent transitions marked (arviz-plots' ``plot_pair``).

    By default the funnel: the effect of the level of ``factor`` with the fewest rows
    against ``log sd(term|factor)``.

    Parameters
    ----------
    fit : Fit
    parameters : list of str, optional
        Printed labels or group effects ``r_<factor>[<level>,<coefficient>]``.
    factor, level, term : str, optional
        Which group effect the default funnel shows.
    log_sd : bool, default True
        Plot SDs on the log scale (where the sampler works and the funnel shows).
    **kwargs
        Passed to :func:`arviz_plots.plot_pair`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import arviz_plots as azp

    labels = list(parameters) if parameters is not None else list(_funnel_labels(fit, factor, level, term))
    tree = _labelled_tree(fit, labels, log_sd)
    names = list(tree["posterior"].data_vars)
    kwargs.setdefault("visuals", {"divergence": True})
    collection = azp.plot_pair(tree, var_names=names, backend="matplotlib", **kwargs)
    return collection.viz["figure"].item()


def plot_funnel(fit, factor: str | None = None, level: str | None = None, term: str | None = None, *,
                ax: Axes | None = None) -> Axes:
    """A level's group effect against ``log sd``: the funnel, with divergent draws in red.

    Parameters
    ----------
    fit : Fit
    factor, level, term : str, optional
        Default: the first factor, its level with the fewest rows, its first coefficient.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    effect, sd = _funnel_labels(fit, factor, level, term)
    draws = labelled_draws(fit, [effect, sd], log_sd=True)
    x, y = draws[effect].values.ravel(), draws[f"log {sd}"].values.ravel()
    diverging = fit.idata["sample_stats"]["diverging"].transpose("chain", "draw").values.ravel().astype(bool)
    ax = _axes(ax, figsize=(5, 4.5))
    ax.scatter(x[~diverging], y[~diverging], s=6, alpha=0.4, color="C0", label="draws")
    ax.scatter(x[diverging], y[diverging], label=f"divergent ({int(diverging.sum())})", **DIVERGENT)
    ax.set_xlabel(effect)
    ax.set_ylabel(f"log {sd}")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def density(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of ``values`` at ``grid``, with scipy's ``gaussian_kde`` bandwidth (Scott's rule).

    Each value is shared between the two nearest points of a mesh an eighth of the bandwidth
    apart (linear binning), and the kernels are summed over the mesh rather than over every
    value: linear in the number of values (50,000 values take milliseconds, not a second),
    within 0.1% of the exact density's peak.
    """
    values = np.asarray(values, dtype=float)
    bandwidth = values.std(ddof=1) * values.size ** (-1 / 5)
    if not bandwidth > 0:
        return stats.gaussian_kde(values)(grid)  # scipy's own message for data without spread
    step = bandwidth / 8
    low = grid.min() - 6 * bandwidth
    mesh = low + step * np.arange(int(np.ceil((grid.max() + 6 * bandwidth - low) / step)) + 2)
    position = (values - low) / step
    inside = (position >= 0) & (position < mesh.size - 1)  # the others are over 6 bandwidths from the grid
    below = np.floor(position[inside]).astype(np.int64)
    share = position[inside] - below
    weights = (np.bincount(below, 1 - share, minlength=mesh.size)
               + np.bincount(below + 1, share, minlength=mesh.size))
    used = weights > 0
    kernel = stats.norm.pdf((grid[:, None] - mesh[None, used]) / bandwidth)
    return kernel @ weights[used] / (values.size * bandwidth)


def plot_ppc(fit, *, n_draws: int = 50, seed: int | None = 0, ax: Axes | None = None,
             max_draws: int = SAMPLE_DRAWS, max_rows: int = SAMPLE_ROWS) -> Axes:
    """Posterior predictive check: replicated data sets against the observed response.

    Counts and binary responses show, for every value, the observed frequency (bars)
    and the median and 90% interval of its frequency over the replicated data sets;
    continuous responses show the density of ``n_draws`` replicated data sets (thin
    lines) and of the observed data (thick line).

    The replicated data are those of at most ``max_draws`` posterior draws (``n_draws`` for a
    continuous response) for at most ``max_rows`` rows, chosen at random (:func:`hierbayes.posterior.checking.predictive_sample`),
    so that the plot takes a few MB at any data size; the observed data are those rows too, and
    the title says what was subsampled. Replicated data in ``fit.idata`` (from
    :meth:`~hierbayes.api.Fit.posterior_predictive`) are used when there; nothing is stored.

    Parameters
    ----------
    fit : Fit
    n_draws : int, default 50
        Replicated data sets drawn (continuous responses).
    seed : int, optional
        For the choice of draws and rows and for the replicated data.
    ax : matplotlib Axes, optional
    max_draws, max_rows : int
        The bounds of the subsample (default 100 draws and 50,000 rows).

    Returns
    -------
    matplotlib.axes.Axes
    """
    counts_like = bool(np.all(np.mod(fit.model.design.y, 1) == 0))
    sample = predictive_sample(fit, max_draws if counts_like else min(max_draws, n_draws), max_rows, seed)
    whole = counts_like and np.all(np.mod(sample.replicated[: min(len(sample.replicated), 20)], 1) == 0)
    if not whole and len(sample.replicated) > n_draws:  # whole observed values, but a continuous family
        keep = np.sort(np.random.default_rng(seed).choice(len(sample.replicated), size=n_draws, replace=False))
        sample = dataclasses.replace(sample, replicated=sample.replicated[keep])
    y, replicated = sample.observed, sample.replicated
    ax = _axes(ax)
    name = fit.model.spec.response.expr
    if whole:
        freq = count_frequencies(y, replicated)
        # one bar per value, at the value; or one per bin of values, labelled with its values
        at = freq.edges[:-1] if freq.one_per_value else np.arange(len(freq.observed))
        lo, mid, hi = np.quantile(freq.replicated, [0.05, 0.5, 0.95], axis=0)
        ax.bar(at, freq.observed, color="0.8", edgecolor="0.5", label="observed")
        ax.errorbar(at, mid, yerr=[mid - lo, hi - mid], fmt="o", color="C0", ms=4, capsize=2,
                    label="replicated: median and 90% interval")
        if not freq.one_per_value:  # a bin's values under every few bars, so the labels do not overlap
            every = -(-len(at) // 12)
            ax.set_xticks(at[::every], freq.labels[::every], rotation=45, ha="right", fontsize="small")
        top = freq.labels[-1].split("-")[-1]
        label, last = (name, f"at {top}") if freq.one_per_value else (f"{name}, in bins of values", "in the last bar")
        ax.set_xlabel(f"{label} (replicated values above {top} counted {last})" if freq.clipped else label)
        ax.set_ylabel("rows")
    else:
        grid = np.linspace(min(y.min(), np.quantile(replicated, 0.005)), max(y.max(), np.quantile(replicated, 0.995)), 200)
        for k, row in enumerate(replicated):
            ax.plot(grid, density(row, grid), color="C0", alpha=0.25, lw=0.8,
                    label="replicated data" if k == 0 else None)
        ax.plot(grid, density(y, grid), color="k", lw=2, label="observed")
        ax.set_xlabel(name)
        ax.set_ylabel("density")
    if sample.note:  # under the title, in small print: what the plot is made of
        ax.annotate(sample.note[0].upper() + sample.note[1:], xy=(0.5, 1), xycoords="axes fraction", xytext=(0, 4),
                    textcoords="offset points", ha="center", va="bottom", fontsize=8, color="0.35")
    ax.set_title("Posterior predictive check", pad=18 if sample.note else 6)
    ax.legend(fontsize=8)
    return ax
