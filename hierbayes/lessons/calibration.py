"""Simulation-based calibration (Talts et al. 2018): is the model we compile the model we meant?

For a formula, a data set (its predictors and grouping; the response is replaced) and a
family, :func:`calibrate` repeats ``n_sims`` times:

1. draw every parameter from the priors in force (:attr:`Model.priors`, by printed label);
2. simulate a response through the same design, with an independent NumPy path
   (:mod:`hierbayes.lessons.simulation`): group effects ``u = z @ L.T`` with
   ``L = diag(sd) @ chol(corr)``, :func:`~hierbayes.specification.linear_predictor.linear_predictor`
   of each formula (the mean's and any family parameter's), the inverse link and ``family.random``;
3. refit the model of the same structure (the compiled model is reused, so a refit costs
   about a second) with the priors held fixed, parameterized as users get it (``"auto"``
   chooses again on each simulated data set);
4. record the rank of each true value among thinned posterior draws.

If the model the package writes is the model of step 2, every rank is uniform on
``0, ..., L``. A wrong scale, a dropped hyperparameter or a lost correlation piles the
ranks up at one end or in the middle. :meth:`Calibration.table` tests uniformity per
parameter with a chi-square test on binned ranks and with arviz-stats' POT-C test on
randomised fractional ranks; :func:`plot_ranks` draws the rank ECDFs with their bands.

Why not ``simuk``: simuk 0.3 conditions a PyMC model with ``pm.observe`` and calls
``pm.sample`` for every simulation, so each refit would compile the model again (10-18 s
with nutpie), and it ranks PyMC's internal free variables (``z_g``, ``corr_chol_0``)
instead of the printed parameters and the correlations. This loop reuses the compiled
model and ranks what users read.

Simulated data sets that the model refuses (a constant response, such as all zeros from a
bernoulli model with an extreme intercept) are discarded together with their parameter
draw. The rejection depends on the data only, so the posterior of every kept data set is
unchanged and the ranks stay uniform. A refit whose sampler cannot start
(:class:`~hierbayes.common.errors.InitialPointError`: the log density is not finite at the initial
point, which extreme simulated data under priors held fixed can cause) is counted in
:attr:`Calibration.unstarted` and skipped the same way; unlike a rejection it also depends on the
sampler's start, so a case with many is reported, not silently passed.

The group effects of each factor's first level are ranked too (``r_g[g0,Intercept]``), so a
gaussian model fitted with its group effects integrated out (``collapse``) is checked on the
effects it draws back after sampling as well.

Examples
--------
One simulation step by hand (``calibrate`` repeats it and refits; ``tests/test_calibration.py``
runs it on every kind of group term, ``validation/run_sbc.py`` on every structure and family):

>>> import numpy as np
>>> import hierbayes as hb
>>> m = hb.Model("y ~ x + (x | g)", calibration_data(groups=6, per_group=4, seed=1))
>>> rng = np.random.default_rng(1)
>>> theta = {label: v[0] for label, v in draw_prior(m.priors, m.design, 1, rng).items()}
>>> truth, y = simulate_truth(m.design, m.family, m.priors, theta, rng)
>>> y.shape, dict(truth["r_g"].sizes)
((24,), {'chain': 1, 'draw': 1, 'g': 6, 'g__coef': 2})
>>> [p.label for p in tracked_parameters(m.design, m.family)][3:]
['sd(x|g)', 'cor(Intercept,x|g)', 'sigma', 'r_g[g0,Intercept]', 'r_g[g0,x]']

A full run takes about a second per simulation once the structure is compiled, so it is
not run here::

    cal = hb.calibrate("y ~ x + (x | g)", m.data, n_sims=100, seed=1)
    cal.table()
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from hierbayes.common.errors import DataError, DataWarning, HierbayesError, InitialPointError
from hierbayes.lessons.simulation import draw_prior, ordered_labels, simulate_truth, tracked_parameters, with_response
from hierbayes.model.definition import ModelDefinition
from hierbayes.posterior.diagnostics import RHAT_MAX
from hierbayes.posterior.fitting import fit_model, largest_rhat
from hierbayes.posterior.summaries import parameter_draws
from hierbayes.specification.columns import used_columns
from hierbayes.specification.formula import Formula, parse
from hierbayes.specification.priors import Prior

__all__ = ["Calibration", "calibrate", "calibration_data", "plot_ranks", "draw_prior", "simulate_truth",
           "tracked_parameters"]

MIN_REJECTIONS = 10  # give up when more data sets were rejected than this and than twice those kept


def _check_response_columns(spec, data: pd.DataFrame) -> None:
    response = spec.response  # a multinomial's response is its count columns; the others' one column (and failures)
    for column in response.counts or (response.expr, response.failures):
        if column is not None and column not in data.columns:
            raise HierbayesError(f"calibrate simulates the response column itself; the response {column!r} "
                                 "is an expression, not a column of the data: compute it as a column first")


# --- the result -------------------------------------------------------------------------------

@dataclass
class Calibration:
    """Ranks of the true parameter values among posterior draws, one row per simulation.

    Attributes
    ----------
    formula, family : str
    ranks : pandas.DataFrame
        ``(n_sims, K)`` integer ranks in ``0 .. n_draws``, columns the printed labels.
    n_draws : int
        Thinned posterior draws each rank is counted among (``L``).
    divergences : ndarray (n_sims,)
        Divergent transitions of each refit.
    rejected : int
        Simulated data sets the model refused (see the module notes).
    unstarted : int
        Refits whose sampler could not start (:class:`~hierbayes.common.errors.InitialPointError`), skipped.
    rhat : ndarray (n_sims,) or None
        Each refit's largest R-hat (rank-normalized split R-hat) over its summary's parameters
        (:func:`~hierbayes.posterior.fitting.largest_rhat`): above
        :data:`~hierbayes.posterior.diagnostics.RHAT_MAX`, its chains disagreed and its ranks come from
        draws that do not yet describe the posterior (:meth:`converged`). None for records made without it.
    seconds : float
        Wall time of the whole run.
    seed : int or None
    settings : dict
        Sampler settings, link, parameterization and whether the model was collapsed.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ranks = pd.DataFrame({"a": rng.integers(0, 101, 200), "b": rng.integers(80, 101, 200)})
    >>> cal = Calibration("y ~ 1 + (1 | g)", "gaussian", ranks, n_draws=100, divergences=np.zeros(200))
    >>> cal.failed()
    ['b']
    """

    formula: str
    family: str
    ranks: pd.DataFrame
    n_draws: int
    divergences: np.ndarray
    rejected: int = 0
    seconds: float = 0.0
    unstarted: int = 0
    seed: int | None = None
    settings: dict = field(default_factory=dict)
    rhat: np.ndarray | None = None

    @property
    def n_sims(self) -> int:
        return int(self.ranks.shape[0])

    def fractional_ranks(self) -> pd.DataFrame:
        """Ranks spread uniformly within their cell: ``(rank + U) / (L + 1)``, exactly
        Uniform(0, 1) when the model is calibrated (seeded, so repeatable)."""
        rng = np.random.default_rng(0 if self.seed is None else self.seed)
        u = rng.uniform(size=self.ranks.shape)
        return (self.ranks + u) / (self.n_draws + 1)

    def table(self, bins: int | None = None, alpha: float = 0.01) -> pd.DataFrame:
        """Uniformity tests per parameter.

        Parameters
        ----------
        bins : int, optional
            Bins of the chi-square test; by default about ``n_sims / 5`` (at least 2, at
            most 20) so each bin expects five or more simulations.
        alpha : float
            Family-wise level: a parameter fails when either p-value is below
            ``alpha / (2 K)`` (Bonferroni over both tests and the ``K`` parameters).

        Returns
        -------
        pandas.DataFrame
            Index ``parameter``; columns ``n_sims``, ``chi2``, ``p_chi2`` (chi-square on
            binned fractional ranks), ``p_pot_c`` (arviz-stats' pointwise order test with
            Cauchy combination, Tesso et al. 2026), ``mean_rank`` (0.5 when calibrated),
            ``ok``.
        """
        from arviz_stats.base import array_stats

        bins = bins or int(np.clip(self.n_sims // 5, 2, 20))
        pit = self.fractional_ranks()
        counts = np.stack([np.histogram(pit[c], bins=bins, range=(0, 1))[0] for c in pit.columns])
        chi2, p_chi2 = stats.chisquare(counts, axis=1)
        p_pot = np.atleast_1d(array_stats.uniformity_test(pit.to_numpy().T, axis=-1, method="pot_c")[0])
        threshold = alpha / (2 * pit.shape[1])
        table = pd.DataFrame({
            "n_sims": self.n_sims, "chi2": chi2, "p_chi2": p_chi2, "p_pot_c": p_pot,
            "mean_rank": (self.ranks / self.n_draws).mean().to_numpy(),
        }, index=pd.Index(list(pit.columns), name="parameter"))
        table["ok"] = (table["p_chi2"] >= threshold) & (table["p_pot_c"] >= threshold)
        return table

    def failed(self, alpha: float = 0.01) -> list[str]:
        """Parameters whose ranks are not uniform at family-wise level ``alpha``."""
        table = self.table(alpha=alpha)
        return list(table.index[~table["ok"]])

    def passed(self, alpha: float = 0.01) -> bool:
        """True when every parameter's ranks pass the uniformity tests."""
        return not self.failed(alpha)

    def unconverged(self, threshold: float = RHAT_MAX) -> np.ndarray:
        """Which refits' chains disagreed: largest R-hat above ``threshold`` (a boolean per simulation)."""
        if self.rhat is None:
            raise HierbayesError("this calibration has no R-hat record (made before calibrate kept one): run it again")
        return ~(np.asarray(self.rhat) <= threshold)  # a NaN R-hat (a constant draw) counts as not converged

    def converged(self, threshold: float = RHAT_MAX) -> Calibration:
        """The simulations whose refit converged (largest R-hat at most ``threshold``), as a calibration.

        A diagnosis, not a verdict: it tells whether non-uniform ranks come from refits whose chains
        disagreed (every diagnostic then flags the fit) or from fits that look converged. Keeping only
        converged refits is unbiased only when convergence does not depend on the true values, so the
        full calibration stays the one that passes or fails.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> ranks = pd.DataFrame({"a": np.r_[rng.integers(0, 101, 190), np.zeros(10, int)]})
        >>> rhat = np.r_[np.full(190, 1.002), np.full(10, 1.8)]  # ten stuck refits, their ranks all 0
        >>> cal = Calibration("y ~ 1 + (1 | g)", "gaussian", ranks, 100, np.zeros(200), rhat=rhat)
        >>> cal.failed(), cal.converged().failed(), cal.converged().n_sims
        (['a'], [], 190)
        """
        keep = ~self.unconverged(threshold)
        return replace(self, ranks=self.ranks[keep].reset_index(drop=True), divergences=self.divergences[keep],
                       rhat=np.asarray(self.rhat)[keep])

    def to_datatree(self) -> xr.DataTree:
        """The ranks as a ``prior_sbc`` group (``chain`` 1, ``draw`` = simulation), as simuk
        stores them, for :func:`arviz_plots.plot_ecdf_pit`."""
        ds = xr.Dataset({c: (("chain", "draw"), self.ranks[c].to_numpy()[None, :]) for c in self.ranks.columns})
        return xr.DataTree.from_dict({"prior_sbc": ds})

    def __repr__(self) -> str:
        table = self.table()
        verdict = "all parameters calibrated" if table["ok"].all() else f"NOT calibrated: {list(table.index[~table['ok']])}"
        chains = "" if self.rhat is None else f"; chains disagreed (R-hat > {RHAT_MAX}) in {int(self.unconverged().sum())}"
        return (f"Calibration of {self.formula} ({self.family}): {self.n_sims} simulations, ranks among "
                f"{self.n_draws} draws{chains}; {verdict}\n{table.round(3).to_string()}")


# --- the loop ---------------------------------------------------------------------------------

def calibrate(formula: str | Formula, data: pd.DataFrame, family: str = "gaussian", *, link: str | None = None,
              priors: Mapping[str, Prior] | None = None, parameterization: str | Mapping[str, str] = "auto",
              collapse: bool | None = None, n_sims: int = 100, draws: int = 400, tune: int = 400, chains: int = 2,
              thin: int = 4, seed: int | None = None, sampler: str = "auto", progress: bool = False) -> Calibration:
    """Simulation-based calibration of one model structure.

    Parameters
    ----------
    formula : str or Formula
        As for :class:`~hierbayes.Model`: a :class:`~hierbayes.Formula` with formulas for family
        parameters (``sigma="~ x + (1 | g)"``) is calibrated with those formulas' parameters too.
    data : pandas.DataFrame
        Predictors and grouping factors of the design (see :func:`calibration_data`). The
        response column(s) are replaced by simulations; their given values only scale the
        default priors, which are then held fixed.
    family, link, priors, parameterization, collapse
        As for :class:`~hierbayes.Model`, with its defaults (``parameterization="auto"``, the
        choice users get; ``collapse=None`` leaves the model's default), so the path users fit
        is the path calibrated. Each refit chooses again on its simulated data, as a refit does.
    n_sims : int
        Simulated data sets (refits).
    draws, tune, chains : int
        Per refit.
    thin : int
        Keep every ``thin``-th draw of each chain; ranks are among the
        ``chains * ceil(draws / thin)`` kept draws. Thin to about the effective sample size:
        autocorrelated draws make rank histograms U-shaped even for a correct model.
    seed : int, optional
        Makes the whole run repeatable.
    sampler : {"auto", "nutpie", "pymc"}
    progress : bool
        Print one line per simulation.

    Returns
    -------
    Calibration

    Raises
    ------
    HierbayesError
        When the response is an expression rather than a column, or simulation after
        simulation gives data the model refuses.
    """
    if int(n_sims) != n_sims or n_sims < 1:
        raise HierbayesError(f"n_sims must be a positive whole number, not {n_sims!r}")
    if int(thin) != thin or thin < 1:
        raise HierbayesError(f"thin must be a positive whole number, not {thin!r}")
    t0 = time.perf_counter()
    spec = parse(formula)
    _check_response_columns(spec, data)
    data = data.dropna(subset=used_columns(spec, data.columns)).reset_index(drop=True)
    options = {"parameterization": parameterization, **({} if collapse is None else {"collapse": collapse})}
    base = ModelDefinition(formula, data, family, link=link, priors=priors, **options)
    design, fam, fixed_priors = base.design, base.family, base.priors
    tracked = tracked_parameters(design, fam)
    rng = np.random.default_rng(seed)

    ranks, divergences, rhats, rejected, unstarted, n_draws = [], [], [], 0, 0, None
    pool: dict[str, np.ndarray] = {}
    used = 0
    while len(ranks) < n_sims:
        if used == len(next(iter(pool.values()), ())):
            pool, used = draw_prior(fixed_priors, design, max(n_sims, 16), rng, ordered=ordered_labels(design, fam)), 0
        theta = {label: v[used] for label, v in pool.items()}
        used += 1
        truth, y = simulate_truth(design, fam, fixed_priors, theta, rng)
        try:
            with warnings.catch_warnings():  # the base model has already said it once
                warnings.simplefilter("ignore", DataWarning)
                model = ModelDefinition(formula, with_response(data, design, y, fam), fam, priors=fixed_priors, **options)
        except DataError:
            rejected += 1
            _check_skipped(rejected, len(ranks), "simulated data sets were refused by the model (for example a "
                           "constant response)")
            continue
        try:
            fit = fit_model(model, draws=draws, tune=tune, chains=chains, seed=int(rng.integers(2**31)),
                            sampler=sampler, progressbar=False, log_likelihood=False, warn=False)
        except InitialPointError:
            unstarted += 1
            _check_skipped(unstarted, len(ranks), "refits could not start (log density not finite at the "
                           "initial point)")
            continue
        rhats.append(largest_rhat(fit))
        post = fit.posterior.isel(draw=slice(None, None, thin))
        sample = parameter_draws(post, tracked)
        sample = sample.reshape(-1, sample.shape[-1])
        true = parameter_draws(truth, tracked)[0, 0]
        ranks.append((sample < true).sum(axis=0))
        n_draws = sample.shape[0]
        stats_ = fit.idata["sample_stats"].to_dataset()
        divergences.append(int(stats_["diverging"].sum()) if "diverging" in stats_ else 0)
        if progress:
            print(f"simulation {len(ranks)}/{n_sims}: {time.perf_counter() - t0:.1f} s", flush=True)
    return Calibration(
        formula=str(formula), family=fam.name, ranks=pd.DataFrame(np.array(ranks), columns=[p.label for p in tracked]),
        n_draws=int(n_draws), divergences=np.array(divergences), rejected=rejected, unstarted=unstarted,
        seconds=time.perf_counter() - t0, seed=seed, rhat=np.array(rhats),
        settings={"draws": draws, "tune": tune, "chains": chains, "thin": thin, "sampler": sampler,
                  "link": fam.link, "parameterization": parameterization,
                  "collapsed": bool(getattr(base, "collapsed", False))},
    )


def _check_skipped(skipped: int, kept: int, what: str) -> None:
    """Give up when more simulations were skipped than :data:`MIN_REJECTIONS` and than twice those kept."""
    if skipped > max(MIN_REJECTIONS, 2 * kept):
        raise HierbayesError(f"{skipped} {what} against {kept} kept; the priors put too much mass where the data "
                             "say nothing: narrow them or change the design")


# --- data of a given shape ----------------------------------------------------------------------

CHOICES = ("red", "green", "blue")
"""The categories of :func:`calibration_data`'s nominal response ``choice``, the first the reference."""


def calibration_data(groups: int = 8, per_group: int = 6, *, crossed: int | None = None,
                     nested: int | None = None, trials: int = 10, seed: int = 0) -> pd.DataFrame:
    """A small balanced data set to calibrate structures on.

    Parameters
    ----------
    groups : int
        Levels of ``g`` (``g0``, ``g1``, ...), each with ``per_group`` rows.
    per_group : int
    crossed : int, optional
        Levels of a factor ``h`` crossed with ``g`` (assigned in rotation, so every ``g``
        level meets several ``h`` levels).
    nested : int, optional
        Levels of ``c`` within each level of ``g`` (``(1 | g/c)``; ``c`` names repeat
        across groups, as in real nested data).
    trials : int
        Binomial trials per row.
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``g``, ``x`` (standard normal), ``z`` (uniform on -1..1), optional ``h``
        and ``c``, and responses for every family: ``y`` (real), ``count``, ``binary``,
        ``successes``/``failures`` (out of ``trials``), ``positive`` (above 0), ``proportion``
        (between 0 and 1), ``rating`` (ordered categories 1 to 5), ``angle`` (radians in
        -pi..pi, ``y`` wrapped), ``choice`` (unordered categories ``red``, ``green``, ``blue``)
        and ``votes_a``/``votes_b``/``votes_c`` (counts of three categories out of ``trials``).

    Examples
    --------
    >>> list(calibration_data(groups=3, per_group=2, crossed=2).columns)  # doctest: +NORMALIZE_WHITESPACE
    ['g', 'x', 'z', 'h', 'y', 'count', 'binary', 'successes', 'failures', 'positive', 'proportion', 'rating', 'angle',
     'choice', 'votes_a', 'votes_b', 'votes_c']
    """
    rng = np.random.default_rng(seed)
    n = groups * per_group
    g = np.repeat(np.arange(groups), per_group)
    data = {"g": [f"g{i}" for i in g], "x": rng.standard_normal(n), "z": rng.uniform(-1, 1, n)}
    if crossed is not None:
        data["h"] = [f"h{(i + j) % crossed}" for i, j in zip(g, np.tile(np.arange(per_group), groups))]
    if nested is not None:
        data["c"] = [f"c{j % nested}" for j in np.tile(np.arange(per_group), groups)]
    eta = rng.normal(0, 0.5, groups)[g]
    data["y"] = eta + data["x"] + rng.standard_normal(n)
    data["count"] = rng.poisson(np.exp(1 + eta))
    data["binary"] = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    data["successes"] = rng.binomial(trials, 1 / (1 + np.exp(-eta)))
    data["failures"] = trials - data["successes"]
    # responses of the other families' supports (their values set the default priors' scale only)
    data["positive"] = np.exp(0.5 + eta + 0.5 * rng.standard_normal(n))
    data["proportion"] = 1 / (1 + np.exp(-(eta + 0.5 * rng.standard_normal(n))))
    data["rating"] = pd.Categorical(1 + np.searchsorted([-1.0, -0.3, 0.3, 1.0], eta + rng.logistic(size=n) / 2),
                                    categories=[1, 2, 3, 4, 5], ordered=True)
    data["angle"] = np.angle(np.exp(1j * data["y"]))  # no draw of its own: the other columns stay as they were
    # the nominal families' responses, also without draws of their own: a category by y's value, and
    # the trials split into three counts
    data["choice"] = pd.Categorical.from_codes(np.digitize(data["y"], [-0.5, 0.5]), categories=list(CHOICES))
    data["votes_a"] = data["successes"]
    data["votes_b"] = data["failures"] // 2
    data["votes_c"] = data["failures"] - data["votes_b"]
    return pd.DataFrame(data)


# --- the plot -----------------------------------------------------------------------------------

def plot_ranks(calibration: Calibration, kind: str = "ecdf", parameters: Sequence[str] | None = None, **kwargs):
    """Rank ECDFs (with arviz-plots' uniformity test) or rank histograms per parameter.

    Parameters
    ----------
    calibration : Calibration
    kind : {"ecdf", "hist"}
        ``"ecdf"``: :func:`arviz_plots.plot_ecdf_pit` of the ranks (the difference from the
        uniform CDF, with the points that make the POT-C test fail highlighted).
        ``"hist"``: matplotlib histograms with the 99% band of a uniform bin count.
    parameters : list of str, optional
        Labels to plot; all by default.
    **kwargs
        Passed to :func:`arviz_plots.plot_ecdf_pit` (``"ecdf"``) or ``plt.subplots`` (``"hist"``).

    Returns
    -------
    arviz_plots.PlotCollection or matplotlib.figure.Figure

    Examples
    --------
    >>> ranks = pd.DataFrame({"sd(Intercept|g)": np.random.default_rng(0).integers(0, 101, 50)})
    >>> cal = Calibration("y ~ 1 + (1 | g)", "gaussian", ranks, n_draws=100, divergences=np.zeros(50))
    >>> fig = plot_ranks(cal, kind="hist")
    >>> [ax.get_title() for ax in fig.axes]
    ['sd(Intercept|g)']
    """
    labels = list(parameters) if parameters is not None else list(calibration.ranks.columns)
    unknown = [p for p in labels if p not in calibration.ranks.columns]
    if unknown:
        raise HierbayesError(f"no ranks for {unknown[0]!r}; the parameters are {list(calibration.ranks.columns)}")
    if kind == "ecdf":
        from arviz_plots import plot_ecdf_pit

        sub = replace(calibration, ranks=calibration.ranks[labels])
        return plot_ecdf_pit(sub.to_datatree(), group="prior_sbc", **kwargs)
    if kind != "hist":
        raise HierbayesError(f"kind must be 'ecdf' or 'hist', not {kind!r}")
    import matplotlib.pyplot as plt

    bins = int(np.clip(calibration.n_sims // 5, 2, 20))
    ncols = min(4, len(labels))
    nrows = -(-len(labels) // ncols)
    kwargs.setdefault("figsize", (3 * ncols, 2.4 * nrows))
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, **kwargs)
    lo, hi = stats.binom.ppf([0.005, 0.995], calibration.n_sims, 1 / bins)
    for ax, label in zip(axes.ravel(), labels):
        ax.axhspan(lo, hi, color="0.85")
        ax.hist(calibration.ranks[label], bins=bins, range=(0, calibration.n_draws + 1), color="C0")
        ax.set_title(label, fontsize=9)
    for ax in axes.ravel()[len(labels):]:
        ax.set_visible(False)
    fig.suptitle(f"{calibration.formula} ({calibration.family}): ranks of {calibration.n_sims} simulations")
    fig.tight_layout()
    return fig
