"""K-fold cross-validation, grouped: whole levels left out, the check for predicting new groups.

PSIS-LOO (``fit.loo()``) asks how well the model predicts a row it has not seen; with group
effects that row's level is still known. ``kfold(fit, k, by="Subject")`` leaves out every row of
a level at once, so its score is the score of predicting a *new* subject: the group effects of
a held-out level are drawn from the fitted population distribution, exactly as
``fit.predict(groups="new")`` draws them.

The K refits share one compiled sampler (on a Dask cluster, with ``client=``: one per worker):
each is the same model with the likelihood weight (brms's ``weights()``) of its held-out rows at
0, so only the data change between folds, and a held-out level's effects are drawn from their
prior, the population distribution, as for a new level. The held-out rows are then scored with
the model's own log density, unweighted:

    elpd_kfold = sum over rows i of log( mean over draws s of p(y_i | theta_s without i's fold) )

with its standard error ``sqrt(n) sd(elpd_i)``, as brms's and loo's ``kfold``.

Examples
--------
>>> import hierbayes as hb
>>> fit = hb.Model("Reaction ~ Days + (Days | Subject)", hb.datasets.load("sleepstudy")).fit(
...     draws=200, tune=200, chains=2, seed=1, progressbar=False, warn=False)
>>> result = kfold(fit, k=3, by="Subject", seed=1, draws=200, tune=200)
>>> result.folds.nunique(), bool(result.elpd < fit.loo(warn=False).elpd)   # new subjects are harder
(3, True)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from hierbayes.common.errors import DataWarning, HierbayesError
from hierbayes.posterior.parallel import check_client, fit_many, fold_seeds
from hierbayes.specification.formula import Formula
from hierbayes.specification.linear_predictor import fixed_effect_draws, linear_predictor, posterior_effects

__all__ = ["kfold", "KFold", "fold_of_rows"]

WEIGHT_COLUMN = "kfold_weight__"  # the column of the refits' likelihood weights (0: held out)


@dataclass(frozen=True)
class KFold:
    """The result of :func:`kfold`.

    Attributes
    ----------
    elpd, se : float
        Expected log predictive density of the held-out rows, and its standard error.
    elpd_i : pandas.Series
        Each row's, by the fitting data's row position.
    folds : pandas.Series
        Each row's fold (0 .. k-1).
    k : int
    by : str or None
        The column whose levels were held out together.
    """

    elpd: float
    se: float
    elpd_i: pd.Series
    folds: pd.Series
    k: int
    by: str | None

    def __repr__(self) -> str:
        what = f"levels of {self.by!r}" if self.by else "rows"
        return f"{self.k}-fold cross-validation ({what} held out together): elpd {self.elpd:.1f} (se {self.se:.1f})"


def fold_of_rows(data: pd.DataFrame, k: int, by: str | None = None, seed: int | None = None) -> np.ndarray:
    """The fold (0 .. k-1) of each row: with ``by``, every row of a level in the same fold, the levels
    dealt out in a random order (as ``loo::kfold_split_grouped``); else the rows themselves.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"g": list("aabbccdd")})
    >>> folds = fold_of_rows(df, 2, by="g", seed=0)
    >>> sorted(set(zip(df["g"], folds))) == sorted({(g, f) for g, f in zip(df["g"], folds)})  # one fold per level
    True
    """
    rng = np.random.default_rng(seed)
    if by is None:
        if not 2 <= k <= len(data):
            raise HierbayesError(f"k must be between 2 and the number of rows ({len(data)}), not {k}")
        return rng.permutation(np.arange(len(data)) % k)
    if by not in data.columns:
        raise HierbayesError(f"by={by!r} is not a column the model uses; the columns are {list(data.columns)}")
    codes, levels = pd.factorize(data[by])
    if not 2 <= k <= len(levels):
        raise HierbayesError(f"k must be between 2 and the number of levels of {by!r} ({len(levels)}), not {k}")
    return (rng.permutation(np.arange(len(levels)) % k))[codes]


def _weighted(formula: str | Formula) -> str | Formula:
    """``formula`` with the likelihood weights of :data:`WEIGHT_COLUMN` on its response."""
    main = formula.main if isinstance(formula, Formula) else formula
    lhs, tilde, rhs = main.partition("~")
    if "weights(" in lhs.replace(" ", ""):
        raise HierbayesError("kfold holds rows out with likelihood weights, and this model has weights() of its "
                             "own; fit it without them to cross-validate")
    depth, bar = 0, False
    for ch in lhs:
        depth += (ch == "(") - (ch == ")")
        bar |= depth == 0 and ch == "|"
    lhs = f"{lhs.rstrip()} {'+' if bar else '|'} weights({WEIGHT_COLUMN}) "
    weighted = lhs + tilde + rhs
    if isinstance(formula, Formula):
        return Formula(weighted, **dict(formula.auxiliary))
    return weighted


def kfold(fit, k: int = 10, by: str | None = None, seed: int | None = None, client=None, **fit_kwargs) -> KFold:
    """K-fold cross-validation of ``fit``'s model, leaving out whole levels of ``by``.

    Parameters
    ----------
    fit : Fit
    k : int, default 10
    by : str, optional
        A column (usually a grouping factor) whose levels are held out together: the score of
        predicting new levels. Without it, rows are dealt into folds one by one.
    seed : int, optional
        For the folds and the refits (the fit's seed by default). Each fold's refit gets its own
        seed, derived from this one (:func:`hierbayes.posterior.parallel.fold_seeds`), so a fold
        gives the same draws wherever it runs.
    client : dask.distributed.Client, optional
        Run the refits in parallel on this Dask cluster (each worker compiles the model once, or
        loads it from the disk cache); needs ``pip install 'hierbayes[dask]'``. The result is the
        serial run's, number for number. By default the refits run one after another here.
    **fit_kwargs
        Sampler settings of the refits (the fit's own by default: draws, tune, chains, ...).

    Returns
    -------
    KFold

    Examples
    --------
    On a cluster (not run here: it starts worker processes)::

        from dask.distributed import Client, LocalCluster
        with LocalCluster(n_workers=4, threads_per_worker=1) as cluster, Client(cluster) as client:
            result = fit.kfold(k=10, by="Subject", client=client)
    """
    if client is not None:
        check_client(client)
    model = fit.model
    seed = fit.seed if seed is None else seed
    folds = fold_of_rows(model.data, k, by, seed)
    formula = _weighted(model.formula)
    settings = {"draws": fit.posterior.sizes["draw"], "chains": fit.posterior.sizes["chain"], "progressbar": False,
                **fit.settings, "log_likelihood": False, **fit_kwargs}
    for fixed in ("seed", "warn"):
        settings.pop(fixed, None)
    held_out = [folds == fold for fold in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # the few-levels note, said once for the fit
        models = [type(model)(formula, model.data.assign(**{WEIGHT_COLUMN: (~rows).astype(float)}), model.family,
                              priors=model.user_priors, namespace=model.namespace, **model.options)
                  for rows in held_out]
    seeds = fold_seeds(seed, k)
    if client is None:
        refits = (m.fit(warn=False, seed=s, **settings) for m, s in zip(models, seeds))  # one in memory at a time
    else:
        refits = fit_many(models, client=client, seeds=seeds, warn=False, **settings)
    elpd_i = np.empty(len(folds))
    for rows, refit in zip(held_out, refits):
        elpd_i[rows] = _held_out_elpd(refit, rows)
    total = float(elpd_i.sum())
    se = float(np.sqrt(len(elpd_i)) * np.std(elpd_i, ddof=1))
    index = pd.RangeIndex(len(elpd_i), name="row")
    return KFold(total, se, pd.Series(elpd_i, index=index, name="elpd_i"), pd.Series(folds, index=index, name="fold"),
                 k, by)


def _held_out_elpd(refit, held_out: np.ndarray) -> np.ndarray:
    """``log mean_s p(y_i | draw s)`` of the held-out rows: the model's own log density without the weights."""
    from hierbayes.posterior.predict import family_parameter_draws

    d, family, post = refit.model.design, refit.model.family, refit.posterior
    eta = linear_predictor(fixed_effect_draws(post, d), d.X, d.offset, posterior_effects(post, d))[..., held_out]
    params = {name: (v[..., held_out] if v.shape[-1] == d.n_obs else v)
              for name, v in family_parameter_draws(refit.model, post).items()}
    additions = {name: v[held_out] for name, v in d.additions.items() if name != "weights"}
    trials = None if d.trials is None else d.trials[held_out]
    logp = family.log_likelihood(d.observed[held_out], eta, params, trials, additions)
    draws = logp.reshape(-1, logp.shape[-1])
    return logsumexp(draws, axis=0) - np.log(draws.shape[0])
