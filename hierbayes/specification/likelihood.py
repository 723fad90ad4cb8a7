"""A family's PyMC likelihood as NumPy functions: pointwise log-likelihood and response draws.

LOO has to score the model that was sampled, so the pointwise log-likelihood is not a
second implementation of the density: :func:`log_likelihood` compiles, once per family
(and whether it has trials), the log density of the very variable that
:attr:`~hierbayes.specification.families.Family.likelihood_on_link` adds to the PyMC model, as a
function of the linear predictor and the family's parameters, and evaluates it on
arrays of draws. :func:`draw` compiles the random draws of the same variable: the
predictive sampler of a family registered without a NumPy ``random``.

Both take ``eta`` of shape ``(..., N)`` (any leading sample dims), the family's
parameters as scalars, ``(...)`` or ``(..., 1)`` arrays, or ``(..., N)`` arrays for a parameter
with its own formula (one value per row), an ordinal family's thresholds
(``params["thresholds"]``) as ``(..., K-1)``, ``trials`` of shape ``(N,)`` or None, and the
response's addition data (:mod:`hierbayes.specification.additions`: weights, censoring,
truncation bounds, known SDs), each ``(N,)`` by its argument's name; both return an array of
``eta``'s shape. A multinomial's response is its counts ``(N, K)`` (a nominal family's categories'
linear predictors come as its parameters), and its draws have the category axis last.

Examples
--------
>>> import numpy as np
>>> from scipy import stats
>>> from hierbayes.specification.families import get_family
>>> y, eta = np.array([0.5, 2.0]), np.array([[0.0, 1.0], [1.0, 1.5]])  # two draws of two rows
>>> sigma = np.array([[1.0], [2.0]])
>>> ours = log_likelihood(get_family("gaussian"), y, eta, {"sigma": sigma})
>>> bool(np.allclose(ours, stats.norm.logpdf(y, eta, sigma), rtol=1e-13))
True
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from hierbayes.common.deferred import deferred_import
from hierbayes.specification.names import THRESHOLDS

pm = deferred_import("pymc")
pt = deferred_import("pytensor.tensor")

__all__ = ["log_likelihood", "draw", "Family"]


class Family(Protocol):
    """What this module needs of a :class:`hierbayes.specification.families.Family` (hashable:
    the compiled functions are cached by family)."""

    parameters: tuple[tuple[str, str], ...]
    thresholds: Any
    nominal: bool
    needs_trials: bool
    categories: tuple

    def observed_variable(self, name: str, eta: Any, params: dict, observed: Any, trials: Any = None,
                          dims: Any = None, additions: Mapping[str, Any] | None = None) -> Any: ...


def _graph(family: Family, has_trials: bool, roles: tuple[str, ...] = (), by_row: frozenset[str] = frozenset()):
    """Inputs ``[eta, y, (trials), *params, *additions]``, the observed variable and its pointwise log density.

    The variable is built exactly as the model builds it (``Family.observed_variable``); only
    the shapes differ (``eta`` is draws x rows and each parameter draws x 1, where the model has
    rows and scalars; the parameters of ``by_row``, which have formulas of their own, draws x rows;
    an ordinal family's thresholds are draws x (K-1) where the model has one vector).
    """
    eta = pt.matrix("eta", dtype="float64")
    counts = _counts(family)
    y = pt.matrix("y", dtype="float64") if counts else pt.vector("y", dtype="float64")
    trials = pt.vector("trials", dtype="float64") if has_trials else None
    params = {name: pt.tensor(name, shape=(None, None if name in by_row else 1), dtype="float64")
              for name, _ in family.parameters}
    if family.thresholds is not None:
        params[THRESHOLDS] = pt.matrix(THRESHOLDS, dtype="float64")
    additions = {role: pt.vector(role, dtype="float64") for role in roles}
    with pm.Model() as model:
        observed = pt.broadcast_to(y, (*eta.shape, counts) if counts else eta.shape)
        variable = family.observed_variable("observed", eta, params, observed, trials, additions=additions)
        logp = model.logp(vars=[variable], sum=False)[0]
    inputs = [eta, y, *([trials] if has_trials else []), *params.values(), *additions.values()]
    return inputs, variable, logp


@functools.lru_cache(maxsize=64)
def _logp_function(family: Family, has_trials: bool, roles: tuple[str, ...] = (),
                   by_row: frozenset[str] = frozenset()):
    inputs, _, logp = _graph(family, has_trials, roles, by_row)
    return pm.compile(inputs, logp, on_unused_input="ignore")


@functools.lru_cache(maxsize=64)
def _draw_function(family: Family, has_trials: bool, roles: tuple[str, ...] = (),
                   by_row: frozenset[str] = frozenset()):
    inputs, variable, _ = _graph(family, has_trials, roles, by_row)
    with warnings.catch_warnings():
        # a truncated distribution's draws run in numba's object mode: slower, the same draws, nothing to act on
        warnings.filterwarnings("ignore", message="Numba will use object mode")
        function, updates = pm.compile(inputs, variable, random_seed=False, return_updates=True,
                                       on_unused_input="ignore")
    return function, list(updates)


def _counts(family: Family) -> int:
    """The number of count columns of a multinomial response (its categories), else 0: the response is a vector."""
    return len(family.categories) if family.nominal and family.needs_trials else 0


def _by_row(family: Family, eta: np.ndarray, params: Mapping[str, np.ndarray]) -> frozenset[str]:
    """The parameters given one value per row (``(..., N)``, N > 1): those with formulas of their own."""
    n = np.shape(eta)[-1]
    return frozenset(name for name, _ in family.parameters
                     if np.ndim(params[name]) == np.ndim(eta) and np.shape(params[name])[-1] == n != 1)


def _arguments(family: Family, eta: np.ndarray, y: np.ndarray | None, params: Mapping[str, np.ndarray],
               trials: np.ndarray | None, additions: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The compiled functions' arguments: ``eta`` as (draws, N), each parameter as (draws, 1), or as
    (draws, N) when it has a value per row (:func:`_by_row`), each addition as (N,)."""
    eta = np.asarray(eta, dtype=float)
    lead, n = eta.shape[:-1], eta.shape[-1]
    by_row = _by_row(family, eta, params)
    shape = (n, _counts(family)) if _counts(family) else (n,)
    args = [eta.reshape(-1, n), np.zeros(shape) if y is None else np.asarray(y, dtype=float)]
    if trials is not None:
        args.append(np.broadcast_to(np.asarray(trials, dtype=float), (n,)))
    for name, _ in family.parameters:
        value = np.asarray(params[name], dtype=float)
        if name in by_row:
            args.append(np.broadcast_to(value, eta.shape).reshape(-1, n))
            continue
        if value.ndim == eta.ndim and value.shape[-1] == 1:
            value = value[..., 0]
        args.append(np.broadcast_to(value, lead).reshape(-1, 1))
    if family.thresholds is not None:
        value = np.asarray(params[THRESHOLDS], dtype=float)
        args.append(np.broadcast_to(value, (*lead, value.shape[-1])).reshape(-1, value.shape[-1]))
    return args + [np.broadcast_to(np.asarray(v, dtype=float), (n,)) for v in additions.values()]


def log_likelihood(family: Family, y: np.ndarray, eta: np.ndarray, params: Mapping[str, np.ndarray],
                   trials: np.ndarray | None = None, additions: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Log density of each response under the family's PyMC likelihood, draw by draw.

    Parameters
    ----------
    family : Family
    y : ndarray (N,)
        The responses (successes for binomial).
    eta : ndarray (..., N)
        Linear predictor per draw.
    params : dict
        The family's parameters by name, one value per draw (shape ``(...)`` or ``(..., 1)``), or per
        draw and row (``(..., N)``) for a parameter with its own formula.
    trials : ndarray (N,), optional
    additions : dict of ndarray (N,), optional
        The response's addition data by argument name (``weights``, ``cens``, ...).

    Returns
    -------
    ndarray (..., N)
    """
    additions = dict(additions or {})
    args = _arguments(family, eta, y, params, trials, additions)
    function = _logp_function(family, trials is not None, tuple(additions), _by_row(family, eta, params))
    return np.asarray(function(*args), dtype=float).reshape(np.shape(eta))


def draw(family: Family, rng: np.random.Generator, eta: np.ndarray, params: Mapping[str, np.ndarray],
         trials: np.ndarray | None = None, additions: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """One draw of each response from the family's PyMC likelihood per draw of ``eta``.

    ``rng`` seeds the compiled function's random generators, so equal generators give
    equal draws. Takes the arguments of :func:`log_likelihood` without ``y``.
    """
    additions = dict(additions or {})
    function, generators = _draw_function(family, trials is not None, tuple(additions), _by_row(family, eta, params))
    pm.pytensorf.reseed_rngs(generators, int(rng.integers(2**63)))
    args = _arguments(family, eta, None, params, trials, additions)
    counts = (_counts(family),) if _counts(family) else ()  # a multinomial's draws: counts of each category
    return np.asarray(function(*args), dtype=float).reshape(*np.shape(eta), *counts)
