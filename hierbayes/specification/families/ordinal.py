"""The ordinal families: ``cumulative`` and ``sratio`` (stopping ratio), on the logit or probit link.

A response of K ordered categories (a Likert rating) is modelled through K - 1 thresholds
``tau_1 .. tau_{K-1}`` that take the place of the formula's intercept, with ``F`` the
inverse link and ``eta`` the linear predictor without an intercept (brms's ``cumulative``
and ``sratio``, R's ``ordinal::clmm``):

- ``cumulative``: ``P(y <= k) = F(tau_k - eta)``, so ``P(y = k) = F(tau_k - eta) - F(tau_{k-1} - eta)``;
  the thresholds increase (PyMC's ordered transform). Draws are PyMC's ``OrderedLogistic`` /
  ``OrderedProbit``.
- ``sratio``: ``P(y = k | y >= k) = F(tau_k - eta)``, so
  ``P(y = k) = F(tau_k - eta) prod_{j<k} (1 - F(tau_j - eta))``; the thresholds are free, as
  in brms. Draws are PyMC's ``Categorical`` on those probabilities.

The log density is that of the observed category alone (:func:`cumulative_logp`,
:func:`sratio_logp`), the same numbers as PyMC's distributions (``tests/unit/test_families_ordinal.py``).

The response is an ordered pandas Categorical (its categories' order) or numbers (their
sorted distinct values): :func:`ordinal_response`. Each category has a *score*, its number
for a numeric response (and for a categorical one whose categories are increasing numbers),
else its position 1 .. K: the response as the design holds it, what ``kind="response"``
predictions draw and what ``kind="mean"`` averages (``sum_k score_k P(y = k)``, brms's
``conditional_effects``). The likelihood sees the category's position 0 .. K-1.

Examples
--------
>>> import numpy as np, pandas as pd
>>> from hierbayes.specification.families import get_family
>>> get_family("cumulative").link, get_family("sratio", link="probit").links
('logit', ('logit', 'probit'))
>>> rating = pd.Series(pd.Categorical(["low", "high", "mid", "mid"], ["low", "mid", "high"], ordered=True))
>>> scores, categories = ordinal_response(rating, "rating")
>>> scores.tolist(), categories
([1.0, 3.0, 2.0, 2.0], ('low', 'mid', 'high'))
>>> get_family("sratio").category_probabilities(np.array([0.0]), np.array([0.0, 0.0])).round(3).tolist()
[[0.5, 0.25, 0.25]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from hierbayes.common.deferred import deferred_import
from hierbayes.common.errors import DataError
from hierbayes.specification.families.core import LINKS, Family, Thresholds, check_real, register_family
from hierbayes.specification.names import THRESHOLDS

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["ordinal_response", "category_scores", "category_codes", "cumulative_logp", "sratio_logp",
           "cumulative_probabilities", "sratio_probabilities"]


# --- category probabilities from c_k = F(tau_k - eta), in NumPy or PyTensor --------------------

def cumulative_probabilities(c, xp):
    """``P(y = k)`` from ``c_k = P(y <= k)``: the differences of ``0, c_1, .., c_{K-1}, 1``.

    >>> cumulative_probabilities(np.array([0.2, 0.7]), np).round(3).tolist()
    [0.2, 0.5, 0.3]
    """
    return xp.concatenate([c[..., :1], c[..., 1:] - c[..., :-1], 1.0 - c[..., -1:]], axis=-1)


def sratio_probabilities(c, xp):
    """``P(y = k)`` from ``c_k = P(y = k | y >= k)``: stop at ``k`` after passing every category before it.

    >>> sratio_probabilities(np.array([0.2, 0.5]), np).round(3).tolist()
    [0.2, 0.4, 0.4]
    """
    passed = xp.cumprod(1.0 - c, axis=-1)  # P(y > k)
    before = xp.concatenate([xp.ones_like(c[..., :1]), passed[..., :-1]], axis=-1)  # P(y >= k)
    return xp.concatenate([c * before, passed[..., -1:]], axis=-1)


def cumulative_locations(link, shares: np.ndarray) -> np.ndarray:
    """Thresholds giving the categories ``shares`` at ``eta = 0``: the link of the cumulative shares."""
    return link(np.cumsum(shares)[:-1])


def sratio_locations(link, shares: np.ndarray) -> np.ndarray:
    """Thresholds giving the categories ``shares`` at ``eta = 0``: the link of each share among those left."""
    left = 1.0 - np.concatenate([[0.0], np.cumsum(shares)[:-2]])
    return link(shares[:-1] / left)


# --- likelihoods --------------------------------------------------------------------------------
# The density of the observed category only, from the rows' c_k: PyMC's OrderedLogistic, OrderedProbit
# and Categorical form every category's probability and check that they sum to one, which numba took three
# times as long to compile (about a minute a model on a busy machine); their draws are PyMC's.

def _positions(y, c):
    """Each threshold's position k (0 .. K-2) and each row's category, as columns against them."""
    return pt.arange(c.shape[-1]), pt.shape_padright(y)


def cumulative_logp(y, c):
    """``log P(category k) = log(c_k - c_{k-1})``, categories 1 .. K, ``c_0 = 0``, ``c_K = 1``; ``y`` = k - 1.

    >>> c = np.array([[0.2, 0.7], [0.2, 0.7], [0.2, 0.7]])
    >>> np.exp(cumulative_logp(pt.as_tensor([0.0, 1.0, 2.0]), pt.as_tensor(c)).eval()).round(3).tolist()
    [0.2, 0.5, 0.3]
    """
    k, row = _positions(y, c)
    upper = pt.switch(pt.eq(y, c.shape[-1]), 1.0, pt.sum(pt.switch(pt.eq(k, row), c, 0.0), axis=-1))
    lower = pt.sum(pt.switch(pt.eq(k, row - 1), c, 0.0), axis=-1)
    return pt.log(upper - lower)


def sratio_logp(y, c):
    """``log P(category k) = log c_k + sum_{j<k} log(1 - c_j)`` (no ``c_K`` term for the last); ``y`` = k - 1.

    >>> c = np.array([[0.2, 0.5], [0.2, 0.5], [0.2, 0.5]])
    >>> np.exp(sratio_logp(pt.as_tensor([0.0, 1.0, 2.0]), pt.as_tensor(c)).eval()).round(3).tolist()
    [0.2, 0.4, 0.4]
    """
    k, row = _positions(y, c)
    return pt.sum(pt.switch(pt.eq(k, row), pt.log(c), 0.0) + pt.switch(pt.lt(k, row), pt.log1p(-c), 0.0), axis=-1)


def _cutpoints(params):
    """The thresholds with an axis for the rows: ``(1, K-1)`` in the model, ``(draws, 1, K-1)`` for LOO."""
    return pt.shape_padaxis(params[THRESHOLDS], -2)


def _ordinal_likelihood(link: str, logp, draws):
    """The likelihood on ``link`` of the density ``logp(y, c)``, ``c_k = F(tau_k - eta)``, with the draws of
    ``draws(eta, cutpoints, c, size)`` (a PyMC distribution)."""
    inverse = LINKS[link].inverse_tensor

    def c_of(eta, cutpoints):
        return inverse(cutpoints - pt.shape_padright(eta))

    def ordinal_like(name, eta, mean, params, observed, trials, dims):
        return pm.CustomDist(name, eta, _cutpoints(params), logp=lambda y, e, cut: logp(y, c_of(e, cut)),
                             dist=lambda e, cut, size: draws(e, cut, c_of(e, cut), size),
                             observed=observed, shape=observed.shape)

    return ordinal_like


def _ordered_logistic(eta, cutpoints, c, size):
    return pm.OrderedLogistic.dist(eta=eta, cutpoints=cutpoints, size=size)


def _ordered_probit(eta, cutpoints, c, size):
    return pm.OrderedProbit.dist(eta=eta, cutpoints=cutpoints, size=size)


def _stopping(eta, cutpoints, c, size):
    return pm.Categorical.dist(p=sratio_probabilities(c, pt), size=size)


# --- the response ------------------------------------------------------------------------------

def category_scores(categories: Sequence) -> np.ndarray:
    """Each category's score: the categories themselves when they are increasing numbers, else 1 .. K.

    >>> category_scores((1, 2, 5)).tolist(), category_scores(("low", "mid", "high")).tolist()
    ([1.0, 2.0, 5.0], [1.0, 2.0, 3.0])
    """
    numbers = all(isinstance(c, (int, float, np.integer, np.floating)) and not isinstance(c, bool)
                  for c in categories)
    if numbers and np.all(np.diff(np.asarray(categories, dtype=float)) > 0):
        return np.asarray(categories, dtype=float)
    return np.arange(1.0, len(categories) + 1.0)


def category_codes(scores: np.ndarray, categories: Sequence) -> np.ndarray:
    """The position 0 .. K-1 of each response's category from its score (what the likelihood sees)."""
    return np.searchsorted(category_scores(categories), scores).astype(np.float64)


def ordinal_response(values: pd.Series, column: str) -> tuple[np.ndarray, tuple]:
    """The score of each response and the categories in order, from an ordered Categorical or numbers.

    Raises
    ------
    DataError
        Naming ``column``: for text or an unordered Categorical (saying how to order it), a
        category without rows, or fewer than three categories (two: bernoulli).
    """
    order_hint = (f"make it an ordered categorical, e.g. df[{column!r}] = pd.Categorical(df[{column!r}], "
                  "categories=[lowest, ..., highest], ordered=True)")
    if isinstance(values.dtype, pd.CategoricalDtype):
        if not values.cat.ordered:
            raise DataError(f"response {column!r} is an unordered categorical: an ordinal family needs the categories' "
                            f"order; {order_hint}")
        categories = tuple(v.item() if isinstance(v, np.generic) else v for v in values.cat.categories)
        empty = [c for c, n in zip(categories, np.bincount(values.cat.codes, minlength=len(categories))) if n == 0]
        if empty:
            raise DataError(f"response {column!r} has categories without rows: {empty}; their thresholds cannot be "
                            f"estimated. Drop them (df[{column!r}] = df[{column!r}].cat.remove_unused_categories()) "
                            "or merge them with a neighbour")
        codes = values.cat.codes.to_numpy()
    elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        numbers = values.to_numpy(dtype=float)
        distinct = np.unique(numbers)
        categories = tuple(int(v) if v.is_integer() else float(v) for v in distinct)
        codes = np.searchsorted(distinct, numbers)
    else:
        example = values.dropna().iloc[0] if values.notna().any() else None
        raise DataError(f"response {column!r} holds {values.dtype} values such as {example!r}, whose order is not "
                        f"known; {order_hint}, or code the categories as numbers")
    if len(categories) < 3:
        raise DataError(f"response {column!r} has {len(categories)} categories {list(categories)}; an ordinal family "
                        "needs at least 3 (for two, use family='bernoulli' with the response coded 0/1)")
    return category_scores(categories)[codes], categories


register_family(Family(
    name="cumulative", link="logit", links=("logit", "probit"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_ordinal_likelihood("logit", cumulative_logp, _ordered_logistic),
    link_likelihoods=(("probit", _ordinal_likelihood("probit", cumulative_logp, _ordered_probit)),),
    check_response=check_real,
    threshold_model=True,  # a latent logistic or normal variable cut at the thresholds: the ICC's pi^2/3 or 1
    thresholds=Thresholds(True, cumulative_probabilities, cumulative_locations),
))
register_family(Family(
    name="sratio", link="logit", links=("logit", "probit"),
    parameters=(),
    default_priors=lambda r: {},
    likelihood=_ordinal_likelihood("logit", sratio_logp, _stopping),
    link_likelihoods=(("probit", _ordinal_likelihood("probit", sratio_logp, _stopping)),),
    check_response=check_real,
    thresholds=Thresholds(False, sratio_probabilities, sratio_locations),
), aliases=("stopping_ratio",))
