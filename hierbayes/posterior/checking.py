"""Model checking and comparison: predictive draws, PSIS-LOO, Bayesian R-squared.

- :func:`posterior_predictive` draws replicated data for the fitting rows, one per
  posterior draw, and stores them in the fit's DataTree as ArviZ expects
  (``posterior_predictive`` group, next to ``observed_data`` and ``log_likelihood``), so
  ArviZ's PPC plots and LOO-PIT work on ``fit.idata`` directly. It is draws x rows numbers:
  :func:`predictive_sample` is the bounded version a plot needs (a random subsample of
  draws and rows, a few MB at any data size).
- :func:`prior_predictive` samples the priors and data from them, to check what the
  priors (the defaults included) say before seeing the data.
- :func:`loo` is PSIS-LOO from arviz-stats, with its Pareto-k diagnostic explained in
  plain words (:func:`hierbayes.posterior.comparison.compare` ranks several fits of the same
  data by it).
- :func:`bayes_r2` is the model-based R-squared of Gelman, Goodrich, Gabry and Vehtari
  (2019): per draw, the variance of the expected values over the rows divided by itself
  plus the mean modelled residual variance.

Examples
--------
>>> import hierbayes as hb
>>> model = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy"))
>>> fit = model.fit(draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> fit.posterior_predictive(seed=1).dims
('chain', 'draw', 'obs')
>>> "posterior_predictive" in fit.idata.children
True
>>> bool(0.6 < fit.r2().loc["R2", "mean"] < 0.9)
True
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from hierbayes.common.errors import DataWarning, HierbayesError
from hierbayes.model.data import response_name
from hierbayes.posterior.predict import CATEGORY_DIM, OBS_DIM, new_rows, observed_data, predict, predict_rows
from hierbayes.posterior.summaries import draw_stats
from hierbayes.specification.columns import used_columns

__all__ = ["posterior_predictive", "predictive_sample", "PredictiveSample", "prior_predictive", "loo",
           "pareto_k_message", "loo_with_message", "bayes_r2", "SAMPLE_DRAWS", "SAMPLE_ROWS", "count_frequencies",
           "CountFrequencies", "MAX_COUNT_BARS"]

SAMPLE_DRAWS, SAMPLE_ROWS = 100, 50_000  # predictive_sample's bounds: 5 million numbers (40 MB) at most
MAX_COUNT_BARS = 40  # count_frequencies: one bar per value up to this many values, then widening bins


# --- predictive draws -----------------------------------------------------------------------

def _obs_dataset(name: str, values: np.ndarray, coords: dict) -> xr.Dataset:
    """Draws of the response: dims (chain, draw, obs), and a multinomial's category."""
    return xr.Dataset({name: (("chain", "draw", OBS_DIM, CATEGORY_DIM)[:values.ndim], values)}, coords=coords)


def posterior_predictive(fit, seed: int | np.random.Generator | None = None) -> xr.DataArray:
    """Replicated data for the fitting rows, one per posterior draw, stored in ``fit.idata``.

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, obs)``, named as the response (the same name as in
        ``observed_data`` and ``log_likelihood``).
    """
    draws = predict(fit, None, kind="response", groups="known", seed=seed)
    coords = {name: draws[name].values for name in draws.dims if name != OBS_DIM}
    fit.idata["posterior_predictive"] = xr.DataTree(_obs_dataset(draws.name, draws.values, coords))
    return fit.idata["posterior_predictive"][draws.name]


@dataclass(frozen=True)
class PredictiveSample:
    """Replicated data for a random subsample of a fit's draws and rows, and those rows' observed response.

    Attributes
    ----------
    replicated : ndarray (draws, rows)
        One replicated data set per chosen draw, for the chosen rows.
    observed : ndarray (rows,)
    total_draws, total_rows : int
        The fit's draws (all chains) and rows, of which these were chosen.
    """

    replicated: np.ndarray
    observed: np.ndarray
    total_draws: int
    total_rows: int

    @property
    def note(self) -> str | None:
        """What was subsampled, in words (``"100 of 2,000 draws and 50,000 of 2,000,000 rows, chosen at
        random"``); None when every draw and row is there."""
        parts = [f"{n:,} of {total:,} {what}" for n, total, what in
                 [(self.replicated.shape[0], self.total_draws, "draws"), (self.replicated.shape[1], self.total_rows, "rows")]
                 if n < total]
        return f"{' and '.join(parts)}, chosen at random" if parts else None


def predictive_sample(fit, max_draws: int = SAMPLE_DRAWS, max_rows: int = SAMPLE_ROWS,
                      seed: int | np.random.Generator | None = None) -> PredictiveSample:
    """Replicated data for at most ``max_draws`` posterior draws and ``max_rows`` fitting rows, chosen at random.

    What a posterior predictive plot needs, in memory bounded whatever the data size: only
    the chosen draws are predicted, for the chosen rows (in their data order). Replicated data
    already in ``fit.idata`` (from :func:`posterior_predictive`) are subsampled instead;
    nothing is stored in the fit.

    Parameters
    ----------
    fit : Fit
    max_draws, max_rows : int
    seed : int or numpy Generator, optional
        For the choice of draws and rows and for the replicated data.

    Examples
    --------
    >>> import hierbayes as hb
    >>> fit = hb.Model("Reaction ~ Days + (1 | Subject)", hb.datasets.load("sleepstudy")).fit(
    ...     draws=100, tune=100, chains=2, seed=1, progressbar=False, warn=False)
    >>> sample = predictive_sample(fit, max_draws=50, max_rows=100, seed=1)
    >>> sample.replicated.shape, sample.note
    ((50, 100), '50 of 200 draws and 100 of 180 rows, chosen at random')
    """
    rng = np.random.default_rng(seed)
    post, design = fit.posterior, fit.model.design
    chains, draws = post.sizes["chain"], post.sizes["draw"]
    total = chains * draws
    chosen = np.sort(rng.choice(total, size=min(int(max_draws), total), replace=False))
    rows = np.sort(rng.choice(design.n_obs, size=min(int(max_rows), design.n_obs), replace=False))
    name = response_name(design)
    if "posterior_predictive" in fit.idata.children and name in fit.idata["posterior_predictive"].data_vars:
        stored = fit.idata["posterior_predictive"][name].transpose("chain", "draw", OBS_DIM, ...).values
        replicated = stored.reshape(total, design.n_obs, -1)[chosen][:, rows]
    else:
        picked = post.isel(chain=xr.DataArray(chosen // draws, dims="sample"),
                           draw=xr.DataArray(chosen % draws, dims="sample"))
        picked = picked.drop_vars(["chain", "draw"], errors="ignore").rename(sample="draw").expand_dims(chain=1)
        replicated = predict_rows(fit.model, picked, new_rows(fit.model, None).take(rows), "response", "known",
                                  rng=rng).values[0]
    # a multinomial's counts: one value per row and category
    return PredictiveSample(replicated.reshape(len(chosen), -1), design.y[rows].ravel(), total, design.n_obs)


@dataclass(frozen=True)
class CountFrequencies:
    """How many rows take each count, observed and in each replicated data set (:func:`count_frequencies`).

    Attributes
    ----------
    edges : ndarray (B + 1,)
        Whole-number bin edges: bin ``b`` holds the values ``edges[b]`` to ``edges[b + 1] - 1``.
    observed : ndarray (B,)
    replicated : ndarray (S, B)
        Per replicated data set; its values above ``edges[-1] - 1`` are counted in the last bin.
    clipped : bool
        Whether some replicated value was above ``edges[-1] - 1``.
    """

    edges: np.ndarray
    observed: np.ndarray
    replicated: np.ndarray
    clipped: bool

    @property
    def one_per_value(self) -> bool:
        """True when every bin holds one value."""
        return bool(np.all(np.diff(self.edges) == 1))

    @property
    def labels(self) -> list[str]:
        """Each bin's values in words: ``"7"``, ``"8-15"``, ``"1.0M-2.1M"``."""
        ends = zip(self.edges[:-1], self.edges[1:] - 1)
        return [_short(a) if a == b else f"{_short(a)}-{_short(b)}" for a, b in ends]


def _short(value: int) -> str:
    return str(value) if value < 10_000 else f"{value / 1e3:.0f}k" if value < 1_000_000 else f"{value / 1e6:.1f}M"


def count_frequencies(y: np.ndarray, replicated: np.ndarray, max_bars: int = MAX_COUNT_BARS) -> CountFrequencies:
    """Frequencies of the counts in ``y`` and in each replicated data set, one bin per value when they are few.

    The values run from 0 to the largest observed count or the 99.5% quantile of the replicated ones,
    whichever is larger. Up to ``max_bars`` values, one bin each; beyond, at most ``max_bars`` bins whose
    widths grow geometrically (0, 1, 2-3, 4-7, ...), so a response with counts in the millions takes 40
    numbers per data set, not millions.

    Parameters
    ----------
    y : ndarray (N,)
        Observed counts.
    replicated : ndarray (S, N)
    max_bars : int

    Examples
    --------
    >>> freq = count_frequencies(np.array([0, 1, 1, 3]), np.array([[0, 1, 2, 2], [1, 1, 1, 3]]))
    >>> freq.edges.tolist(), freq.observed.tolist(), freq.replicated.tolist(), freq.clipped
    ([0, 1, 2, 3, 4], [1, 2, 0, 1], [[1, 1, 2, 0], [0, 3, 0, 1]], False)
    >>> wide = count_frequencies(np.array([0, 5, 2_000_000]), np.zeros((1, 3)), max_bars=8)
    >>> wide.labels, wide.observed.tolist()
    (['0-4', '5-36', '37-229', '230-1412', '1413-8670', '8671-53k', '53k-326k', '326k-2.0M'], [1, 1, 0, 0, 0, 0, 0, 1])
    """
    y = np.asarray(y, dtype=np.int64)
    top = int(max(y.max(), np.quantile(replicated, 0.995)))
    if top + 1 <= max_bars:
        edges = np.arange(top + 2)
    else:
        edges = np.unique(np.round(np.expm1(np.linspace(0.0, np.log1p(top + 1), max_bars + 1)))).astype(np.int64)
    clipped = np.minimum(np.asarray(replicated), top).astype(np.int64)
    return CountFrequencies(edges, np.histogram(y, edges)[0],
                            np.stack([np.histogram(r, edges)[0] for r in clipped]),
                            bool(np.max(replicated) > top))


def prior_predictive(model, draws: int = 500, seed: int | None = None) -> xr.DataTree:
    """Draws from the priors and of data from them, for the fitting rows.

    Parameters
    ----------
    model : Model
    draws : int
    seed : int, optional

    Returns
    -------
    xarray.DataTree
        Groups ``prior`` (the posterior's variables and dims: ``b``, ``sd_<factor>``,
        ``cor_<factor>``, ``r_<factor>``, family parameters), ``prior_predictive``
        (the response, dims ``(chain, draw, obs)``) and ``observed_data``.
    """
    import pymc as pm

    if int(draws) != draws or draws < 1:
        raise HierbayesError(f"draws must be a positive whole number, not {draws!r}")
    logger = logging.getLogger("pymc")
    level = logger.level
    logger.setLevel(logging.WARNING)  # PyMC logs the list of sampled variables
    try:
        tree = pm.sample_prior_predictive(draws=int(draws), model=model.pymc_model, random_seed=seed)
    finally:
        logger.setLevel(level)
    name = response_name(model.design)
    prior = tree["prior"].to_dataset()
    ys = tree["prior_predictive"].to_dataset()[response_name(model.design)]
    coords = {"chain": ys["chain"].values, "draw": ys["draw"].values}
    values = ys.transpose("chain", "draw", ...).values
    if model.design.categories:  # PyMC draws an ordinal response's category position 0 .. K-1: its score
        values = model.design.category_scores[values.astype(np.int64)]
    return xr.DataTree.from_dict({
        "prior": prior,
        "prior_predictive": _obs_dataset(name, values, coords),
        "observed_data": observed_data(model),
    })


# --- LOO ---------------------------------------------------------------------------------------

def pareto_k_message(pareto_k: np.ndarray, good_k: float, rows: pd.Index) -> str | None:
    """A plain-language warning for observations whose Pareto k exceeds ``good_k``, or None.

    Examples
    --------
    >>> print(pareto_k_message(np.array([0.1, 0.9, 0.2]), 0.7, pd.Index(["a", "b", "c"])))
    LOO is unreliable for 1 of 3 observations (Pareto k above 0.7, largest 0.9 at row 'b'): ...
    """
    k = np.asarray(pareto_k, dtype=float).ravel()
    bad = np.flatnonzero(k > good_k)
    if bad.size == 0:
        return None
    worst = bad[np.argsort(-k[bad])]
    labels = [v.item() if isinstance(v, np.generic) else v for v in rows[worst]]
    shown = ", ".join(repr(v) for v in labels[:10]) + (", ..." if worst.size > 10 else "")
    return (f"LOO is unreliable for {bad.size} of {k.size} observations (Pareto k above {good_k:.2g}, "
            f"largest {k[worst[0]]:.2g} at row {labels[0]!r}): each of these rows alone moves the "
            "posterior so much that leaving it out cannot be approximated by reweighting the draws, and the "
            "elpd is then too optimistic. Check these rows for errors, consider a family that expects such "
            "values (student_t for outliers, negative_binomial for overdispersed counts), or refit without "
            f"them (K-fold cross-validation). Rows: {shown}")


def _fitted_index(model) -> pd.Index:
    """Index labels of the rows the model was fitted to (after dropping missing values)."""
    data = model.data
    if model.design.n_dropped:
        data = data.loc[data[used_columns(model.spec, data.columns, model.design.context)].notna().all(axis=1)]
    return data.index


def loo(fit, warn: bool = True):
    """PSIS-LOO of ``fit`` (arviz-stats), pointwise, with high Pareto k explained in words.

    The pointwise log-likelihood is computed and stored first if the fit has none.

    Returns
    -------
    arviz_stats.utils.ELPDData
        ``elpd``, ``se``, ``p`` (effective number of parameters), pointwise ``elpd_i``
        and ``pareto_k``, and ``good_k`` (the threshold above which a k is bad).
    """
    result, message = loo_with_message(fit)
    if warn and message:
        warnings.warn(message, DataWarning, stacklevel=3)
    return result


def loo_with_message(fit):
    """PSIS-LOO of ``fit`` (its log-likelihood computed if missing) and the Pareto-k message, or None."""
    from arviz_stats import loo as az_loo

    if "log_likelihood" not in fit.idata.children:
        fit.add_log_likelihood()
    name = response_name(fit.model.design)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        result = az_loo(fit.idata, pointwise=True, var_name=name)
    return result, pareto_k_message(result.pareto_k.values, result.good_k, _fitted_index(fit.model))


# --- Bayesian R2 --------------------------------------------------------------------------------

# Variance of one response given the family's location (the inverse link of the linear predictor)
# and its parameters; binomial means are proportions of ``trials``.
def bayes_r2(fit, prob: float | None = None, summary: bool = True) -> pd.DataFrame | np.ndarray:
    """Bayesian R-squared: explained variance over explained plus modelled residual variance.

    Per draw ``s``, ``R2_s = V_s / (V_s + E_s)`` with ``V_s`` the variance over the rows of
    the expected responses and ``E_s`` the mean over the rows of the family's variance
    of a response around its expected value (``sigma^2`` for gaussian, ``mu`` for
    poisson, ``mu (1 - mu)`` for bernoulli, ...). Group effects count as explained.

    Returns
    -------
    DataFrame or ndarray
        One row ``R2`` with mean, SD and interval; with ``summary=False`` the draws
        ``(chain, draw)``.
    """
    from arviz_stats.base import array_stats

    family, design = fit.model.family, fit.model.design
    eta, params = fit.linear_predictor(), fit._family_draws()
    mean = family.expected_response(eta, params)
    trials = design.trials if design.trials is not None else 1.0
    # the family's variance is a function of its location (the inverse link), which is the expected
    # response only for families without an expected_value (a zero-inflated count's is (1 - zi) mu)
    residual = family.response_variance(family.link_function.inverse(eta), params, trials).mean(axis=-1)
    shape = mean.shape[:2]
    r2 = array_stats.bayesian_r2((mean * trials).reshape(-1, mean.shape[-1]), residual.reshape(-1), "var")
    r2 = np.asarray(r2).reshape(shape)
    if not summary:
        return r2
    return pd.DataFrame({k: np.atleast_1d(v) for k, v in draw_stats(r2, prob or fit.prob).items()},
                        index=pd.Index(["R2"], name="parameter"))
